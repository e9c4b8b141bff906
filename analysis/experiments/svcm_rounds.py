"""How many SVCM clip-then-mask rounds a kernel needs before its circular operator norm reaches a bound.

SVCM (Sedghi, Gupta, Long 2019) clips every singular value of the transfer matrices to <= 1, then
masks the kernel back to its ``k x k`` support, which breaks the clip (:mod:`orthoconv.nn.svcm`). This
experiment runs :func:`orthoconv.nn.svcm.svcm_history` (the exact FFT norm after every round, float64)
on i.i.d. N(0, 1) kernels ``c x c x k x k`` on ``n x n`` images, ``--draws`` kernels per shape with
seeds ``seed, seed + 1, ...``, and reports the median over the draws of ``sigma_max`` after 1, 3 and 10
rounds and of the first round that reaches ``1.1 / 1.05 / 1.01 / 1.001`` (``-`` when ``--max-rounds``
rounds do not). The figure plots the median excess ``sigma_max - 1`` against the round.

``python -m analysis.experiments.svcm_rounds [--quick] [--seed S] [--draws D] [--max-rounds R] [--out DIR]``
"""

from __future__ import annotations

import math
import statistics
import sys

import torch

from orthoconv.cli.args import positive_int
from orthoconv.io.table import format_table
from orthoconv.nn.svcm import svcm_history

from ..common.harness import experiment_parser, run_sweep, save_figure, worker_pool, write_json

SHAPES = [(4, 3, 8), (16, 3, 8), (16, 3, 16), (16, 5, 16), (64, 3, 16)]
QUICK_SHAPES = [(4, 3, 8), (16, 3, 8)]
BOUNDS = (1.1, 1.05, 1.01, 1.001)
SHOWN_ROUNDS = (1, 3, 10)


def history_task(c: int, k: int, n: int, seed: int, max_rounds: int) -> dict:
    """The exact norm after 0..max_rounds rounds for the kernel drawn with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    kernel = torch.randn(c, c, k, k, generator=generator, dtype=torch.float64)
    return {"c": c, "k": k, "n": n, "seed": seed, "history": svcm_history(kernel, (n, n), max_rounds)}


def rounds_to_reach(history: list[float], bound: float) -> int | None:
    """The first round whose norm is ``<= bound``, or ``None``."""
    return next((rounds for rounds, norm in enumerate(history) if norm <= bound), None)


def summarize(results: list[dict], shapes: list[tuple[int, int, int]]) -> list[dict]:
    """One row per shape: medians over the draws (the lower median for rounds; ``None`` when it is unreached)."""
    rows = []
    for c, k, n in shapes:
        histories = [r["history"] for r in results if (r["c"], r["k"], r["n"]) == (c, k, n)]
        row = {"c": c, "k": k, "n": n, "draws": len(histories),
               "initial": statistics.median(h[0] for h in histories)}
        for rounds in SHOWN_ROUNDS:
            row[f"after {rounds}"] = statistics.median(h[min(rounds, len(h) - 1)] for h in histories)
        for bound in BOUNDS:
            needed = [rounds_to_reach(h, bound) for h in histories]
            middle = statistics.median_low(math.inf if r is None else r for r in needed)  # unreached counts as inf
            row[f"to {bound}"] = None if middle == math.inf else middle
        rows.append(row)
    return rows


def draw(results: list[dict], shapes: list[tuple[int, int, int]]):
    def build(plt):
        figure, axis = plt.subplots(figsize=(6, 4))
        for c, k, n in shapes:
            histories = [r["history"] for r in results if (r["c"], r["k"], r["n"]) == (c, k, n)]
            excess = [statistics.median(h[i] for h in histories) - 1 for i in range(1, len(histories[0]))]
            axis.loglog(range(1, len(excess) + 1), [max(e, 1e-16) for e in excess], label=f"c={c}, k={k}, n={n}")
        for bound in BOUNDS:
            axis.axhline(bound - 1, color="grey", linewidth=0.5, linestyle=":")
        axis.set_xlabel("clip-then-mask rounds")
        axis.set_ylabel("median sigma_max - 1 (exact FFT norm)")
        axis.set_title("SVCM: excess norm after clip-then-mask rounds")
        axis.legend(fontsize=8)
        return figure

    return build


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = experiment_parser("svcm_rounds", __doc__.splitlines()[0], prog)
    parser.add_argument("--draws", type=positive_int, help="kernels per shape (default 5; --quick: 2)")
    parser.add_argument("--max-rounds", type=positive_int, help="rounds per kernel (default 120; --quick: 40)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    draws = args.draws or (2 if args.quick else 5)
    max_rounds = args.max_rounds or (40 if args.quick else 120)
    jobs = [{"c": c, "k": k, "n": n, "seed": args.seed + i, "max_rounds": max_rounds}
            for c, k, n in shapes for i in range(draws)]
    with worker_pool(args.workers) as pool:
        results = run_sweep(history_task, jobs, pool, "svcm_rounds")
    rows = summarize(results, shapes)
    shown = [{key: "-" if value is None else value for key, value in row.items()} for row in rows]
    print(format_table(shown, list(rows[0])))
    print(f"median over {draws} draws (seeds {args.seed}..{args.seed + draws - 1}); '-': not reached in {max_rounds} rounds")
    figure = save_figure(args.out / "svcm_rounds.png", draw(results, shapes))
    data = {"seed": args.seed, "draws": draws, "max_rounds": max_rounds, "figure": figure, "rows": rows,
            "histories": results}
    print(f"wrote {write_json(args.out / 'svcm_rounds.json', data, args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
