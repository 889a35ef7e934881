"""The one OpenAI-compatible LLM client (sync and async) used by extraction, deciding and chat."""
