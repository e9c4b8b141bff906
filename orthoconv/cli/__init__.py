"""The ``orthoconv`` console command: one front door to reports, verification, experiments and proofs.

Each command is a module of this package with ``add_parser(subparsers)``; the parser it adds sets
``func(args, extra) -> int``. Commands that hand their options to another program (experiments,
benchmarks, proofs) set ``passthrough=True`` and receive the arguments they do not parse in
``extra``. A user error (``ValueError``, ``TypeError``, ``OSError``) is one line on stderr and exit
status 2; KeyboardInterrupt is exit 130.
"""

from __future__ import annotations

import importlib
import sys

from .args import Parser, fail

COMMANDS = ("report", "verify", "run", "train", "certify", "data")


def build_parser() -> Parser:
    from .. import __version__

    parser = Parser(
        prog="orthoconv",
        description="Orthogonal and Lipschitz convolutions: build them (BCOP, Li et al. 2019), verify them "
        "(exact FFT spectra, Sedghi et al. 2019) and understand them (experiments and symbolic proofs).",
        epilog="Run 'orthoconv COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"orthoconv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = argv
    try:
        return int(args.func(args, extra) or 0)
    except (ValueError, TypeError, OSError) as err:
        return fail(f"orthoconv {args.command}", err)
    except KeyboardInterrupt:
        print(f"orthoconv {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
