"""Helpers shared by the experiments and benchmarks: the run harness and the interleaved timing policy."""
