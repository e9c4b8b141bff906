"""``orthoconv verify FILE``: check every convolution kernel stored in a file."""

from __future__ import annotations

import json

from . import args as types

COLUMNS = ["name", "shape", "kind", "sigma_min", "sigma_max", "max_deviation", "verdict"]


def run(args, extra) -> int:
    from ..io import format_table
    from ..verify import check_orthogonal
    from ..verify.checkpoint import load_kernels

    kernels = load_kernels(args.file)
    rows = [{"name": name, **check_orthogonal(k, tuple(args.input_size), args.tol).as_dict()} for name, k in kernels.items()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, COLUMNS))
    return 0 if all(row["passed"] for row in rows) else 1


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "verify", help="check every convolution kernel in a .pt/.pth/.npy file for orthogonality",
        description="Load a state_dict or checkpoint (.pt/.pth, read with weights_only=True) or a .npy kernel; "
        "report every 4-D convolution weight (BCOP layers: the kernel rebuilt from their parameters) under circular "
        "padding. Exit 0 when all pass, 1 when one fails the tolerance, 2 when the file cannot be read.")
    parser.add_argument("file", help="a .pt, .pth or .npy file")
    parser.add_argument("--input-size", nargs=2, type=types.positive_int, required=True, metavar=("H", "W"),
                        help="image size the convolutions act on")
    parser.add_argument("--tol", type=types.positive_float, default=None,
                        help="tolerance on max|sigma - 1| (default 1e-10 for float64 kernels, 1e-5 otherwise)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)
