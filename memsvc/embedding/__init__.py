"""Text → vectors: the `Embedder` protocol, the sentence-transformers implementation and the
lean query encoder. Loads torch lazily, when the first embedder is built."""
