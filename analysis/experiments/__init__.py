"""Experiments: ``orthoconv experiment NAME`` or ``python -m analysis.experiments.NAME``; each writes JSON + PNG."""
