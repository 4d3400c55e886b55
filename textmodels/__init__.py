"""The text models that ingestion and retrieval share: dense embeddings, sparse (BM25-style)
term weights, entities, language detection and sentence boundaries.

Ingestion runs them over chunks; retrieval runs the same ones over questions, so both sides
stay in one vocabulary. Nothing here touches a store.
"""
