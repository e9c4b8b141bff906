"""One training step of a small BCOP network, in float32 and under bfloat16 autocast, checked.

The network is the BCOP design of Li et al. 2019 in miniature (3 x 16 x 16 inputs, 10 classes):
``BCOP(3, 16, 3), MaxMin, InvertibleDownsampling(2), BCOP(64, 32, 3), MaxMin, Flatten,
OrthogonalLinear(2048, 10)``, trained one Adam step on cross-entropy over a seeded random batch.

Each mode (``float32``: everything in float32; ``bf16-autocast``: float32 parameters, the forward under
``torch.autocast(dtype=torch.bfloat16)``) passes when the loss and every gradient are finite, every
parameter moved, and every BCOP kernel the forward used is orthogonal to float32 accuracy
(max|sigma - 1| < 1e-5 on the layer's image size): under autocast only the convolution may run in
bfloat16, never the construction of the kernel. The exit status is 1 when a check fails.

``python -m analysis.bench.train_step [--device DEV] [--modes float32 bf16-autocast] [--json FILE]``
"""

from __future__ import annotations

import sys
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from orthoconv import BCOP, InvertibleDownsampling, MaxMin, OrthogonalLinear
from orthoconv.cli.args import Parser, device, output_file
from orthoconv.cli.args import seed as seed_type
from orthoconv.io import format_table
from orthoconv.verify import check_orthogonal

from ..common.harness import write_json

MODES = ("float32", "bf16-autocast")
FLOAT32_TOL = 1e-5
SIDE, BATCH, CLASSES = 16, 8, 10


def small_bcop_network(device) -> nn.Sequential:
    """The network of the module docstring, float32, on ``device``."""
    return nn.Sequential(
        BCOP(3, 16, 3, device=device), MaxMin(), InvertibleDownsampling(2),
        BCOP(64, 32, 3, device=device), MaxMin(), nn.Flatten(),
        OrthogonalLinear(32 * (SIDE // 2) ** 2, CLASSES, device=device),
    )


def _kernels_used(net: nn.Sequential, context) -> list[tuple[torch.Tensor, tuple[int, int]]]:
    """Every BCOP kernel as the forward builds it in ``context``, with the image size it acts on."""
    sizes = [(SIDE, SIDE), (SIDE // 2, SIDE // 2)]
    layers = [module for module in net if isinstance(module, BCOP)]
    with torch.no_grad(), context:
        return [(layer.kernel(), size) for layer, size in zip(layers, sizes)]


def train_step(mode: str, device: str, seed: int = 0) -> dict:
    """One step in ``mode`` (:data:`MODES`); returns the measurements and ``checks`` (name -> passed)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    torch.manual_seed(seed)
    net = small_bcop_network(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(BATCH, 3, SIDE, SIDE, generator=generator, device=device)
    labels = torch.randint(CLASSES, (BATCH,), generator=generator, device=device)
    before = [p.detach().clone() for p in net.parameters()]
    context = torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if mode != "float32" else nullcontext()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    with context:
        logits = net(x)
    loss = F.cross_entropy(logits.float(), labels)
    loss.backward()
    grads_finite = all(bool(torch.isfinite(p.grad).all()) for p in net.parameters())
    optimizer.step()
    moved = all(not torch.equal(p.detach(), b) for p, b in zip(net.parameters(), before))
    deviation = max(check_orthogonal(kernel.detach().float(), size).max_deviation
                    for kernel, size in _kernels_used(net, context))
    checks = {"loss_finite": bool(torch.isfinite(loss)), "grads_finite": grads_finite, "parameters_moved": moved,
              "kernels_orthogonal": deviation < FLOAT32_TOL}
    return {"mode": mode, "loss": float(loss.detach()), "logits_dtype": str(logits.dtype).replace("torch.", ""),
            "kernel_max_deviation": deviation, "passed": all(checks.values()), "checks": checks}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(prog=prog or "python -m analysis.bench.train_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", type=device, default="cpu", help="torch device (default cpu)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="modes (default both)")
    parser.add_argument("--seed", type=seed_type, default=0,
                        help="random seed of the network and the batch (default 0)")
    parser.add_argument("--json", metavar="FILE", type=output_file, help="also write the rows and the run as JSON")
    args = parser.parse_args(argv)
    rows = [train_step(mode, args.device, args.seed) for mode in args.modes]
    print(format_table(rows, ["mode", "loss", "logits_dtype", "kernel_max_deviation", "passed"]))
    for row in rows:
        failed = [name for name, ok in row["checks"].items() if not ok]
        if failed:
            print(f"{row['mode']}: FAILED {', '.join(failed)} (kernel max|sigma - 1| = "
                  f"{row['kernel_max_deviation']:.2e}, bar {FLOAT32_TOL:g})", file=sys.stderr)
    if args.json:
        write_json(args.json, {"rows": rows}, args)
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
