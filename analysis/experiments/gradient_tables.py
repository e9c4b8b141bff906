"""The tables of the gradient-norm experiment: one row per layer and activation, built from the results of
:func:`analysis.experiments.gradient_measure.network_task`."""

from __future__ import annotations

from orthoconv.io.table import format_table

STAGES = ("before", "after")


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

