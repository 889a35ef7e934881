"""memsvc inside agent frameworks: one module per framework, each an optional extra.

- `memsvc.integrations.langgraph` — a LangGraph `BaseStore` (`pip install memsvc[langgraph]`)
- `memsvc.integrations.langchain` — LangChain tools and a retriever (same extra)
- `memsvc.integrations.openai_agents` — OpenAI Agents SDK tools and `Session`
  (`memsvc[openai-agents]`)
- `memsvc.integrations.pydantic_ai` — a Pydantic AI toolset (`memsvc[pydantic-ai]`)

Each accepts any of the four SDK classes (`Memory`, `AsyncMemory`, `MemoryClient`,
`AsyncMemoryClient`), so moving an agent from the embedded store to a server is changing
the object handed in. Nothing here is imported by `import memsvc`.
"""
