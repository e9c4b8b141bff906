"""Training throughput of whole networks (a benchmark, not a test): orthoconv's layers against the same
network with plain ``nn.Conv2d``, timed interleaved in one process.

For each architecture (the paper's Small and Large) and input shape (MNIST 1x28x28, and with
``--cifar`` CIFAR-10 3x32x32), versions of the same network train with Adam on random batches of
``--batch`` images: ``conv`` (each convolution a plain ``nn.Conv2d``, circular padding, no constraint:
the baseline), ``conv+sn`` (spectrally normalized, orthoconv's ``conv`` layer), one per layer of
``--layers`` (default ``bcop``; ``all`` for every layer), and ``aoc`` (orthogonium's
``AdaptiveOrthoConv2d`` in place of each convolution) when orthogonium is installed. Linear layers,
activations and downsampling are the same in all. One round runs ``--steps`` training steps of each
version in turn; the table gives the median time per step over ``--rounds`` rounds, the time for 4,000
images (an MNIST-5k epoch), the ratio to ``conv``, and flags a row ``noisy`` when its rounds spread
(interquartile range / median) by more than 20%. Per version, one more forward and backward is
counted (:func:`orthoconv.nn.dispatch.count_dispatch`): its aten operations (each at least one kernel
launch on a GPU) and host synchronizations (Adam's update, the same for every version, is left out);
on CUDA the peak memory of a training step. The load average is recorded before and after: timings on a loaded
machine are labelled as such.

``python -m analysis.bench.networks [--quick] [--cifar] [--layers L ...] [--device DEV] [--threads N] [--json FILE]``
"""

from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from orthoconv.cli.args import Parser, positive_int
from orthoconv.cli.args import device as device_type
from orthoconv.io import device_name, format_table, load_average, run_metadata, write_json
from orthoconv.networks import CONV_LAYERS, build
from orthoconv.nn.dispatch import count_dispatch

TRAIN_IMAGES = 4000
NOISY = 0.2


def plain_conv_network(arch: str, channels: int, side: int) -> nn.Module:
    """``arch`` with every convolution an unconstrained ``nn.Conv2d`` (the spectral norm removed)."""
    model = build(arch, "conv", channels, side, 10)
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and nn.utils.parametrize.is_parametrized(module):
            nn.utils.parametrize.remove_parametrizations(module, "weight")
    return model


def aoc_network(arch: str, channels: int, side: int) -> nn.Module | None:
    """``arch`` with every convolution orthogonium's ``AdaptiveOrthoConv2d`` of the same shape, or ``None``."""
    try:
        from orthogonium.layers.conv.AOC.ortho_conv import AdaptiveOrthoConv2d
    except ImportError:
        return None
    model = plain_conv_network(arch, channels, side)

    def replace(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                setattr(parent, name, AdaptiveOrthoConv2d(child.in_channels, child.out_channels, child.kernel_size[0],
                                                          padding="same", padding_mode="circular"))
            else:
                replace(child)

    replace(model)
    return model


def variants(arch: str, channels: int, side: int, layers: list[str]) -> dict[str, nn.Module | str]:
    torch.manual_seed(0)
    found = {"conv": plain_conv_network(arch, channels, side), "conv+sn": build(arch, "conv", channels, side, 10)}
    found.update({layer: build(arch, layer, channels, side, 10) for layer in layers if layer != "conv"})
    try:
        aoc = aoc_network(arch, channels, side)
    except Exception as err:  # a peer layer that cannot take this shape: reported, not fatal
        aoc = f"{type(err).__name__}: {str(err).splitlines()[0][:80]}"
    if aoc is not None:
        found["aoc"] = aoc
    return found


def step_function(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """``(step, forward_backward)``: a training step with Adam, and its forward and backward alone."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def forward_backward() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.multi_margin_loss(model(x), y, margin=2.2).backward()

    def step() -> None:
        forward_backward()
        optimizer.step()

    return step, forward_backward


def time_rounds(steps: dict, n_steps: int, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per step of each function, one list per name, rounds interleaved after a warm-up round."""
    times = {name: [] for name in steps}
    for round_ in range(rounds + 1):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(n_steps):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if round_:
                times[name].append((time.perf_counter() - start) / n_steps)
    return times


def spread(values: list[float]) -> float | None:
    """Interquartile range over median (range over median below 4 rounds; ``None`` for one round)."""
    if len(values) < 2:
        return None
    if len(values) < 4:
        return (max(values) - min(values)) / statistics.median(values)
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / statistics.median(values)


def count_step(step, forward_backward, device: torch.device) -> dict:
    """aten operations and host synchronizations of one forward and backward (the network's own: Adam's
    update is the same for every layer); the peak memory of a training step on CUDA (MiB)."""
    with count_dispatch() as count:
        forward_backward()
    peak = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    return {"aten_ops": count.ops, "host_syncs": count.syncs, "peak_mib": peak}


def bench_rows(arch: str, channels: int, side: int, batch: int, n_steps: int, rounds: int, device,
               layers: list[str]) -> list[dict]:
    models = variants(arch, channels, side, layers)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, channels, side, side, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    steps, passes, failed = {}, {}, {}
    for name, model in models.items():
        if isinstance(model, str):
            failed[name] = model
            continue
        try:
            model.to(device).train()
            steps[name], passes[name] = step_function(model, x, y)
            steps[name]()
        except Exception as err:  # a peer layer that cannot take this shape: reported, not fatal
            failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:80]}"
            steps.pop(name, None)
    counts = {name: count_step(step, passes[name], device) for name, step in steps.items()}
    times = time_rounds(steps, n_steps, rounds, device)
    base = statistics.median(times["conv"])
    rows = []
    for name, values in times.items():
        median, scatter = statistics.median(values), spread(values)
        rows.append({"arch": arch, "input": f"{channels}x{side}x{side}", "batch": batch, "network": name,
                     "ms_per_step": 1000 * median, "s_per_4k_images": median * math.ceil(TRAIN_IMAGES / batch),
                     "ratio_to_conv": median / base, "spread": scatter,
                     "noisy": "n/a" if scatter is None else scatter > NOISY, **counts[name]})
    for name, reason in failed.items():
        rows.append({"arch": arch, "input": f"{channels}x{side}x{side}", "batch": batch, "network": name,
                     "error": reason})
    return rows


