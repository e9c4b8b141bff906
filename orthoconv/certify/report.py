"""The full evaluation of a Lipschitz classifier: certificate, attacks, soundness, both Lipschitz ends.

:func:`certify_network` is what ``orthoconv certify`` prints and what the robustness experiment
tabulates; :func:`plot_radii` draws its radius distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..io.figures import finish_figure, pyplot
from .evaluation import as_dtype, evaluate
from .soundness import empirical_lipschitz, soundness_violations

ASSUMPTIONS = (
    "inputs in [0, 1]; eps is an L2 radius in those units",
    "L is a certified upper bound measured from the weights (product of exact or certified per-layer norms)",
    "logits and L computed in the evaluation dtype from the trained weights; the certificate is for that network",
)


def attack_available() -> str | None:
    """``None`` when foolbox imports, else the reason the attacks are skipped."""
    try:
        import foolbox  # noqa: F401
    except ImportError:
        return "foolbox is not installed: pip install 'orthoconv[attack]'"
    return None


def certify_network(model: nn.Module, images: Tensor, labels: Tensor, eps: Sequence[float], *, attack: bool = True,
                    pgd_steps: int = 100, fmn_steps: int = 100, lipschitz_samples: int = 100, seed: int = 0,
                    batch_size: int = 250, dtype: torch.dtype = torch.float64) -> dict:
    """Certify ``model`` on ``images`` (uint8 or floats in [0, 1]) and, with ``attack``, attack it.

    Returns a JSON-ready dict: ``clean``; ``lipschitz`` (``certified``: the bound the certificate uses;
    ``empirical``: the largest output/input distance ratio found, a lower bound); per ``eps`` the
    certified accuracy, the PGD-robust accuracy (correct and not broken by ``L2PGD`` at ``eps``) and
    the number of certified examples that PGD broke; ``soundness_violations`` (certified at radius
    ``r``, broken by PGD or FMN at a distance ``< r``; must be 0) and ``radii`` / ``fmn_distance`` for
    the figure. Without foolbox, or with ``attack=False``, the attack fields are ``None`` and
    ``attack_skipped`` says why.
    """
    net = as_dtype(model, dtype)
    eps = [float(e) for e in eps]
    result = evaluate(net, images, labels, eps, batch_size=batch_size, dtype=dtype)
    radii = result["radii"]
    rows = [{"eps": e, "certified": result["certified"][e], "pgd_robust": None, "certified_broken": None} for e in eps]
    sample = images[:lipschitz_samples]
    empirical = empirical_lipschitz(net, sample, seed=seed, batch_size=batch_size) if len(sample) else 0.0
    report = {
        "n": int(labels.shape[0]), "dtype": str(dtype).replace("torch.", ""), "clean": result["clean"],
        "lipschitz": {"certified": result["lipschitz"], "empirical": empirical},
        "eps": rows, "soundness_violations": None, "violations_by_attack": None, "attack_skipped": None,
        "radii": radii.tolist(), "fmn_distance": None, "assumptions": list(ASSUMPTIONS),
    }
    reason = None if attack else "attack=False"
    reason = reason or attack_available()
    if reason:
        report["attack_skipped"] = reason
        return report
    from .attack import min_norm_attack, pgd_attack

    labels = labels.cpu()
    pgd = pgd_attack(net, images, labels, eps, steps=pgd_steps, seed=seed, batch_size=batch_size)
    fmn = min_norm_attack(net, images, labels, steps=fmn_steps, seed=seed, batch_size=batch_size)
    correct = radii > 0  # margin > 0: uniquely the true class
    for i, row in enumerate(rows):
        row["pgd_robust"] = float((correct & ~pgd["broken"][i]).to(torch.float64).mean())
        row["certified_broken"] = int((pgd["broken"][i] & (radii > row["eps"])).sum())
    by_pgd = soundness_violations(radii, pgd["distance"], pgd["margin"])
    by_fmn = soundness_violations(radii, fmn["distance"], fmn["margin"])
    report["lipschitz"]["empirical"] = max(empirical, float(pgd["lipschitz_ratio"].max()))
    report["soundness_violations"] = int((by_pgd | by_fmn).sum())
    report["violations_by_attack"] = {"pgd": int(by_pgd.sum()), "fmn": int(by_fmn.sum())}
    report["attacks"] = {"pgd": {"name": "foolbox L2PGD", "steps": pgd_steps, "rel_stepsize": 0.025,
                                 "random_start": True},
                         "fmn": {"name": "foolbox L2FMNAttack", "steps": fmn_steps}}
    report["fmn_distance"] = fmn["distance"].tolist()
    return report


def plot_radii(report: dict, path, title: str = "") -> Path | None:
    """Certified accuracy against eps (with the PGD-robust points), and, when the attacks ran, each
    example's certified radius against the smallest adversarial distance FMN found (the certificate
    is sound iff every point lies on or above the diagonal)."""
    plt = pyplot()
    if plt is None:
        return None
    radii = torch.tensor(report["radii"], dtype=torch.float64)
    n = radii.numel()
    columns = 2 if report.get("fmn_distance") is not None else 1
    figure, axes = plt.subplots(1, columns, figsize=(5.5 * columns, 4))
    axes = axes if columns > 1 else [axes]
    top = float(radii.max()) if n else 1.0
    grid = torch.linspace(0, max(top, max(r["eps"] for r in report["eps"])) * 1.05, 200, dtype=torch.float64)
    axes[0].plot(grid, [(radii > g).to(torch.float64).mean().item() for g in grid], label="certified")
    for row in report["eps"]:
        if row["pgd_robust"] is not None:
            axes[0].plot(row["eps"], row["pgd_robust"], "v", color="tab:red")
    axes[0].plot([], [], "v", color="tab:red", label="PGD-robust (upper bound)")
    axes[0].set_xlabel("L2 radius eps")
    axes[0].set_ylabel("accuracy")
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"certified radius distribution (n = {n})")
    if columns > 1:
        fmn = torch.tensor(report["fmn_distance"], dtype=torch.float64)
        found = torch.isfinite(fmn) & (radii > 0)
        axes[1].scatter(radii[found], fmn[found], s=5, alpha=0.6)
        line = float(max(radii.max(), fmn[found].max() if found.any() else 0)) if n else 1.0
        axes[1].plot([0, line], [0, line], "k--", linewidth=0.8, label="distance = certified radius")
        axes[1].set_xlabel("certified radius")
        axes[1].set_ylabel("smallest adversarial distance found (FMN)")
        axes[1].set_title(f"soundness: {report['soundness_violations']} violations")
        axes[1].legend(fontsize=8)
    return finish_figure(figure, path, title)
