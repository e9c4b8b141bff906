"""Benchmarks: ``orthoconv bench NAME`` or ``python -m analysis.bench.NAME``; ratios against baselines timed in one process."""
