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
import importlib
import inspect
import math
import sys
import zlib

import torch
import torch.nn.functional as F
from torch import nn

from orthoconv import MaxMin
from orthoconv.cli.args import positive_float, positive_int
from orthoconv.spectral import conv_spectral_norm
from orthoconv.io.table import format_table

from .harness import experiment_parser, run_sweep, save_figure, worker_pool, write_json
from .jacobian import jacobian_spectrum, sublayer_gradient_ratios, unit_cotangents

LAYERS = {
    "BCOP": ("orthoconv.nn.bcop", "BCOP"),
    "RKO": ("orthoconv.nn.rko", "RKO"),
    "OSSN": ("orthoconv.nn.ossn", "OSSN"),
    "SVCM": ("orthoconv.nn.svcm", "SVCM"),
    "RK-L2NE": ("orthoconv.nn.rkl2ne", "RKL2NE"),
    "Cayley": ("orthoconv.nn.cayley", "CayleyConv"),
    "SOC": ("orthoconv.nn.soc", "SOC"),
    "Conv2d": ("analysis.gradient_norm", "UnitNormConv2d"),
}
ACTIVATIONS = {"MaxMin": MaxMin, "ReLU": nn.ReLU}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
STAGES = ("before", "after")
TARGET_DEPTH = 2
ZERO_FLOOR = 1e-7

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


class LayerUnavailable(RuntimeError):
    """A registered convolution whose module or class cannot be loaded or built."""


