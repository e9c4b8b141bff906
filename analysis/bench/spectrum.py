"""Benchmark of full spectra at scale (not a test): time, peak memory and the LAPACK floor, one process per row.

Each row computes every singular value of a circular convolution with
:func:`orthoconv.spectral.conv_singular_values` (float64, blocks of 64 MiB of transfer matrices) in a
FRESH subprocess, so that its peak resident memory (``ru_maxrss``; ``torch.cuda.max_memory_allocated``
on a GPU) belongs to that row alone. In the same process it times the floor: one SVD of a random
complex transfer-matrix-sized matrix per decomposed frequency, split over the same threads (measured
on a sample before and after the row, scaled to the number of frequencies). ``time/floor`` is how
close the whole computation comes to the decompositions it cannot avoid. ``sample_err`` is the
largest relative error, on 8 frequencies, against ``torch.fft.fftn`` of the zero-padded kernel
followed by ``svdvals`` (an independent route; stride 1 rows).

Issue 11 target (row ``256x256x3x3 @ 64x64``): at most 12 s and 1 GB peak on 2 cores.

``python -m analysis.bench.spectrum [--quick] [--json FILE] [--threads N] [--device DEV]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from orthoconv.cli.args import Parser, positive_int
from orthoconv.io import format_table, load_average, progress, run_metadata, write_json

TARGET_SECONDS, TARGET_BYTES = 12.0, 2**30
MAIN_ROW = "256x256x3x3 @ 64x64"
FULL = [
    dict(name=MAIN_ROW, c_out=256, c_in=256, k=(3, 3), size=(64, 64)),
    dict(name="64x64x3x3 stride 2 @ 64x64", c_out=64, c_in=64, k=(3, 3), size=(64, 64), stride=2),
    dict(name="256 depthwise 3x3 @ 64x64", c_out=256, c_in=1, k=(3, 3), size=(64, 64), groups=256),
    dict(name="1-D 256x256x5 @ 1024", c_out=256, c_in=256, k=(5,), size=(1024,)),
    dict(name="3-D 32x32x3x3x3 @ 16^3", c_out=32, c_in=32, k=(3, 3, 3), size=(16, 16, 16)),
]
QUICK = [
    dict(name="64x64x3x3 @ 32x32", c_out=64, c_in=64, k=(3, 3), size=(32, 32)),
    dict(name="32x32x3x3 stride 2 @ 32x32", c_out=32, c_in=32, k=(3, 3), size=(32, 32), stride=2),
    dict(name="1-D 64x64x5 @ 256", c_out=64, c_in=64, k=(5,), size=(256,)),
    dict(name="3-D 16x16x3x3x3 @ 8^3", c_out=16, c_in=16, k=(3, 3, 3), size=(8, 8, 8)),
]


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def _floor_seconds(c_out_g: int, n: int, count: int, device: str) -> float:
    """The time of ``count`` SVDs of random complex ``c_out_g x n`` matrices (from a timed sample)."""
    from orthoconv.spectral import batched_svdvals

    sample = min(count, max(64, 2**22 // (c_out_g * n)))  # large enough to time past per-call overheads
    A = torch.randn(sample, c_out_g, n, dtype=torch.complex128, device=device)
    batched_svdvals(A[:2])
    _sync(device)
    start = time.perf_counter()
    batched_svdvals(A)
    _sync(device)
    return (time.perf_counter() - start) * count / sample


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _sample_error(kernel: torch.Tensor, size, sigma: torch.Tensor) -> float:
    """Largest relative error on 8 frequencies against fftn of the zero-padded kernel + svdvals."""
    g = torch.Generator().manual_seed(0)
    spectrum = torch.fft.fftn(kernel, s=size, dim=tuple(range(2, kernel.dim())))
    worst = 0.0
    for _ in range(8):
        u = tuple(int(torch.randint(n, (1,), generator=g)) for n in size)
        reference = torch.linalg.svdvals(spectrum[(slice(None), slice(None), *u)])
        worst = max(worst, float(((sigma[u] - reference).abs() / reference.max()).max()))
    return worst


def run_row(spec: dict, device: str) -> dict:
    """Measure one row in this process (called in a fresh subprocess by :func:`main`)."""
    from orthoconv.spectral import conv_singular_values

    dims = len(spec["k"])
    stride, groups = spec.get("stride", 1), spec.get("groups", 1)
    g = torch.Generator().manual_seed(0)
    kernel = torch.randn(spec["c_out"], spec["c_in"], *spec["k"], generator=g, dtype=torch.float64).to(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    base = _peak_bytes()
    m, n = spec["c_out"] // groups, spec["c_in"] * stride**dims
    grid = [s // stride for s in spec["size"]]
    count = math.prod(grid[:-1]) * (grid[-1] // 2 + 1) * groups
    load_before = load_average()
    floor = _floor_seconds(m, n, count, device)
    _sync(device)
    start = time.perf_counter()
    sigma = conv_singular_values(kernel, spec["size"], stride, groups)
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else _peak_bytes()
    floor = (floor + _floor_seconds(m, n, count, device)) / 2
    row = {"row": spec["name"], "values": sigma.numel(), "frequencies": count, "time_s": seconds, "floor_s": floor,
           "time/floor": seconds / floor, "peak_MB": peak / 2**20, "import_MB": base / 2**20,
           "load": (load_before or [None])[0]}
    if stride == 1 and groups == 1:
        row["sample_err"] = _sample_error(kernel, spec["size"], sigma)
    if spec["name"] == MAIN_ROW:
        row["met"] = seconds <= TARGET_SECONDS and peak <= TARGET_BYTES
    return row


def _module_name() -> str:
    return __spec__.name if __spec__ is not None and __spec__.name != "__main__" else "analysis.bench.spectrum"


COLUMNS = ["row", "values", "frequencies", "time_s", "floor_s", "time/floor", "peak_MB", "import_MB", "sample_err",
           "load", "met"]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(prog=prog or "python -m analysis.bench.spectrum", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="four small rows (seconds)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows and the run's metadata as JSON")
    parser.add_argument("--threads", type=positive_int, default=torch.get_num_threads(),
                        help=f"torch threads per row (default {torch.get_num_threads()}: all cores)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu; cuda when present)")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one row, in this process (used internally)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    if args.row is not None:
        torch.set_num_threads(args.threads)
        print(json.dumps(run_row(json.loads(args.row), args.device)))
        return 0
    rows = []
    for spec in progress(QUICK if args.quick else FULL, label="bench_spectrum"):
        command = [sys.executable, "-m", _module_name(), "--row", json.dumps(spec), "--threads", str(args.threads),
                   "--device", args.device]
        done = subprocess.run(command, capture_output=True, text=True, cwd=os.getcwd())
        if done.returncode:
            parser.error(f"row {spec['name']!r} failed: {done.stderr.strip().splitlines()[-1:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(format_table(rows, COLUMNS))
    print(f"\ntorch {torch.__version__}, device {args.device}, {args.threads} thread(s), float64, niceness "
          f"{os.nice(0)}, load average {load_average()}; peak_MB is the row process's peak resident memory "
          "(GPU: peak allocated), import_MB that of torch and orthoconv alone; target for "
          f"{MAIN_ROW!r}: <= {TARGET_SECONDS:.0f} s and <= {TARGET_BYTES / 2**30:.0f} GB")
    if args.json:
        write_json(Path(args.json), {**run_metadata(args, args.device), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
