"""Concepts: WordNet, the SDAG of the store's concepts, text embeddings (MiniLM), names matched to nodes, tasks."""
