"""The measurements of the gradient-norm experiment: backward norms, per-layer factors, Jacobian spectra,
before and after a short training run (Li et al. 2019, arXiv 1911.00937, Sec. 2 on gradient norm preservation).

Every random draw of one network has its own seed derived from the base seed (:func:`network_task`),
so results do not depend on the order or the process in which the networks are measured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .gradient_stacks import build_network, derive_seed
from .jacobian import jacobian_spectrum, sublayer_gradient_ratios, unit_cotangents

DTYPES = {"float32": torch.float32, "float64": torch.float64}
TARGET_DEPTH = 2


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
    spectrum (:func:`analysis.experiments.jacobian.jacobian_spectrum`). In eval mode: layers that update state in training
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
    devices = [sample.device] if sample.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # OSSN's training forward draws noise from the global RNG
        torch.manual_seed(data_seed)
        for _ in range(steps):
            losses.append(_step(net, target, optimizer, projected, generator, batch, input_shape, sample))
    return losses


def _step(net, target, optimizer, projected, generator, batch, input_shape, sample) -> float:
    """One Adam step of :func:`train` on a fresh batch; its loss."""
    x = torch.randn(batch, *input_shape, generator=generator, dtype=sample.dtype, device=sample.device)
    with torch.no_grad():
        y = target(x)
    loss = F.mse_loss(net(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for module in projected:
        module.project_()
    return loss.item()


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

