"""The machinery of benchmarks/run.py (database, server, load, phases, report)."""
