"""Recommendation selectors, split by topic (one module per topic)."""
