"""Drop-in facades of other memory libraries' APIs over memsvc (`memsvc.compat.mem0`)."""
