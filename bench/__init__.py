"""Benchmarks: run by hand (`.venv/bin/python -m bench.<name>`), never in CI; numbers in docs/benchmarks.md."""
