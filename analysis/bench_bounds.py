"""Benchmark of the certified norm bounds (not a test): values and times as ratios measured in one run.

For each kernel (``c x c x k x k``, float64) and image ``n x n``:

- ``gram``: :func:`orthoconv.gram.gram_iteration_norm` (``n_iter = 6``) against the exact circular norm
  (the largest of every singular value, :func:`orthoconv.spectral.conv_singular_values`); its time
  against that full spectrum's time. Target: within 0.1% in at most 1/10 of the time.
- ``zero``: :func:`orthoconv.certify.zero_padding_norm_bound` (``n_iter = 6``, cropped to the image)
  against the dense SVD of the zero-padded operator where it fits (``c n^2 <= 2048``); its time
  against the same full spectrum. Target: within 15%. ``embed`` is the certified circular-embedding
  bound (exact FFT norm on ``(n + k - 1)^2``, REFERENCES.md) for comparison.

Kernels: ``gaussian`` (iid N(0, 1) taps: every frequency's transfer matrix is a Gaussian matrix, so
the per-frequency norms are nearly tied, the hard case for Gram iteration) and ``smooth`` (one shared
random matrix plus 0.3 x Gaussian taps: the spectrum peaks at low frequencies, as trained filters'
often do). Timings run interleaved after a warm-up (:func:`analysis.bench.paired_times`), on
``--threads`` intra-op threads (default 1: on a shared 2-core machine two threads made small batched
LAPACK calls erratically 10-100x slower).

``python -m analysis.bench_bounds [--quick] [--json FILE] [--threads N]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from orthoconv.certify import zero_padding_norm_bound
from orthoconv.gram import gram_iteration_norm
from orthoconv.spectral import circular_spectral_norm, conv_singular_values, dense_operator
from orthoconv.table import format_table

from .bench import paired_times
from .harness import write_json
from .progress import progress

DENSE_BENCH_LIMIT = 2048  # c * n^2: dense SVD of at most 2048 x 2048 (a few seconds)
ZERO_BOUND_LIMIT = 512  # c * n: the cropped kernel Gram iteration costs ~ 6 (4n)(2n) c^3 (timed where c n <= 512)
GRAM_TARGET, GRAM_TIME_TARGET, ZERO_TARGET = 1e-3, 0.1, 0.15

QUICK = [(16, 3, 8), (16, 5, 8), (64, 3, 16)]
FULL = (
    [(16, k, n) for k in (3, 5) for n in (8, 16, 32, 64)]
    + [(32, k, 8) for k in (3, 5)]
    + [(64, k, n) for k in (3, 5) for n in (8, 16, 32)]
    + [(256, 3, 8), (256, 5, 8)]
)


def make_kernel(family: str, c: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    taps = torch.randn(c, c, k, k, generator=g, dtype=torch.float64)
    if family == "gaussian":
        return taps
    shared = torch.randn(c, c, 1, 1, generator=g, dtype=torch.float64)
    return shared + 0.3 * taps


def measure(c: int, k: int, n: int, family: str, repeats: int) -> dict:
    kernel = make_kernel(family, c, k, seed=1000 * c + 10 * k + n)
    size = (n, n)
    exact = float(conv_singular_values(kernel, size).max())
    gram = gram_iteration_norm(kernel, size, 6)
    row = {"c": c, "k": k, "n": n, "kernel": family, "exact": exact, "gram/exact-1": gram / exact - 1}
    fns = [lambda: conv_singular_values(kernel, size), lambda: gram_iteration_norm(kernel, size, 6)]
    do_zero = c * n <= ZERO_BOUND_LIMIT
    if do_zero:
        fns.append(lambda: zero_padding_norm_bound(kernel, size, 6))
    times = paired_times(fns, repeats, "cpu")
    row["full_ms"] = 1e3 * times[0]
    row["gram_t/full"] = times[1] / times[0]
    row["gram_met"] = row["gram/exact-1"] <= GRAM_TARGET and row["gram_t/full"] <= GRAM_TIME_TARGET
    if do_zero:
        zero = zero_padding_norm_bound(kernel, size, 6)
        row["zero_t/full"] = times[2] / times[0]
        if c * n * n <= DENSE_BENCH_LIMIT:
            dense = float(torch.linalg.svdvals(dense_operator(kernel, size, "zeros"))[0])
            row["zero/dense"] = zero / dense
            row["embed/dense"] = circular_spectral_norm(kernel, (n + k - 1, n + k - 1)) / dense
            row["zero_met"] = row["zero/dense"] <= 1 + ZERO_TARGET
    return row


COLUMNS = ["c", "k", "n", "kernel", "full_ms", "gram/exact-1", "gram_t/full", "gram_met",
           "zero/dense", "embed/dense", "zero_t/full", "zero_met"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.bench_bounds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three small configurations")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    configs = QUICK if args.quick else FULL
    families = ("gaussian", "smooth")
    tasks = [(c, k, n, family) for c, k, n in configs for family in families]
    rows = []
    for c, k, n, family in progress(tasks, label="bench_bounds"):
        repeats = 3 if args.quick or c < 256 else 2
        rows.append(measure(c, k, n, family, repeats))
    print(format_table(rows, COLUMNS))
    gram = [r for r in rows if r["kernel"] == "gaussian"]
    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), float64, median of interleaved repeats.\n"
        f"targets: gram within {GRAM_TARGET:.0e} of exact in <= {GRAM_TIME_TARGET} of the full-spectrum time "
        f"(met in {sum(r['gram_met'] for r in rows)}/{len(rows)} rows; accuracy alone in "
        f"{sum(r['gram/exact-1'] <= GRAM_TARGET for r in rows)}/{len(rows)}; gaussian time ratios "
        f"{min(r['gram_t/full'] for r in gram):.2f}..{max(r['gram_t/full'] for r in gram):.2f}); "
        f"zero bound within {ZERO_TARGET:.0%} of the dense norm (met in "
        f"{sum(r.get('zero_met', False) for r in rows)}/{sum('zero_met' in r for r in rows)} rows where dense fits)"
    )
    if args.json:
        write_json(Path(args.json), {"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
