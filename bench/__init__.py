"""Benchmarks: each prints its figures beside a baseline measured in the same run.

Run from the project root as modules, e.g. ``.venv/bin/python -m bench.policy``."""