class UnitNormConv2d(nn.Conv2d):
    """A plain ``nn.Conv2d`` (circular padding, same size) divided by its exact spectral norm on ``input_size``.

    ``y = conv(W / ||conv(W)||_2) x + b`` with ``||conv(W)||_2`` the largest singular value over the
    frequencies of ``input_size`` (:func:`orthoconv.spectral.conv_spectral_norm`, Sedghi et al. 2019),
    recomputed at every forward and treated as a constant by the gradient: the layer has spectral
    norm exactly 1 whatever its weight, and its other singular values spread in ``[0, 1]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, input_size, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding="same", padding_mode="circular", bias=bias,
                         device=device, dtype=dtype)
        self.input_size = tuple(int(s) for s in input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"UnitNormConv2d was normalized for images {self.input_size}, got {tuple(x.shape[-2:])}")
        sigma = conv_spectral_norm(self.weight.detach(), self.input_size).value
        return self._conv_forward(x, self.weight / sigma, self.bias)


def load_layer(name: str) -> type:
    """The class registered as ``name`` in :data:`LAYERS`; :class:`LayerUnavailable` says why it cannot load."""
    if name not in LAYERS:
        raise LayerUnavailable(f"unknown layer {name!r}; registered: {', '.join(LAYERS)}")
    module_name, class_name = LAYERS[name]
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except ImportError as err:
        raise LayerUnavailable(f"{name}: cannot import {module_name} ({type(err).__name__}: {err})") from err
    except AttributeError as err:
        raise LayerUnavailable(f"{name}: {module_name} has no class {class_name}") from err


def build_conv(name: str, channels: int, kernel_size: int, input_size: tuple[int, int]) -> nn.Module:
    """``cls(channels, channels, kernel_size)`` like ``nn.Conv2d``, plus ``input_size`` and
    ``padding_mode="circular"`` where the constructor takes them."""
    cls = load_layer(name)
    params = inspect.signature(cls).parameters
    kwargs = {"input_size": input_size} if "input_size" in params else {}
    if "padding_mode" in params:
        kwargs["padding_mode"] = "circular"
    return cls(channels, channels, kernel_size, **kwargs)


def derive_seed(*parts) -> int:
    """A stable 31-bit seed for one random draw, from the base seed and the names that identify it."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def build_network(layer: str, activation: str, depth: int, channels: int, image_size: int, kernel_size: int,
                  seed: int, dtype: torch.dtype, device) -> nn.Sequential:
    """``[conv_1, act, conv_2, act, ..., conv_L, act]``, parameters drawn under ``torch.manual_seed(seed)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        modules = []
        for _ in range(depth):
            modules += [build_conv(layer, channels, kernel_size, (image_size, image_size)), ACTIVATIONS[activation]()]
    return nn.Sequential(*modules).to(device=device, dtype=dtype)


def check_layer(name: str, channels: int, image_size: int, kernel_size: int, dtype: torch.dtype, device) -> None:
    """Build one ``name`` layer and check it maps ``(1, c, n, n)`` to the same shape, else :class:`LayerUnavailable`."""
    try:
        conv = build_network(name, "ReLU", 1, channels, image_size, kernel_size, 0, dtype, device)[0]
        shape = (1, channels, image_size, image_size)
        out = conv(torch.zeros(shape, dtype=dtype, device=device))
    except LayerUnavailable:
        raise
    except Exception as err:
        raise LayerUnavailable(f"{name}: building or running the layer failed ({type(err).__name__}: {err})") from err
    if tuple(out.shape) != shape:
        raise LayerUnavailable(f"{name}: maps {shape} to {tuple(out.shape)}, not a same-size convolution")


def squared_factor(ratio_in: torch.Tensor, ratio_out: torch.Tensor) -> float | None:
    """``exp(mean log (r_in / r_out)^2)`` over the sublayers and cotangents where the gradient is alive (both norms
    positive); ``None`` when it is nowhere. A sublayer that zeroes the whole gradient (e.g. a ReLU layer whose
    pre-activations are all negative) is counted by ``zero_gradient_sublayers`` instead."""
    live = (ratio_in > 0) & (ratio_out > 0)
    if not bool(live.any()):
        return None
    return float((2 * (ratio_in[live].double().log() - ratio_out[live].double().log())).mean().exp())


def measure(net: nn.Sequential, x: torch.Tensor, cotangents: torch.Tensor, dense_limit: int, lanczos_steps: int,
            generator: torch.Generator) -> dict:
    """Every gradient-norm number of ``net`` at the point ``x`` (shape ``(1, c, n, n)``).

    ``ratios[s, p] = ||g_s|| / ||g||`` at sublayer inputs ``s = 0 .. 2L`` (even: block inputs, odd: activation
    inputs) for cotangent ``p``; the squared per-layer factors ``(||g_in|| / ||g_out||)^2`` of each convolution and
    each activation (:func:`squared_factor`); the fraction of positive pre-activations at ``x``; and the Jacobian
    spectrum (:func:`analysis.jacobian.jacobian_spectrum`). In eval mode: layers that update state in training
    forwards (OSSN's power iterate) stay fixed while they are measured.
    """
    net.eval().requires_grad_(False)
    points = x.expand(cotangents.shape[0], *x.shape[1:])
    ratios, inputs = sublayer_gradient_ratios(list(net), points, cotangents)
    blocks = ratios[0::2]
    pre_activations = torch.stack([h[0] for h in inputs[1::2]])
    result = {
        "ratio_mean": blocks.mean(1).tolist(),
        "ratio_min": blocks.min(1).values.tolist(),
        "ratio_max": blocks.max(1).values.tolist(),
        "input_ratio_probes": blocks[0].tolist(),
        "sublayer_ratios": ratios.tolist(),
        "max_abs_deviation": float((ratios - 1).abs().max()),
        "conv_sq_factor": squared_factor(ratios[0:-1:2], ratios[1::2]),
        "act_sq_factor": squared_factor(ratios[1::2], ratios[2::2]),
        "zero_gradient_sublayers": int((ratios == 0).all(1).sum()),
        "frac_positive": float((pre_activations > 0).double().mean()),
        "jacobian": jacobian_spectrum(list(net), x, dense_limit, lanczos_steps, generator),
    }
    net.train().requires_grad_(True)
    return result


def train(net: nn.Sequential, target: nn.Sequential, input_shape: tuple[int, ...], steps: int, batch: int, lr: float,
          data_seed: int) -> list[float]:
    """``steps`` Adam steps on the mean squared error ``||net(x) - target(x)||^2 / numel`` over fresh seeded
    Gaussian batches ``x`` of ``batch`` inputs of ``input_shape``; returns the loss at every step.

    Layers trained by projected gradient descent (a ``project_()`` method, e.g. SVCM's clip-and-mask) are
    projected after every step, as they ask.
    """
    sample = next(net.parameters())
    generator = torch.Generator(device=sample.device).manual_seed(data_seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    projected = [module for module in net.modules() if callable(getattr(module, "project_", None))]
    losses = []
    for _ in range(steps):
        x = torch.randn(batch, *input_shape, generator=generator, dtype=sample.dtype, device=sample.device)
        with torch.no_grad():
            y = target(x)
        loss = F.mse_loss(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for module in projected:
            module.project_()
        losses.append(loss.item())
    return losses


def network_task(layer: str, activation: str, depth: int, channels: int, image_size: int, kernel_size: int,
                 steps: int, batch: int, lr: float, probes: int, dense_limit: int, lanczos_steps: int, seed: int,
                 dtype: str, device: str) -> dict:
    """Build one network, measure it, train it ``steps`` steps (none when 0) and measure it again.

    Every random draw has its own seed derived from ``seed``: the convolutions from the layer, depth and size (the
    MaxMin and ReLU networks share their convolutions), the point ``x``, the cotangents, the target and the training
    data from the size only, so every network of one size is measured at the same point with the same cotangents.
    """
    torch_dtype = DTYPES[dtype]
    shape = (channels, image_size, image_size)
    net = build_network(layer, activation, depth, channels, image_size, kernel_size,
                        derive_seed(seed, "net", layer, depth, channels, image_size), torch_dtype, device)
    draws = torch.Generator(device=device).manual_seed(derive_seed(seed, "point", channels, image_size))
    x = torch.randn(1, *shape, generator=draws, dtype=torch_dtype, device=device)
    cotangents = unit_cotangents((probes, *shape), draws, torch_dtype, device)
    lanczos_seed = derive_seed(seed, "lanczos", channels, image_size)

    def measure_now() -> dict:
        start = torch.Generator(device=device).manual_seed(lanczos_seed)
        return measure(net, x, cotangents, dense_limit, lanczos_steps, start)

    result = {"layer": layer, "activation": activation, "depth": depth, "channels": channels,
              "image_size": image_size, "kernel_size": kernel_size, "dtype": dtype, "before": measure_now()}
    if steps:
        target = build_network("BCOP", "MaxMin", TARGET_DEPTH, channels, image_size, kernel_size,
                               derive_seed(seed, "target", channels, image_size), torch_dtype, device)
        losses = train(net, target.eval().requires_grad_(False), shape, steps, batch, lr,
                       derive_seed(seed, "data", channels, image_size))
        result["training"] = {"steps": steps, "batch": batch, "lr": lr, "optimizer": "Adam",
                              "target": f"random BCOP + MaxMin, depth {TARGET_DEPTH}", "losses": losses}
        result["after"] = measure_now()
    return result


def make_jobs(settings: dict, layers: list[str], activations: list[str], seed: int, dtype: str,
              device: str) -> list[dict]:
    """One job per (layer, activation, depth) at the main size (trained at ``train_depths``) plus the trained
    histogram network at ``(hist_depth, hist_image_size)``; the most expensive first (cost taken as depth x pixels x
    (training steps + Lanczos steps)), so that a pool of workers ends together."""
    trained = {}
    for layer in layers:
        for activation in activations:
            for depth in settings["depths"]:
                trained[layer, activation, depth, settings["image_size"]] = depth in settings["train_depths"]
            trained[layer, activation, settings["hist_depth"], settings["hist_image_size"]] = True
    common = {key: settings[key] for key in ("channels", "kernel_size", "batch", "lr", "probes", "dense_limit",
                                             "lanczos_steps")}
    jobs = [
        {"layer": layer, "activation": activation, "depth": depth, "image_size": size,
         "steps": settings["steps"] if train_it else 0, "seed": seed, "dtype": dtype, "device": device, **common}
        for (layer, activation, depth, size), train_it in trained.items()
    ]
    return sorted(jobs, key=lambda job: -job["depth"] * job["image_size"] ** 2 * (job["steps"] + job["lanczos_steps"]))


def lookup(results: list[dict], layer: str, activation: str, depth: int, image_size: int) -> dict:
    return next(r for r in results if (r["layer"], r["activation"], r["depth"], r["image_size"]) ==
                (layer, activation, depth, image_size))


def depth_rows(results: list[dict], layers, activations, settings: dict) -> list[dict]:
    """Input ratio ``||g_0|| / ||g||`` (mean over cotangents) at each depth, and ``max |ratio - 1|`` over every
    layer, cotangent and depth, before training."""
    rows = []
    for layer in layers:
        for activation in activations:
            nets = [lookup(results, layer, activation, d, settings["image_size"]) for d in settings["depths"]]
            row = {"layer": layer, "act": activation}
            row.update({f"d={net['depth']}": net["before"]["ratio_mean"][0] for net in nets})
            row["max|r-1|"] = max(net["before"]["max_abs_deviation"] for net in nets)
            rows.append(row)
    return rows


def factor_rows(results: list[dict], layers, activations, settings: dict) -> list[dict]:
    """Per-layer squared factors and the Jacobian extremes of the deepest network, before training."""
    depth = max(settings["depths"])
    rows = []
    for layer in layers:
        for activation in activations:
            before = lookup(results, layer, activation, depth, settings["image_size"])["before"]
            rows.append({"layer": layer, "act": activation, "depth": depth,
                         "conv_sq/layer": before["conv_sq_factor"], "act_sq/layer": before["act_sq_factor"],
                         "frac_pos": before["frac_positive"], "zero_grad": before["zero_gradient_sublayers"],
                         "ratio^2": before["ratio_mean"][0] ** 2,
                         "jacobian": before["jacobian"]["method"], "sigma_min": before["jacobian"]["sigma_min"],
                         "sigma_max": before["jacobian"]["sigma_max"]})
    return rows


def sigma_range(jacobian: dict) -> str:
    return f"[{jacobian['sigma_min']:.3g}, {jacobian['sigma_max']:.3g}]"


def training_rows(results: list[dict], layers, activations, settings: dict) -> list[dict]:
    """Loss, input ratio and Jacobian extremes before and after training, at the deepest trained depth; and
    ``max |ratio - 1|`` after training over every trained depth."""
    rows = []
    for layer in layers:
        for activation in activations:
            nets = [lookup(results, layer, activation, d, settings["image_size"]) for d in settings["train_depths"]]
            deepest = nets[-1]
            losses = deepest["training"]["losses"]
            rows.append({"layer": layer, "act": activation, "depth": deepest["depth"],
                         "loss_first": losses[0], "loss_last": losses[-1],
                         "ratio_before": deepest["before"]["ratio_mean"][0],
                         "ratio_after": deepest["after"]["ratio_mean"][0],
                         "max|r-1|_after": max(net["after"]["max_abs_deviation"] for net in nets),
                         "zero_grad_after": deepest["after"]["zero_gradient_sublayers"],
                         "sigma_before": sigma_range(deepest["before"]["jacobian"]),
                         "sigma_after": sigma_range(deepest["after"]["jacobian"])})
    return rows


def spectrum_rows(results: list[dict], layers, activations, settings: dict) -> list[dict]:
    """Extremes of the Jacobian spectrum of the histogram networks, before and after training."""
    rows = []
    for layer in layers:
        for activation in activations:
            net = lookup(results, layer, activation, settings["hist_depth"], settings["hist_image_size"])
            row = {"layer": layer, "act": activation, "jacobian": net["before"]["jacobian"]["method"]}
            for stage in (s for s in STAGES if s in net):
                jac = net[stage]["jacobian"]
                row[f"sigma_min_{stage}"] = jac["sigma_min"]
                row[f"sigma_max_{stage}"] = jac["sigma_max"]
                row[f"max|s-1|_{stage}"] = max(abs(jac["sigma_min"] - 1), abs(jac["sigma_max"] - 1))
            rows.append(row)
    return rows


def spectrum_values(jacobian: dict) -> list[float]:
    return jacobian.get("singular_values", jacobian.get("ritz_singular_values"))


def log_spectrum(values: list[float]) -> tuple[list[float], int]:
    """``(log10 sigma for sigma > ZERO_FLOOR * sigma_max, count of the others)``: singular values below that
    relative floor are zero to the precision of a float32 Jacobian (ReLU's dropped directions)."""
    sigma = torch.tensor(values, dtype=torch.float64)
    kept = sigma > ZERO_FLOOR * sigma.max()
    return sigma[kept].log10().tolist(), int((~kept).sum())


def positive_or_nan(values: list[float]) -> list[float]:
    """Exact zeros (a gradient that vanished entirely) as NaN, which a log axis leaves out."""
    return [v if v > 0 else math.nan for v in values]


def draw_depth(results: list[dict], layers, activations, settings: dict):
    """Input ratio against depth, one curve per layer and activation (min..max over cotangents shaded), log y;
    left before training, right after; the dotted line is ``2^(-L/2)`` for comparison."""
    def build(plt):
        panels = [("before", settings["depths"], "at initialization")]
        if settings["train_depths"]:
            panels.append(("after", settings["train_depths"], f"after {settings['steps']} training steps"))
        figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels) + 2.5, 5), sharey=True, squeeze=False)
        axes = axes[0]
        colors = plt.get_cmap("tab10")
        styles = {"MaxMin": "-", "ReLU": "--"}
        for ax, (stage, depths, title) in zip(axes, panels):
            for index, layer in enumerate(layers):
                for activation in activations:
                    nets = [lookup(results, layer, activation, d, settings["image_size"])[stage] for d in depths]
                    ax.plot(depths, positive_or_nan([n["ratio_mean"][0] for n in nets]), styles.get(activation, ":"),
                            marker="o", color=colors(index % 10), label=f"{layer} + {activation}")
                    ax.fill_between(depths, positive_or_nan([n["ratio_min"][0] for n in nets]),
                                    positive_or_nan([n["ratio_max"][0] for n in nets]), color=colors(index % 10),
                                    alpha=0.12)
            ax.plot(depths, [2.0 ** (-d / 2) for d in depths], ":", color="gray", label="2^(-L/2)")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("depth L (conv + activation blocks)")
            ax.set_title(title)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("||g_0|| / ||g_L||  (unit cotangent g_L at the output)")
        axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
        figure.suptitle(f"Backward gradient norm at the input, {settings['channels']} channels, "
                        f"{settings['image_size']}x{settings['image_size']} images, {settings['dtype']} "
                        "(a missing point: the gradient is exactly 0)")
        figure.tight_layout()
        return figure

    return build


