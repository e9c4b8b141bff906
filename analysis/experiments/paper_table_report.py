"""The paper-table experiment's report: a line per layer and recipe beside the paper's numbers, the
best certified accuracy against GloRo's, the printed tables and the figure (used by
:mod:`analysis.experiments.paper_table`)."""

from __future__ import annotations

import statistics

from orthoconv.io import format_table
from orthoconv.networks import CONV_LAYERS

PAPER_LAYERS = ("ossn", "rko", "svcm", "bcop")
# every constrained convolution of orthoconv.networks (not "conv", which is unconstrained): the paper's four first
LAYERS = PAPER_LAYERS + tuple(name for name in CONV_LAYERS if name not in PAPER_LAYERS and name != "conv")
# Li et al. 2019, Table 1 (mean of 5 runs; REFERENCES.md): clean / certified at 1.58 on the MNIST test set
PAPER = {
    "small": {"ossn": (96.86, 42.95), "rko": (97.28, 43.58), "svcm": (97.24, 28.94), "bcop": (97.54, 45.84)},
    "large": {"ossn": (98.31, 53.77), "rko": (98.44, 55.18), "svcm": (97.93, 38.00), "bcop": (98.77, 56.66)},
}
GLORO = 62.8  # Leino et al. 2021: certified at 1.58, Large layout with unconstrained weights, 300 epochs
COLUMNS = ["layer", "recipe", "seeds", "clean", "paper_clean", "cert_1.58", "paper_cert_1.58", "cert_0.5", "cert_1.0",
           "pgd_1.58", "violations", "L", "train_min"]
RUN_COLUMNS = ["layer", "recipe", "seed", "clean", "cert_1.58", "L", "violations", "attacked_images",
               "selected_epoch", "train_min", "train_load"]


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def summarize(rows: list[dict], arch: str) -> list[dict]:
    """One line per layer and recipe: means (and per-seed values) of our numbers, and the paper's."""
    lines = []
    order = {layer: i for i, layer in enumerate(LAYERS)}
    groups = dict.fromkeys((r["layer"], r["recipe"]) for r in rows)  # the label names every setting exactly
    for layer, recipe in sorted(groups, key=lambda g: (order.get(g[0], len(order)), g[1])):
        mine = sorted((r for r in rows if (r["layer"], r["recipe"]) == (layer, recipe)), key=lambda r: r["seed"])
        paper = PAPER[arch].get(layer, (None, None))
        violations = [r["violations"] for r in mine if r["violations"] is not None]
        lines.append({
            "layer": layer, "recipe": recipe, "seeds": len(mine), "seed_list": [r["seed"] for r in mine],
            **{k: _mean(r[k] for r in mine) for k in ("clean", "cert_1.58", "cert_0.5", "cert_1.0", "pgd_1.58")},
            "paper_clean": paper[0], "paper_cert_1.58": paper[1],
            "clean_per_seed": [r["clean"] for r in mine], "cert_1.58_per_seed": [r["cert_1.58"] for r in mine],
            "violations": sum(violations) if violations else None,
            "attacked_images": min(r["attacked_images"] for r in mine), "L": max(r["L"] for r in mine),
            "epochs": max(r["epochs"] for r in mine), "train_min": _mean(r["train_seconds"] / 60 for r in mine),
            "train_min_per_seed": [r["train_seconds"] / 60 for r in mine],
        })
    return lines


def best_line(lines: list[dict], arch: str) -> dict:
    """The highest mean certified accuracy at 1.58 of any layer and recipe, against GloRo's."""
    best = max(lines, key=lambda line: line["cert_1.58"])
    return {"cert_1.58": best["cert_1.58"], "layer": best["layer"], "arch": arch, "recipe": best["recipe"],
            "seeds": best["seeds"], "gloro_cert_1.58": GLORO, "gap": best["cert_1.58"] - GLORO}


def short_recipe(recipe: str) -> str:
    """``ce 1.58, lr 0.003, gamma 0.891, T 0.25, 40 ep`` as ``ce1.58 lr0.003\ng0.891 T0.25\n40ep``."""
    parts = [part.replace(" ", "").replace("gamma", "g") for part in recipe.split(", ")]
    return "\n".join(" ".join(parts[i:i + 2]) for i in range(0, len(parts), 2))


def draw(lines: list[dict], title: str):
    def build(plt):
        figure, axes = plt.subplots(2, 1, figsize=(max(8.0, 1.4 * len(lines)), 8), layout="constrained")
        several = len({line["recipe"] for line in lines}) > 1
        labels = [line["layer"] + (f"\n{short_recipe(line['recipe'])}" if several else "") for line in lines]
        for axis, (ours, theirs, label) in zip(axes, (("clean", "paper_clean", "clean accuracy (%)"),
                                                      ("cert_1.58", "paper_cert_1.58",
                                                       "certified accuracy at 1.58 (%)"))):
            for shift, key, name in ((-0.2, ours, "orthoconv"), (0.2, theirs, "Li et al. 2019")):
                present = [(i, line[key]) for i, line in enumerate(lines) if line[key] is not None]
                if present:
                    bars = axis.bar([i + shift for i, _ in present], [v for _, v in present], 0.4, label=name)
                    axis.bar_label(bars, [f"{v:.1f}" for _, v in present], fontsize=7)
            axis.set_xticks(range(len(lines)), labels, fontsize=7 if several else 9)
            axis.set_ylabel(label)
            low = min(v for line in lines for v in (line[ours], line[theirs]) if v is not None)
            axis.set_ylim((max(0, low - 5), 102) if ours == "clean" else (0, 80))
            if ours == "cert_1.58":
                axis.axhline(GLORO, color="k", linestyle="--", linewidth=0.8, label=f"GloRo (Large) {GLORO}")
            axis.legend(fontsize=8, ncol=3, loc="upper left")
        figure.suptitle(title, fontsize=10)
        return figure

    return build


def cells(record: dict) -> dict:
    """Accuracies with 2 decimals, ``L`` with 9, minutes and load with 1, for the printed tables."""
    cells = {k: f"{v:.2f}" if isinstance(v, float) else v for k, v in record.items()}
    cells["L"] = f"{record['L']:.9f}"
    for key in ("train_min", "train_load"):
        if record.get(key) is not None:
            cells[key] = f"{record[key]:.1f}"
    return cells


def print_report(rows: list[dict], lines: list[dict], best: dict, title: str, pending: list[str]) -> None:
    print(title)
    print(format_table([cells(line) for line in lines], COLUMNS))
    print("\nper run (L measured in float64; violations: certified points broken by PGD or FMN at 1.58, of "
          "attacked_images test digits; train_min: training and validation wall time at the mean 1-minute load):")
    print(format_table([cells({**r, "train_min": r["train_seconds"] / 60, "train_load": r["train_load_average"]})
                        for r in rows], RUN_COLUMNS))
    print(f"\nbest certified at 1.58 of any orthoconv layer: {best['cert_1.58']:.2f} ({best['layer']}, {best['arch']}, "
          f"{best['recipe']}, mean of {best['seeds']} seed(s)) against GloRo's {GLORO} (Leino et al. 2021: Large, "
          f"unconstrained weights, TRADES, 300 epochs): {best['gap']:+.2f} points")
    if pending:
        print(f"not finished (left out, not resumed): {', '.join(pending)}")
