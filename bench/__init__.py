"""Benchmarks: `python -m bench <name>` (make bench). Speed is measured here, never in tests."""
