"""The SDK: `Memory` / `AsyncMemory` (embedded) and `MemoryClient` / `AsyncMemoryClient`
(remote), all four built from one definition of the operations."""
