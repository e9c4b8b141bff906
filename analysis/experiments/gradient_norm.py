"""Gradient norm preservation, measured: deep stacks of each convolution with MaxMin or ReLU.

A network of depth L is ``f = (act o conv_L) o ... o (act o conv_1)`` with a constant channel count,
stride 1 and circular padding. Backpropagating a unit cotangent ``g`` from the output gives ``g_l``
at the input of block ``l``; the network is gradient norm preserving (GNP) when
``||g_l|| / ||g|| = 1`` for every ``g`` and ``l``, i.e. every singular value of the Jacobian is 1
(Li et al., "Preventing Gradient Attenuation in Lipschitz Constrained Convolutional Networks",
NeurIPS 2019, arXiv 1911.00937, Sec. 2 on gradient norm preservation). Orthogonal convolutions
(BCOP, Cayley, SOC) with MaxMin are GNP; ReLU keeps the gradient only where its input is positive,
so ``||J_act^T g||^2 / ||g||^2`` is about the fraction of positive pre-activations; the convolutions
that are only norm-bounded (RKO, RK-L2NE, a plain convolution scaled to spectral norm 1, and OSSN and
SVCM, whose bound is approximate) have singular values spread below 1 and lose norm at every layer.

Measured for every network, before and after a short training run towards a fixed random BCOP +
MaxMin target: the per-layer ratios ``||g_l|| / ||g||`` for several seeded unit cotangents at one
seeded point, the per-layer squared factors of each convolution and activation, and the singular
values of the Jacobian at that point (all of them from the dense Jacobian when the input has at
most ``--dense-limit`` entries, otherwise Lanczos estimates of the extremes).
"""

from __future__ import annotations

import argparse
import sys

import torch

from orthoconv.cli.args import device, positive_float, positive_int

from ..common.harness import experiment_parser, run_sweep, save_figure, worker_pool, write_json
from .gradient_measure import DTYPES, make_jobs, network_task
from .gradient_plots import draw_depth, draw_spectra
from .gradient_stacks import ACTIVATIONS, LAYERS, LayerUnavailable, check_layer
from .gradient_tables import depth_rows, factor_rows, print_tables, spectrum_rows, training_rows

DEFAULTS = {
    "depths": [1, 2, 4, 8, 16, 32, 64],
    "train_depths": [1, 4, 16],
    "channels": 16,
    "image_size": 16,
    "kernel_size": 3,
    "steps": 200,
    "batch": 4,
    "lr": 1e-3,
    "probes": 8,
    "dense_limit": 1024,
    "lanczos_steps": 32,
    "hist_depth": 8,
    "hist_image_size": 8,
}
QUICK = {
    **DEFAULTS,
    "depths": [1, 3, 6],
    "train_depths": [1, 3, 6],
    "channels": 8,
    "image_size": 8,
    "steps": 10,
    "probes": 4,
    "hist_depth": 3,
    "hist_image_size": 4,
}


def _layer_name(text: str) -> str:
    names = {name.lower().replace("-", ""): name for name in LAYERS}
    key = text.lower().replace("-", "")
    if key not in names:
        raise argparse.ArgumentTypeError(f"unknown layer {text!r}; choose from {', '.join(LAYERS)}")
    return names[key]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = experiment_parser("gradient_norm", __doc__.splitlines()[0], prog)
    quick = "; --quick: "
    add = parser.add_argument
    add("--device", type=device, default="cpu", help="torch device (default cpu)")
    add("--dtype", choices=sorted(DTYPES), default="float32", help="float32 (default) or float64")
    add("--layers", nargs="+", type=_layer_name, help=f"convolutions (default: those of {', '.join(LAYERS)} that "
        "exist; a named layer that is missing makes the exit status 1)")
    add("--activations", nargs="+", choices=list(ACTIVATIONS), default=list(ACTIVATIONS),
        help="activations (default both)")
    add("--depths", nargs="+", type=positive_int,
        help=f"network depths (default {DEFAULTS['depths']}{quick}{QUICK['depths']})")
    add("--train-depths", nargs="+", type=positive_int, help="depths (among --depths) also trained and measured "
        f"again (default {DEFAULTS['train_depths']}{quick}{QUICK['train_depths']})")
    add("--channels", type=positive_int,
        help=f"channels of every layer (default {DEFAULTS['channels']}{quick}{QUICK['channels']})")
    add("--image-size", type=positive_int,
        help=f"square image side (default {DEFAULTS['image_size']}{quick}{QUICK['image_size']})")
    add("--kernel-size", type=positive_int, help=f"kernel side (default {DEFAULTS['kernel_size']})")
    add("--steps", type=int,
        help=f"training steps (default {DEFAULTS['steps']}{quick}{QUICK['steps']}; 0: no training)")
    add("--batch", type=positive_int, help=f"training batch size (default {DEFAULTS['batch']})")
    add("--lr", type=positive_float, help=f"Adam learning rate (default {DEFAULTS['lr']})")
    add("--probes", type=positive_int,
        help=f"random unit cotangents per network (default {DEFAULTS['probes']}{quick}{QUICK['probes']})")
    add("--dense-limit", type=positive_int, help="largest input size c*n*n with the exact dense Jacobian spectrum; "
        f"larger ones get Lanczos estimates (default {DEFAULTS['dense_limit']})")
    add("--lanczos-steps", type=positive_int, help=f"Lanczos steps on J^T J (default {DEFAULTS['lanczos_steps']})")
    add("--hist-depth", type=positive_int, help="depth of the networks in the singular value histograms "
        f"(default {DEFAULTS['hist_depth']}{quick}{QUICK['hist_depth']})")
    add("--hist-image-size", type=positive_int, help="image side of the histogram networks "
        f"(default {DEFAULTS['hist_image_size']}{quick}{QUICK['hist_image_size']})")
    return parser