COLUMNS = ["arch", "input", "batch", "network", "ms_per_step", "s_per_4k_images", "ratio_to_conv", "spread", "noisy",
           "aten_ops", "host_syncs", "peak_mib"]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(prog=prog or "python -m analysis.bench.networks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Small only, few rounds (seconds)")
    parser.add_argument("--cifar", action="store_true", help="also the CIFAR-10 shape 3x32x32")
    parser.add_argument("--only-cifar", action="store_true", help="only the CIFAR-10 shape (the GPU check)")
    parser.add_argument("--archs", nargs="+", choices=("small", "large"), default=["small", "large"])
    parser.add_argument("--layers", nargs="+", choices=(*CONV_LAYERS, "all"), default=["bcop"],
                        help="orthoconv layers to time beside conv and conv+sn (default: bcop; all: every layer)")
    parser.add_argument("--batch", type=positive_int, default=128, help="batch size (default %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=4, help="steps per round (default %(default)s)")
    parser.add_argument("--rounds", type=positive_int, default=7, help="timed rounds (default %(default)s)")
    parser.add_argument("--device", type=device_type, default="cpu", help="cpu, cuda (default %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: PyTorch's)")
    parser.add_argument("--json", default=None, help="write the rows and the run's metadata here")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    archs = ["small"] if args.quick else args.archs
    layers = [layer for layer in CONV_LAYERS if layer != "conv"] if "all" in args.layers else args.layers
    rounds, steps = (2, 2) if args.quick else (args.rounds, args.steps)
    shapes = [] if args.only_cifar else [(1, 28)]
    shapes += [(3, 32)] if args.cifar or args.only_cifar else []
    before = load_average()
    rows = [row for arch in archs for channels, side in shapes
            for row in bench_rows(arch, channels, side, args.batch, steps, rounds, device, layers)]
    after = load_average()
    print(f"device {device_name(device)}, {torch.get_num_threads()} threads; load average before {before}, "
          f"after {after} (on a loaded machine every row is slower, the ratios less so)")
    print(format_table([r for r in rows if "error" not in r], COLUMNS))
    for row in rows:
        if "error" in row:
            print(f"{row['arch']} {row['input']} {row['network']}: not timed ({row['error']})")
    if "aoc" not in {r["network"] for r in rows}:
        print("aoc: orthogonium is not installed (pip install 'orthoconv[bench]')")
    if args.json:
        write_json(args.json, {"metadata": run_metadata(args, device), "load_before": before, "load_after": after,
                               "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
