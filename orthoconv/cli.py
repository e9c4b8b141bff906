"""The ``orthoconv`` console command: one front door to reports, verification, experiments and proofs."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

EXPERIMENTS = {
    "gradient-norm": "analysis.gradient_norm",
    "census": "analysis.census",
    "components": "analysis.components",
    "fit": "analysis.fit",
    "homotopy": "analysis.homotopy",
    "svcm-rounds": "analysis.svcm_rounds",
}
BENCHMARKS = {"core": "analysis.bench", "bounds": "analysis.bench_bounds"}

REPORT_COLUMNS = ["layer", "params", "input_size", "kind", "sigma_min", "sigma_max", "max_deviation",
                  "certificate_bound", "grad_ratio_min", "grad_ratio_max", "verdict"]
VERIFY_COLUMNS = ["name", "shape", "kind", "sigma_min", "sigma_max", "max_deviation", "verdict"]


def _dtype(name: str):
    import torch

    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if name not in dtypes:
        raise argparse.ArgumentTypeError(f"dtype must be one of {sorted(dtypes)}, got {name!r}")
    return dtypes[name]


def positive_int(text: str) -> int:
    """argparse type: a positive integer."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a positive number."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def cmd_report(args) -> int:
    from .report import run_report
    from .table import format_table

    rows = run_report(dtype=args.dtype, device=args.device, seed=args.seed)
    with open(args.out, "w") as fh:
        json.dump({"seed": args.seed, "dtype": str(args.dtype), "device": args.device, "rows": rows}, fh, indent=2)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, REPORT_COLUMNS))
        failed = sum(not row["passed"] for row in rows)
        print(f"\n{len(rows) - failed}/{len(rows)} measurements orthogonal within tolerance; JSON written to {args.out}")
        print("grad_ratio = ||J^T g|| / ||g|| for Gaussian g: 1 for orthogonal maps and co-isometries; an isometry "
              "(c_in < c_out) keeps only the part of g in its range, about sqrt(c_in / c_out) of it.")
    return 0 if all(row["passed"] for row in rows) else 1


def cmd_verify(args) -> int:
    from .checkpoint import CheckpointError, load_kernels
    from .table import format_table
    from .verify import check_orthogonal

    try:
        kernels = load_kernels(args.file)
    except CheckpointError as err:
        print(f"orthoconv verify: error: {err}", file=sys.stderr)
        return 2
    rows = [{"name": name, **check_orthogonal(k, tuple(args.input_size), args.tol).as_dict()} for name, k in kernels.items()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, VERIFY_COLUMNS))
    return 0 if all(row["passed"] for row in rows) else 1


def _dispatch(module_name: str, argv: list[str]) -> int:
    return int(importlib.import_module(module_name).main(argv) or 0)


def cmd_experiment(args) -> int:
    return _dispatch(EXPERIMENTS[args.name], args.args)


def cmd_bench(args) -> int:
    return _dispatch(BENCHMARKS[args.name], args.args)


def cmd_prove(args) -> int:
    return _dispatch("proofs.__main__", args.args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orthoconv",
        description="Orthogonal and Lipschitz convolutions: build them (BCOP, Li et al. 2019), verify them "
        "(exact FFT spectra, Sedghi et al. 2019) and understand them (experiments and symbolic proofs).",
        epilog="Run 'orthoconv COMMAND --help' for the options of each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report = sub.add_parser("report", help="the main job: build BCOP layers of several shapes, verify them, print a table",
                            description="Build BCOP layers of several shapes (isometries, co-isometries, k = 1..5), "
                            "measure every singular value at init and with N(0, 30^2)-perturbed parameters, "
                            "on a 32x32 image and one smaller than the kernel; print a table and write JSON.")
    report.add_argument("--dtype", type=_dtype, default="float64", help="float32 or float64 (default float64)")
    report.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    report.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    report.add_argument("--out", default="report.json", help="where to write the JSON report (default report.json)")
    report.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    report.set_defaults(func=cmd_report)

    verify = sub.add_parser("verify", help="check every convolution kernel in a .pt/.pth/.npy file for orthogonality",
                            description="Load a state_dict or checkpoint (.pt/.pth, read with weights_only=True) or a "
                            ".npy kernel; report every 4-D convolution weight (BCOP layers: the kernel rebuilt from "
                            "their parameters) under circular padding. Exit 0 when all pass, 1 when one fails the "
                            "tolerance, 2 when the file cannot be read.")
    verify.add_argument("file", help="a .pt, .pth or .npy file")
    verify.add_argument("--input-size", nargs=2, type=positive_int, required=True, metavar=("H", "W"),
                        help="image size the convolutions act on")
    verify.add_argument("--tol", type=positive_float, default=None,
                        help="tolerance on max|sigma - 1| (default 1e-10 for float64 kernels, 1e-5 otherwise)")
    verify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    verify.set_defaults(func=cmd_verify)

    experiment = sub.add_parser("experiment", help="run an experiment from analysis/ (JSON + PNG + table)",
                                description="Run an experiment; arguments after NAME go to it "
                                "(e.g. 'orthoconv experiment gradient-norm --quick'; NAME --help lists them).")
    experiment.add_argument("name", choices=sorted(EXPERIMENTS), help="which experiment")
    experiment.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the experiment")
    experiment.set_defaults(func=cmd_experiment)

    bench = sub.add_parser("bench", help="run a benchmark (ratios measured in one process)",
                           description="Benchmarks print ratios against baselines timed in the same process.")
    bench.add_argument("name", choices=sorted(BENCHMARKS), help="core: BCOP and spectrum timings; bounds: spectral bounds")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    bench.set_defaults(func=cmd_bench)

    prove = sub.add_parser("prove", help="run the symbolic proofs (sympy) of the structure behind BCOP",
                           description="Run every proof in proofs/; exit non-zero when one fails. Arguments go to "
                           "'python -m proofs' (e.g. --full, --json FILE).")
    prove.add_argument("args", nargs=argparse.REMAINDER, help="arguments for python -m proofs")
    prove.set_defaults(func=cmd_prove)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
