"""Benchmark of the core (not a test): ratios against baselines timed in the same process.

1. BCOP kernel construction, forward + backward, at (c, k) in {(64, 3), (256, 3), (64, 5)}, against
   a baseline written here that follows the 2019 algorithm (Li et al. 2019: 20 Björck steps with
   power-iteration prescaling on 2k - 1 full c x c matrices, half-rank masks, kernel composition by
   a Python loop over taps) and against orthogonium's FastBlockConv2d when it is installed.
2. One training step (forward + backward) of a BCOP layer, batch 128, 64 -> 64 channels, 32 x 32,
   k = 3, against nn.Conv2d with circular padding.
3. ``conv_singular_values`` (64 x 64 x 3 x 3 kernel, 32 x 32 image, float64) against numpy
   ``fft2`` + ``svd``; the orthogonality certificate against the same numpy time.

``python -m analysis.bench.core [--quick] [--json FILE] [--device DEV]``; each row prints the median
time of both sides (run interleaved, repeated until their spread is small: analysis/timing.py), their
ratio, the target, the measured max |sigma - 1| of each kernel, the spread, the load average and a flag:
``noisy`` rows (spread above ``--tolerance``) are no result and show ``?`` as their verdict; ``loaded``
rows ran while the load exceeded the number of cores.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from orthoconv import BCOP
from orthoconv.cli.args import Parser, device, output_file
from orthoconv.io import progress
from orthoconv.io.table import format_table
from orthoconv.spectral import conv_singular_values, orthogonality_certificate
from orthoconv.verify import check_orthogonal

from ..common.harness import write_json
from ..common.timing import RepeatPolicy, add_policy_arguments, flag_summary, policy_from, timed_row, verdict


def bjorck_2019(A: torch.Tensor, steps: int = 20, power_steps: int = 10) -> torch.Tensor:
    """The 2019 orthogonalization: prescale by a power-iteration estimate of ``||A||_2``, then a fixed
    number of Björck steps ``X <- 1.5 X - 0.5 X X^T X``."""
    v = torch.ones(A.shape[:-2] + (A.shape[-1], 1), dtype=A.dtype, device=A.device)
    for _ in range(power_steps):
        v = A.transpose(-2, -1) @ (A @ v)
        v = v / torch.linalg.vector_norm(v, dim=-2, keepdim=True)
    sigma = torch.linalg.vector_norm(A @ v, dim=(-2, -1), keepdim=True)
    X = A / sigma
    for _ in range(steps):
        X = 1.5 * X - 0.5 * X @ X.transpose(-2, -1) @ X
    return X


def loop_compose(W1: list, W2: list) -> list:
    """Kernel composition tap by tap with Python loops (the 2019 code's block convolution);
    kernels are nested lists ``W[p][q]`` of c x c matrices."""
    kh, kw = len(W1) + len(W2) - 1, len(W1[0]) + len(W2[0]) - 1
    out = [[0 for _ in range(kw)] for _ in range(kh)]
    for p1, row1 in enumerate(W1):
        for q1, a in enumerate(row1):
            for p2, row2 in enumerate(W2):
                for q2, b in enumerate(row2):
                    out[p1 + p2][q1 + q2] = out[p1 + p2][q1 + q2] + a @ b
    return out


def bcop_2019_kernel(params: torch.Tensor) -> torch.Tensor:
    """``params``: ``(2k - 1, c, c)``; H from the first, ``P_i``, ``Q_i`` as half-rank ``U mask U^T``."""
    c = params.shape[-1]
    Q = bjorck_2019(params)
    mask = (torch.arange(c, device=params.device) < c // 2).to(params.dtype)
    projectors = (Q[1:] * mask) @ Q[1:].transpose(-2, -1)
    eye = torch.eye(c, dtype=params.dtype, device=params.device)
    kernel = [[Q[0]]]
    for P, R in zip(projectors[0::2], projectors[1::2]):
        block = [[P @ R, P @ (eye - R)], [(eye - P) @ R, (eye - P) @ (eye - R)]]
        kernel = loop_compose(kernel, block)
    return torch.stack([torch.stack(row, dim=-1) for row in kernel], dim=-2)


def load_orthogonium():
    try:
        from orthogonium.layers.conv.AOC.fast_block_ortho_conv import FastBlockConv2d
    except ImportError:
        return None
    return FastBlockConv2d


def kernel_rows(c: int, k: int, policy: RepeatPolicy, device: str) -> list[dict]:
    torch.manual_seed(0)
    layer = BCOP(c, c, k, device=device)
    probe = torch.randn(c, c, k, k, device=device)
    params = torch.randn(2 * k - 1, c, c, device=device, requires_grad=True)
    sides = {
        "ours": (lambda: layer.kernel(), lambda: (layer.kernel() * probe).sum().backward()),
        "2019 algorithm": (lambda: bcop_2019_kernel(params), lambda: (bcop_2019_kernel(params) * probe).sum().backward()),
    }
    FastBlockConv2d = load_orthogonium()
    if FastBlockConv2d is not None:
        other = FastBlockConv2d(c, c, k).to(device)
        sides["orthogonium FastBlockConv2d"] = (lambda: other.weight, lambda: (other.weight * probe).sum().backward())
    timings, quality = timed_row([step for _, step in sides.values()], policy, device)
    deviations = [check_orthogonal(build().detach(), (16, 16)).max_deviation for build, _ in sides.values()]
    targets = {"2019 algorithm": 0.5, "orthogonium FastBlockConv2d": 1.0}
    return [
        {"benchmark": f"kernel fwd+bwd c={c} k={k}", "baseline": name, "ours_ms": 1e3 * timings[0].median,
         "baseline_ms": 1e3 * timing.median, "target": targets[name], "ours_dev": deviations[0],
         "baseline_dev": dev, **quality}
        for name, timing, dev in zip(list(sides)[1:], timings[1:], deviations[1:])
    ]


def training_step_row(policy: RepeatPolicy, device: str, batch: int, c: int, n: int) -> dict:
    torch.manual_seed(0)
    layer = BCOP(c, c, 3, device=device)
    conv = torch.nn.Conv2d(c, c, 3, padding=1, padding_mode="circular", device=device)
    x = torch.randn(batch, c, n, n, device=device)
    target = torch.randn(batch, c, n, n, device=device)

    def step(module):
        def run():
            module.zero_grad(set_to_none=True)
            ((module(x) - target) ** 2).mean().backward()
        return run

    (ours, base), quality = timed_row([step(layer), step(conv)], policy, device)
    return {"benchmark": f"train step b={batch} {c}->{c} {n}x{n} k=3", "baseline": "nn.Conv2d circular",
            "ours_ms": 1e3 * ours.median, "baseline_ms": 1e3 * base.median, "target": 1.10, **quality}


def spectrum_rows(policy: RepeatPolicy, c: int, k: int, n: int) -> list[dict]:
    kernel = torch.randn(c, c, k, k, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    array = kernel.numpy()

    def numpy_reference():
        response = np.fft.fft2(array, s=(n, n), axes=(2, 3)).transpose(2, 3, 0, 1)
        return np.linalg.svd(response, compute_uv=False)

    (ours, certificate, base), quality = timed_row(
        [lambda: conv_singular_values(kernel, (n, n)), lambda: orthogonality_certificate(kernel, (n, n)),
         numpy_reference], policy, "cpu")
    sigma, reference = conv_singular_values(kernel, (n, n)).numpy(), numpy_reference()
    error = float(np.abs(np.sort(sigma.ravel()) - np.sort(reference.ravel())).max() / reference.max())
    return [
        {"benchmark": f"conv_singular_values {c}x{c}x{k}x{k} on {n}x{n} f64", "baseline": "numpy fft2 + svd",
         "ours_ms": 1e3 * ours.median, "baseline_ms": 1e3 * base.median, "target": 0.5, "ours_dev": error, **quality},
        {"benchmark": "orthogonality certificate, same kernel", "baseline": "numpy fft2 + svd",
         "ours_ms": 1e3 * certificate.median, "baseline_ms": 1e3 * base.median, "target": 0.1, **quality},
    ]


KERNEL_CONFIGS = [(64, 3), (256, 3), (64, 5)]  # (channels, kernel size)
TRAIN_SHAPE = (128, 64, 32)  # (batch, channels, image side); --quick: a quarter of the batch
SPECTRUM_SHAPE = (64, 3, 32)  # (channels, kernel size, image side), float64

COLUMNS = ["benchmark", "baseline", "ours_ms", "baseline_ms", "ratio", "target", "met", "ours_dev", "baseline_dev",
           "spread", "repeats", "load", "flag"]


def build_parser(prog: str | None = None) -> Parser:
    parser = Parser(prog=prog or "python -m analysis.bench.core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller training batch")
    parser.add_argument("--device", type=device, default="cpu",
                        help="torch device for the BCOP timings (default cpu)")
    parser.add_argument("--json", metavar="FILE", type=output_file,
                        help="also write the rows and the run's metadata as JSON")
    add_policy_arguments(parser)
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    policy = policy_from(args)
    batch, c, n = TRAIN_SHAPE
    batch = max(1, batch // 4) if args.quick else batch
    tasks = [lambda c=c, k=k: kernel_rows(c, k, policy, args.device) for c, k in KERNEL_CONFIGS]
    tasks.append(lambda: [training_step_row(policy, args.device, batch, c, n)])
    tasks.append(lambda: spectrum_rows(policy, *SPECTRUM_SHAPE))
    rows = [row for task in progress(tasks, label="bench") for row in task()]
    for row in rows:
        row["ratio"] = row["ours_ms"] / row["baseline_ms"]
        row["met"] = row["ratio"] <= row["target"]
    print(format_table([{**row, "met": verdict(row["met"], row["flag"])} for row in rows], COLUMNS))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          "ratio = ours / baseline (median of interleaved repeats); *_dev = max|sigma - 1| of the kernel (spectrum: "
          "relative error); spread = the larger side's MAD / median; load = 1-min load average")
    print(flag_summary(rows, policy.tolerance))
    if args.json:
        write_json(args.json, {"policy": asdict(policy), "rows": rows}, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
