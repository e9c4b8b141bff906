"""``orthoconv report``: the main job. Build BCOP layers of several shapes, verify them, print a table."""

from __future__ import annotations

import json

from . import args as types

COLUMNS = ["layer", "params", "input_size", "kind", "sigma_min", "sigma_max", "max_deviation",
           "certificate_bound", "grad_ratio_min", "grad_ratio_max", "verdict"]


def run(args, extra) -> int:
    from ..io import format_table, run_metadata, write_json
    from ..verify.report import run_report

    rows = run_report(dtype=args.dtype, device=args.device, seed=args.seed)
    write_json(args.out, {"run": run_metadata(args, args.device), "rows": rows})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, COLUMNS))
        failed = sum(not row["passed"] for row in rows)
        print(f"\n{len(rows) - failed}/{len(rows)} measurements orthogonal within tolerance; JSON written to {args.out}")
        print("grad_ratio = ||J^T g|| / ||g|| for Gaussian g: 1 for orthogonal maps and co-isometries; an isometry "
              "(c_in < c_out) keeps only the part of g in its range, about sqrt(c_in / c_out) of it.")
    return 0 if all(row["passed"] for row in rows) else 1


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "report", help="the main job: build BCOP layers of several shapes, verify them, print a table",
        description="Build BCOP layers of several shapes (isometries, co-isometries, k = 1..5), measure every "
        "singular value at init and with N(0, 30^2)-perturbed parameters, on a 32x32 image and one smaller than "
        "the kernel; print a table and write JSON. Exit 0 when every row is orthogonal within tolerance, 1 otherwise.")
    parser.add_argument("--dtype", type=types.dtype, default="float64", help="float32 or float64 (default float64)")
    parser.add_argument("--device", type=types.device, default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--seed", type=types.seed, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--out", type=types.output_file, default="report.json",
                        help="where to write the JSON report (default report.json)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.set_defaults(func=run)
