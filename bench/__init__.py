"""Benchmarks: ``python -m bench.<name>``, each starting its own processes (see harness.py)."""