def resolve_settings(args: argparse.Namespace) -> dict:
    """The explicit flags, the ``--quick`` values or the defaults, in that order."""
    base = QUICK if args.quick else DEFAULTS
    settings = {key: base[key] if getattr(args, key) is None else getattr(args, key) for key in DEFAULTS}
    settings["depths"] = sorted(set(settings["depths"]))
    settings["dtype"] = args.dtype
    if settings["steps"] < 0:
        raise ValueError(f"--steps must be non-negative, got {settings['steps']}")
    if not settings["steps"]:
        settings["train_depths"] = []
    if not set(settings["train_depths"]) <= set(settings["depths"]):
        raise ValueError(f"--train-depths {settings['train_depths']} must be among --depths {settings['depths']}")
    settings["train_depths"] = sorted(set(settings["train_depths"]))
    if "MaxMin" in args.activations and settings["channels"] % 2:
        raise ValueError(f"MaxMin pairs channels: --channels must be even, got {settings['channels']}")
    return settings


def available_layers(names: list[str], settings: dict, dtype: torch.dtype, device: str) -> tuple[list[str], dict]:
    """The layers that build and run at the configured sizes, and for the others the reason."""
    available, skipped = [], {}
    for name in names:
        try:
            for size in (settings["image_size"], settings["hist_image_size"]):
                check_layer(name, settings["channels"], size, settings["kernel_size"], dtype, device)
            available.append(name)
        except LayerUnavailable as err:
            skipped[name] = str(err)
            print(f"skipped: {err}", file=sys.stderr)
    return available, skipped


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        settings = resolve_settings(args)
    except ValueError as err:
        print(f"gradient_norm: error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    dtype = DTYPES[args.dtype]
    layers, skipped = available_layers(args.layers or list(LAYERS), settings, dtype, args.device)
    if not layers:
        print("gradient_norm: error: none of the requested layers is available", file=sys.stderr)
        return 1
    jobs = make_jobs(settings, layers, args.activations, args.seed, args.dtype, args.device)
    with worker_pool(args.workers) as pool:
        results = run_sweep(network_task, jobs, pool, "gradient-norm")
    acts = args.activations
    tables = {"ratio_vs_depth": depth_rows(results, layers, acts, settings),
              "per_layer": factor_rows(results, layers, acts, settings),
              "training": training_rows(results, layers, acts, settings) if settings["train_depths"] else [],
              "spectrum": spectrum_rows(results, layers, acts, settings)}
    print_tables(tables, settings)
    drawings = {"ratio_vs_depth": ("gradient_norm_depth.png", draw_depth),
                "jacobian_spectra": ("jacobian_spectra.png", draw_spectra)}
    figures = {name: save_figure(args.out / file, draw(results, layers, acts, settings))
               for name, (file, draw) in drawings.items()}
    networks = sorted(results, key=lambda r: (r["layer"], r["activation"], r["image_size"], r["depth"]))
    path = write_json(args.out / "gradient_norm.json",
                      {"seed": args.seed, "quick": args.quick, "device": args.device, "settings": settings,
                       "layers": layers, "activations": acts, "skipped": skipped, "figures": figures,
                       "tables": tables, "networks": networks}, args)
    print(f"\nwrote {path} and {', '.join(str(f) for f in figures.values() if f)}")
    return 1 if skipped and args.layers else 0


if __name__ == "__main__":
    sys.exit(main())