def draw_spectra(results: list[dict], layers, activations, settings: dict):
    """Histograms of log10 of the Jacobian singular values of the histogram networks, one panel per layer and
    activation, before (filled) and after training (outline), log counts; the title counts the zero ones."""
    def build(plt):
        figure, axes = plt.subplots(len(activations), len(layers), figsize=(2.8 * len(layers), 2.9 * len(activations)),
                                    squeeze=False, sharex=True)
        nets = {(layer, activation): lookup(results, layer, activation, settings["hist_depth"],
                                            settings["hist_image_size"])
                for layer in layers for activation in activations}
        spectra = {(key, stage): log_spectrum(spectrum_values(net[stage]["jacobian"]))
                   for key, net in nets.items() for stage in STAGES if stage in net}
        low = min([-1.0] + [min(logs) for logs, _ in spectra.values() if logs])
        bins = torch.linspace(low, 0.1, 61).tolist()
        for row, activation in zip(axes, activations):
            for ax, layer in zip(row, layers):
                key = (layer, activation)
                zeros = []
                for stage, style in zip(STAGES, ({"alpha": 0.5}, {"histtype": "step", "color": "black"})):
                    if (key, stage) in spectra:
                        logs, zero = spectra[key, stage]
                        ax.hist(logs, bins=bins, label="init" if stage == "before" else "trained", **style)
                        zeros.append(str(zero))
                ax.set_yscale("log")
                sigma = torch.tensor(spectrum_values(nets[key]["before"]["jacobian"]))
                deviation = float((sigma - 1).abs().max())
                if deviation < 1e-3:
                    ax.text(0.05, 0.5, f"init: all {sigma.numel()}\nat 1 +- {deviation:.0e}", transform=ax.transAxes,
                            fontsize=8)
                method = nets[key]["before"]["jacobian"]["method"]
                ax.set_title(f"{layer} + {activation} ({method})\nzero: {' / '.join(zeros)}", fontsize=8)
                ax.tick_params(labelsize=7)
        axes[0][0].legend(fontsize=7)
        for ax in axes[-1]:
            ax.set_xlabel("log10 singular value", fontsize=8)
        size = settings["hist_image_size"]
        figure.suptitle(f"Jacobian singular values at one point, depth {settings['hist_depth']}, "
                        f"{settings['channels']} channels, {size}x{size} images; 'zero' counts those below "
                        f"{ZERO_FLOOR:g} sigma_max (init / trained)")
        figure.tight_layout()
        return figure

    return build


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
    add("--device", default="cpu", help="torch device (default cpu)")
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


