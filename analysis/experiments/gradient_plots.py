"""The figures of the gradient-norm experiment: input ratio against depth, and Jacobian spectra histograms.

Each ``draw_*`` returns a function of ``matplotlib.pyplot`` for :func:`analysis.common.harness.save_figure`.
"""

from __future__ import annotations

import math

import torch

from .gradient_tables import STAGES, lookup

ZERO_FLOOR = 1e-7


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

