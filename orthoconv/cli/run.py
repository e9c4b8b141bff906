"""``orthoconv experiment NAME``, ``orthoconv bench NAME`` and ``orthoconv prove``: programs that parse
their own options, which these commands pass through (``NAME --help`` shows them)."""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    "gradient-norm": "orthoconv.analysis.experiments.gradient_norm",
    "census": "orthoconv.analysis.experiments.census",
    "components": "orthoconv.analysis.experiments.components",
    "fit": "orthoconv.analysis.experiments.fit",
    "homotopy": "orthoconv.analysis.experiments.homotopy",
    "svcm-rounds": "orthoconv.analysis.experiments.svcm_rounds",
    "robustness": "orthoconv.analysis.experiments.robustness",
    "wasserstein": "orthoconv.analysis.experiments.wasserstein",
    "paper-table": "orthoconv.analysis.experiments.paper_table",
}
BENCHMARKS = {
    "core": "orthoconv.analysis.bench.core",
    "bounds": "orthoconv.analysis.bench.bounds",
    "spectrum": "orthoconv.analysis.bench.spectrum",
    "verify": "orthoconv.analysis.bench.verify",
    "networks": "orthoconv.analysis.bench.networks",
    "layers": "orthoconv.analysis.bench.layers",
    "residual": "orthoconv.analysis.bench.residual",
}
PROOFS = "orthoconv.proofs.cli"


def _call(module_name: str, argv: list[str], prog: str) -> int:
    return int(importlib.import_module(module_name).main(argv, prog=prog) or 0)


def _named(table: dict, kind: str):
    def run(args, extra) -> int:
        if args.name is None:
            args.parser.print_help()
            return 0 if {"-h", "--help"} & set(extra) else 2
        return _call(table[args.name], extra, f"orthoconv {kind} {args.name}")

    return run


def _prove(args, extra) -> int:
    return _call(PROOFS, extra, "orthoconv prove")


def add_parser(sub) -> None:
    for kind, table, summary in (
        ("experiment", EXPERIMENTS, "run an experiment from analysis/ (JSON + PNG + table)"),
        ("bench", BENCHMARKS, "run a benchmark (ratios against baselines timed in the same process)"),
    ):
        parser = sub.add_parser(
            kind, help=summary, add_help=False,
            description=f"{summary[0].upper()}{summary[1:]}. Options after NAME go to it: "
            f"'orthoconv {kind} NAME --help' lists them.")
        parser.add_argument("name", nargs="?", choices=sorted(table), help=f"which {kind}")
        parser.set_defaults(func=_named(table, kind), passthrough=True, parser=parser)
    prove = sub.add_parser(
        "prove", add_help=False, help="run the symbolic proofs (sympy) of the structure behind BCOP",
        description="Run every proof in proofs/; 'orthoconv prove --help' lists the options.")
    prove.set_defaults(func=_prove, passthrough=True)