def print_tables(tables: dict, settings: dict) -> None:
    captions = {
        "ratio_vs_depth": "Backward gradient norm ||g_0|| / ||g_L|| at the input (mean over unit cotangents), before "
                          "training; max|r-1| over every layer, cotangent and depth",
        "per_layer": "Per-layer squared factors (||g_in|| / ||g_out||)^2 through each convolution and each activation "
                     "(geometric means where the gradient is nonzero; zero_grad = sublayer inputs where it is exactly 0), "
                     "fraction of "
                     "positive pre-activations, Jacobian extremes; deepest net, init",
        "training": f"Training ({settings['steps']} Adam steps towards a random BCOP + MaxMin net): deepest trained "
                    "depth; max|r-1|_after over every trained depth; zero_grad_after = sublayer inputs where the "
                    "gradient is exactly 0; sigma = [min, max] of the Jacobian",
        "spectrum": f"Jacobian singular values of the histogram networks (depth {settings['hist_depth']}, "
                    f"{settings['hist_image_size']}x{settings['hist_image_size']}), before and after training",
    }
    for name, rows in tables.items():
        if rows:
            print(f"\n{captions[name]}\n{format_table(rows, list(rows[0]))}")


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
                       "tables": tables, "networks": networks})
    print(f"\nwrote {path} and {', '.join(str(f) for f in figures.values() if f)}")
    return 1 if skipped and args.layers else 0


if __name__ == "__main__":
    sys.exit(main())
