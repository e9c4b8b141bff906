"""Every convolution layer of the library at one shape: speed, memory, and whether it keeps its promise.

Prach, Brau, Buttazzo, Lampert ("1-Lipschitz Layers Compared", CVPR 2024) compare the layers by time and
memory; this adds the column they could not give. Every name of ``orthoconv.networks.CONV_LAYERS`` (so
layers added there appear here) is built by :func:`orthoconv.networks.conv_layer` at one shape
(``c -> c`` channels, ``k x k``, ``H x W`` images, a batch of ``N``, float32) and measured:

- ``train_ratio``: the time of one training step (forward, ``mean(y^2)`` backward, an SGD step) over that of
  an unconstrained ``nn.Conv2d`` of the same shape (circular padding), the two timed interleaved in one
  process (:mod:`analysis.common.timing`); ``infer_ratio`` likewise for an eval forward without gradients.
  ``train_ms`` is the layer's own median.
- ``memory_MB``: on CUDA the peak memory allocated during a training step beyond what was allocated before
  it; on the CPU (no allocator statistics) the bytes autograd saves for the backward (tensors kept between
  forward and backward, each storage counted once), the part of a step's memory that grows with the batch.
- ``sigma_min``/``sigma_max``: after ``TRAINED_STEPS`` Adam steps (lr 1e-2, a seeded random regression target,
  ``project_()`` after each where a layer has one, as in training; on a copy, so the timed steps do not change it), the extreme singular values of the layer's operator on
  ``H x W`` measured by
  :func:`orthoconv.spectral.module_spectrum` (exact: FFT, float64, of the layer's own kernel at its own
  padding, or the dense matrix of its forward), and ``claimed``: the layer's own ``lipschitz_bound``. A layer
  that is not a linear map (a residual layer with an activation inside) has no spectrum: ``sigma_max`` is
  then the certified Lipschitz bound of :func:`orthoconv.verify.check_model` and ``sigma_min`` is empty.
- ``keeps``: the promise it makes (``orthogonal``: every singular value 1; ``1-Lipschitz``: ``sigma_max <=
  1``) holds to ``--tol`` (1e-5, float32 rounding); ``conv`` (a spectrally normalized ``nn.Conv2d``, here
  for contrast) promises a unit norm of its reshaped weight matrix only, and its conv norm is reported.

``python -m analysis.bench.layers [--quick] [--channels C] [--size S] [--batch N] [--layers ...] [--json FILE]``
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from orthoconv.cli.args import Parser, positive_float, positive_int
from orthoconv.cli.args import device as device_type
from orthoconv.cli.args import seed as seed_type
from orthoconv.io import device_name, format_table, load_average
from orthoconv.math.spectral import module_spectrum
from orthoconv.networks import CONV_LAYERS, conv_layer
from orthoconv.verify import check_model

from ..common.harness import write_json
from ..common.timing import add_policy_arguments, flag_summary, policy_from, timed_row, verdict

# name -> (promise, the paper it comes from); a name missing here is reported as "1-Lipschitz", source "?"
LAYERS = {
    "bcop": ("orthogonal", "Li et al., NeurIPS 2019"),
    "rko": ("1-Lipschitz", "Cisse et al., ICML 2017; Li et al. 2019"),
    "ossn": ("1-Lipschitz", "Miyato et al., ICLR 2018 (conv power iteration)"),
    "svcm": ("1-Lipschitz", "Sedghi, Gupta, Long, ICLR 2019"),
    "rkl2ne": ("1-Lipschitz", "Qian & Wegman, ICLR 2019"),
    "cayley": ("orthogonal", "Trockman & Kolter, ICLR 2021"),
    "soc": ("orthogonal", "Singla & Feizi, ICML 2021"),
    "conv": ("unit reshaped norm", "spectral_norm (Miyato et al. 2018), for contrast"),
    "aol": ("1-Lipschitz", "Prach & Lampert, ECCV 2022"),
    "cpl": ("1-Lipschitz", "Meunier et al., ICML 2022"),
    "sll": ("1-Lipschitz", "Araujo et al., ICLR 2023"),
    "lot": ("orthogonal", "Xu, Li, Li, NeurIPS 2022"),
    "sandwich": ("1-Lipschitz", "Wang & Manchester, ICML 2023"),
    "bro": ("orthogonal", "Lai et al., ICML 2025"),
}
TRAINED_STEPS = 5
COLUMNS = ["layer", "train_ratio", "infer_ratio", "train_ms", "memory_MB", "sigma_min", "sigma_max", "off_promise",
           "claimed", "promise", "keeps", "flag", "paper"]


def _step(module: nn.Module, x: torch.Tensor):
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        module(x).square().mean().backward()
        optimizer.step()

    return step


def _infer(module: nn.Module, x: torch.Tensor):
    def run() -> None:
        with torch.no_grad():
            module(x)

    return run


def trained_copy(module: nn.Module, x: torch.Tensor, seed: int) -> nn.Module:
    """A copy of ``module`` after :data:`TRAINED_STEPS` Adam steps towards a seeded random target, in eval mode."""
    trained = copy.deepcopy(module).train()
    target = torch.randn(trained(x).shape, generator=torch.Generator().manual_seed(seed + 1)).to(x.device)
    optimizer = torch.optim.Adam(trained.parameters(), lr=1e-2)
    for _ in range(TRAINED_STEPS):
        optimizer.zero_grad(set_to_none=True)
        (trained(x) - target).square().mean().backward()
        optimizer.step()
        for part in trained.modules():  # projected layers (SVCM) are projected after each step, as in training
            if callable(getattr(part, "project_", None)):
                part.project_()
    return trained.eval()


def step_memory(module: nn.Module, x: torch.Tensor) -> float:
    """MB of one training step (module docstring): the CUDA peak beyond the memory in use, else the bytes
    saved for the backward."""
    step = _step(module, x)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        before = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        step()
        torch.cuda.synchronize(x.device)
        return (torch.cuda.max_memory_allocated(x.device) - before) / 2**20
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x).square().mean().backward()
    module.zero_grad(set_to_none=True)
    return sum(storages.values()) / 2**20


def off_promise(promise: str, sigma_min: float, sigma_max: float) -> float:
    """How far the measured spectrum is from the promise: ``max |sigma - 1|`` for an orthogonal layer, else
    ``sigma_max - 1`` (negative: below 1, kept)."""
    return max(1 - sigma_min, sigma_max - 1) if promise == "orthogonal" else sigma_max - 1


def operator_range(module: nn.Module, x: torch.Tensor) -> tuple[float | str, float, bool, str]:
    """``(sigma_min, sigma_max, exact, method)`` of a linear layer on ``x``'s size (:func:`module_spectrum`), or
    ``("", certified Lipschitz bound, exact, "check_model")`` for a layer that is not linear."""
    try:
        spectrum = module_spectrum(module, tuple(x.shape[-2:]))
    except TypeError:
        report = check_model(nn.Sequential(module), x)
        return "", report.lipschitz_upper, False, "check_model"
    return spectrum.sigma_min, spectrum.sigma_max, spectrum.exact, spectrum.method


def measure(name: str, channels: int, kernel: int, size: int, batch: int, device, policy, tol: float,
            seed: int) -> dict:
    """One row of the table for layer ``name``."""
    promise, paper = LAYERS.get(name, ("1-Lipschitz", "?"))
    torch.manual_seed(seed)
    layer = conv_layer(name, channels, channels, kernel, (size, size)).to(device)
    baseline = nn.Conv2d(channels, channels, kernel, padding="same", padding_mode="circular", device=device)
    x = torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed)).to(device)
    measured = trained_copy(layer, x, seed)
    timings, quality = timed_row([_step(baseline, x), _step(layer, x), _infer(baseline.eval(), x),
                                  _infer(layer.eval(), x)], policy, str(device))
    memory = step_memory(layer.train(), x)
    with torch.no_grad():
        low, high, exact, method = operator_range(measured, x[:1])
        claimed = float(measured.lipschitz_bound((size, size))) if hasattr(measured, "lipschitz_bound") else ""
    off = off_promise(promise, low if low != "" else 1.0, high)
    return {"layer": name, "train_ratio": timings[1].median / timings[0].median,
            "infer_ratio": timings[3].median / timings[2].median, "train_ms": 1000 * timings[1].median,
            "memory_MB": memory, "sigma_min": low, "sigma_max": high,
            "off_promise": f"{off:.1e}", "exact": exact, "method": method, "claimed": claimed,
            "promise": promise, "keeps": verdict(off <= tol, "") if promise in ("orthogonal", "1-Lipschitz") else "n/a",
            "paper": paper, **quality}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(prog=prog or "python -m analysis.bench.layers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few timed rounds, a small shape (seconds per layer)")
    parser.add_argument("--layers", nargs="+", choices=CONV_LAYERS, default=list(CONV_LAYERS),
                        help="which layers (default: every name of orthoconv.networks.CONV_LAYERS)")
    parser.add_argument("--channels", type=positive_int, help="channels in and out (default 32; --quick 16)")
    parser.add_argument("--size", type=positive_int, help="image side (default 16; --quick 8)")
    parser.add_argument("--kernel", type=positive_int, default=3, help="kernel size (default %(default)s)")
    parser.add_argument("--batch", type=positive_int, help="batch size (default 32; --quick 8)")
    parser.add_argument("--tol", type=positive_float, default=1e-5,
                        help="slack of 'keeps' on the singular values (default %(default)g, float32 rounding)")
    parser.add_argument("--device", type=device_type, default="cpu", help="cpu, cuda (default %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: PyTorch's)")
    parser.add_argument("--seed", type=seed_type, default=0, help="seed of the parameters and the batch (default 0)")
    parser.add_argument("--json", default=None, help="write the rows and the run's metadata here")
    add_policy_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    channels = args.channels or (16 if args.quick else 32)
    size = args.size or (8 if args.quick else 16)
    batch = args.batch or (8 if args.quick else 32)
    policy = policy_from(args)
    device = torch.device(args.device)
    before = load_average()
    rows = [measure(name, channels, args.kernel, size, batch, device, policy, args.tol, args.seed)
            for name in args.layers]
    after = load_average()
    print(f"{channels} -> {channels} channels, kernel {args.kernel}, {size}x{size} images, batch {batch}, float32; "
          f"device {device_name(device)}, {torch.get_num_threads()} threads; load average before {before}, after "
          f"{after}")
    print(format_table(rows, COLUMNS))
    print(flag_summary(rows, policy.tolerance))
    print(f"ratios: time over nn.Conv2d({channels}, {channels}, {args.kernel}, circular), interleaved; memory_MB: "
          + ("CUDA peak of a step" if device.type == "cuda" else "bytes saved for the backward (CPU)")
          + f"; sigma: exact spectrum on {size}x{size} (module_spectrum); keeps: the promise to {args.tol:g}")
    if args.json:
        write_json(args.json, {"load_before": before, "load_after": after, "rows": rows}, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
