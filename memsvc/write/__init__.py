"""The write pipeline: run an extractor over stored messages, decide ADD / UPDATE /
INVALIDATE / NOOP for each candidate, and build the one `WriteBatch` a write applies."""
