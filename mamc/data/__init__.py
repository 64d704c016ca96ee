"""Data: the embedded corpus, public dataset ingestion, video decoding and torch loaders."""
