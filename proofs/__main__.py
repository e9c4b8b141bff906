"""``python -m proofs``; also importable, exposing :func:`proofs.cli.main` for ``orthoconv prove``."""

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
