"""Recommendation services, split by topic (one module per topic)."""
