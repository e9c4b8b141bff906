"""Experiments and benchmarks, grouped by role like the library.

- :mod:`analysis.experiments`: each experiment a module that runs from the command line
  (``orthoconv experiment NAME`` or ``python -m analysis.experiments.NAME``) and writes JSON + PNG;
- :mod:`analysis.bench`: benchmarks that print ratios against a baseline timed in the same process
  (``orthoconv bench NAME`` or ``python -m analysis.bench.NAME``), and the device check's training step;
- :mod:`analysis.common`: the shared harness (argument parsing, seeded worker pools, JSON records,
  figures) and the interleaved timing policy.

Installed as ``orthoconv.analysis``, so a user's own ``analysis`` module cannot shadow it.
"""
