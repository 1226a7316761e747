"""Benchmarks: each module runs on its own (`python -m evals.bench.NAME`) and prints one JSON object."""
