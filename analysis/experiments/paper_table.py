"""The BCOP paper's Table 1 on the full MNIST, reproduced: our numbers beside the paper's.

Li et al. (NeurIPS 2019) report, for the Small and Large networks of Wong et al. with each
orthogonal convolution (OSSN, RKO, SVCM, BCOP), the clean and certified accuracy at L2 radius 1.58
on the 10,000 MNIST test digits (mean of 5 runs). This experiment trains each layer on the full
MNIST (``orthoconv data get mnist``; 54,000 training, 6,000 validation digits drawn from the 60,000),
selects the epoch on the validation split, and certifies the selected network on the 10,000 test
digits in float64 with ``L`` measured from the weights (certified when the margin exceeds
``sqrt(2) eps L``). The soundness check of ``orthoconv certify`` runs on the test digits (the first
``--attack-limit``): foolbox L2PGD at 1.58 and L2FMN must break no certified point inside its radius.

Recipes (``--recipe``):

- ``ce`` (default): cross-entropy with the offset ``sqrt(2) eps L`` and temperature 0.25 (Prach &
  Lampert 2022), eps ``--train-eps`` (default 1.58), Adam 3e-3 (``orthoconv train``'s), batch 128, the
  learning rate decayed per epoch by ``gamma = 0.01 ** (1 / epochs)`` (rounded to 3 digits: 1/100 at
  the end), 40 epochs. (Adam 1e-3 with this decay left BCOP underfitting, at 90.7 % training and
  validation accuracy after 10 epochs.)
- ``paper``: the paper's multi-class hinge with eps 1.5, Adam 1e-3, decay 0.96235 per epoch, batch
  128, 200 epochs (REFERENCES: "The 2019 training settings").

Each run lives in ``ROOT/ARCH-LAYER-LOSSEPS-seedS`` (e.g. ``small-bcop-ce1.58-seed0``) and is what
``orthoconv train`` writes there (checkpoint every epoch). A finished run (``metrics.json`` with its
test result) is collected as it is; an interrupted one is resumed with its own saved settings
(``--epochs`` may lengthen or shorten it); a missing one is trained. So the runs can be started by
hand with ``orthoconv train`` (in parallel, in the background) and collected here later;
``--collect-only`` never trains, and leaves out (and lists) the runs that have not finished, which may
still be training in another process. Runs go in
``--workers`` processes (default 2, one torch thread each).

Writes ``OUT/paper_table.json`` (every row, the means, the paper's numbers, args, versions, load) and
``OUT/paper_table.png`` (default OUT: analysis/figures); prints the table. Exit status 1 when a
soundness violation is found.

``orthoconv experiment paper-table [--arch small|large] [--layers ...] [--seeds N] [--epochs N] [--recipe ce|paper]``
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from orthoconv import io
from orthoconv.cli.args import non_negative_int, positive_float, positive_int
from orthoconv.io import format_table, load_average

from ..common.harness import experiment_parser, run_sweep, save_figure, worker_pool, write_json

LAYERS = ("ossn", "rko", "svcm", "bcop")
EPS = (0.5, 1.0, 1.58)
ATTACK_EPS = 1.58
# Li et al. 2019, Table 1 (mean of 5 runs; REFERENCES.md): clean / certified at 1.58 on the MNIST test set
PAPER = {
    "small": {"ossn": (96.86, 42.95), "rko": (97.28, 43.58), "svcm": (97.24, 28.94), "bcop": (97.54, 45.84)},
    "large": {"ossn": (98.31, 53.77), "rko": (98.44, 55.18), "svcm": (97.93, 38.00), "bcop": (98.77, 56.66)},
}
GLORO = 62.8  # Leino et al. 2021: certified at 1.58, Large layout with unconstrained weights, 300 epochs
RECIPES = {
    "ce": {"loss": "ce", "temperature": 0.25, "lr": 3e-3, "batch_size": 128, "epochs": 40},
    "paper": {"loss": "hinge", "train_eps": 1.5, "lr": 1e-3, "gamma": 0.96235, "batch_size": 128, "epochs": 200},
}
ROW = "paper_row.json"  # a collected run's row, reused when the attack settings are the same
COLUMNS = ["layer", "seeds", "clean", "paper_clean", "cert_1.58", "paper_cert_1.58", "cert_0.5", "cert_1.0",
           "pgd_1.58", "violations", "L", "epochs", "train_min"]


def recipe_config(recipe: str, epochs: int | None, train_eps: float) -> dict:
    """The training settings of ``recipe`` (module docstring) for ``epochs`` (default: the recipe's)."""
    settings = dict(RECIPES[recipe])
    if epochs is not None:
        settings["epochs"] = epochs
    if recipe == "ce":
        settings["train_eps"] = train_eps
        settings["gamma"] = round(0.01 ** (1 / settings["epochs"]), 3)
    return settings


def run_name(arch: str, layer: str, settings: dict, seed: int) -> str:
    return f"{arch}-{layer}-{settings['loss']}{settings['train_eps']:g}-seed{seed}"


def _finished(folder: Path) -> dict | None:
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary if "test" in summary else None


def _saved_config(folder: Path) -> dict:
    from orthoconv.networks import read_record

    return read_record(folder / "checkpoint.pt")["training"]["config"]


def run_task(arch: str, layer: str, seed: int, recipe: str, epochs: int | None, train_eps: float, root: str,
             attack_limit: int, pgd_steps: int, fmn_steps: int, threads: int, attack: bool,
             collect_only: bool = False) -> dict | None:
    """Train (or resume, or collect) one run, then certify and attack its selected network: one row
    (``None`` with ``collect_only`` when the run has not finished: it may be training in another process)."""
    from orthoconv.certify import evaluate
    from orthoconv.certify.report import certify_network
    from orthoconv.data import load
    from orthoconv.networks import load as load_network
    from orthoconv.training import TrainConfig, train

    torch.set_num_threads(threads)
    settings = recipe_config(recipe, epochs, train_eps)
    folder = Path(root) / run_name(arch, layer, settings, seed)
    summary = _finished(folder)
    if summary is None and collect_only:
        return None
    if summary is None:
        if (folder / "checkpoint.pt").is_file():
            saved = _saved_config(folder)
            config = TrainConfig.from_dict({**saved, "epochs": epochs or saved["epochs"], "out": str(folder)})
        else:
            config = TrainConfig(dataset="mnist", arch=arch, layer=layer, seed=seed, out=str(folder), **settings)
        summary = train(config, resume=(folder / "checkpoint.pt").is_file(), log=lambda _: None)
    key = {"attack_limit": attack_limit, "pgd_steps": pgd_steps, "fmn_steps": fmn_steps, "attack": attack,
           "selected_epoch": summary["selected"]["epoch"], "epochs": len(summary["history"])}
    cached = folder / ROW
    if cached.is_file() and json.loads(cached.read_text()).get("key") == key:
        return json.loads(cached.read_text())["row"]
    config = summary["config"]
    data = load("mnist", val_fraction=config["val_fraction"], seed=config["split_seed"])
    model = load_network(folder / "model.pt")
    started = time.perf_counter()
    full = evaluate(model, data.test.images, data.test.labels, EPS, dtype=torch.float64)
    limit = min(attack_limit, len(data.test)) if attack else 0
    report = certify_network(model, data.test.images[:limit], data.test.labels[:limit], [ATTACK_EPS],
                             attack=attack and limit > 0, pgd_steps=pgd_steps, fmn_steps=fmn_steps) if limit else None
    history = summary["history"]
    row = {
        "layer": layer, "seed": seed, "arch": arch, "run": str(folder), "recipe": recipe,
        "loss": config["loss"], "train_eps": config["train_eps"], "lr": config["lr"], "gamma": config["gamma"],
        "epochs": len(history), "selected_epoch": summary["selected"]["epoch"],
        "clean": 100 * full["clean"], **{f"cert_{e}": 100 * full["certified"][e] for e in EPS},
        "L": full["lipschitz"], "test_images": len(data.test), "dtype": "float64",
        "attacked_images": limit,
        "pgd_1.58": None if report is None or report["attack_skipped"] else 100 * report["eps"][0]["pgd_robust"],
        "violations": None if report is None else report["soundness_violations"],
        "violations_by_attack": None if report is None else report["violations_by_attack"],
        "L_empirical": None if report is None else report["lipschitz"]["empirical"],
        "attack_skipped": "attack-limit 0" if report is None else report["attack_skipped"],
        "train_seconds": sum(h["seconds"] + h["eval_seconds"] for h in history),
        "seconds_per_epoch": statistics.mean(h["seconds"] for h in history),
        "train_load_average": statistics.mean(h["load_average"][0] for h in history if h.get("load_average")),
        "certify_seconds": time.perf_counter() - started, "load_average": load_average(),
    }
    io.write_json(cached, {"key": key, "row": row})
    return row


def summarize(rows: list[dict], arch: str) -> list[dict]:
    """One line per layer: means over seeds of our numbers, and the paper's."""
    lines = []
    for layer in dict.fromkeys(r["layer"] for r in rows):
        mine = [r for r in rows if r["layer"] == layer]
        paper = PAPER[arch].get(layer, (None, None))

        def mean(key, mine=mine):
            values = [r[key] for r in mine if r[key] is not None]
            return statistics.mean(values) if values else None

        violations = [r["violations"] for r in mine if r["violations"] is not None]
        lines.append({
            "layer": layer, "seeds": len(mine), "clean": mean("clean"), "paper_clean": paper[0],
            "cert_1.58": mean("cert_1.58"), "paper_cert_1.58": paper[1], "cert_0.5": mean("cert_0.5"),
            "cert_1.0": mean("cert_1.0"), "pgd_1.58": mean("pgd_1.58"),
            "violations": sum(violations) if violations else None, "L": max(r["L"] for r in mine),
            "epochs": max(r["epochs"] for r in mine), "train_min": mean("train_seconds") / 60,
        })
    return lines


def draw(lines: list[dict], title: str):
    def build(plt):
        figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        layers = [line["layer"] for line in lines]
        for axis, (ours, theirs, label) in zip(axes, (("clean", "paper_clean", "clean accuracy (%)"),
                                                      ("cert_1.58", "paper_cert_1.58",
                                                       "certified accuracy at 1.58 (%)"))):
            positions = range(len(lines))
            for shift, key, name in ((-0.2, ours, "orthoconv"), (0.2, theirs, "Li et al. 2019")):
                values = [line[key] or 0 for line in lines]
                bars = axis.bar([p + shift for p in positions], values, 0.4, label=name)
                axis.bar_label(bars, [f"{v:.1f}" for v in values], fontsize=7)
            axis.set_xticks(list(positions), layers)
            axis.set_ylabel(label)
            low = min(v for line in lines for v in (line[ours], line[theirs]) if v is not None)
            axis.set_ylim((max(0, low - 5), 100) if ours == "clean" else (0, 75))
            if ours == "cert_1.58":
                axis.axhline(GLORO, color="k", linestyle="--", linewidth=0.8, label=f"GloRo (Large) {GLORO}")
            axis.legend(fontsize=8)
        figure.suptitle(title, fontsize=10)
        return figure

    return build


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = experiment_parser("paper_table", __doc__.split("\n\n")[0], prog)
    parser.set_defaults(workers=2, out=Path("analysis") / "figures")
    parser.add_argument("--arch", choices=sorted(PAPER), default="small")
    parser.add_argument("--layers", nargs="+", choices=LAYERS, default=list(LAYERS))
    parser.add_argument("--seeds", type=positive_int, default=1, help="seeds per layer: --seed .. --seed + N - 1")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="ce")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="epochs (default: the recipe's, 40 for ce and 200 for paper; a resumed run keeps "
                        "its own unless given)")
    parser.add_argument("--train-eps", type=positive_float, default=1.58, help="radius the ce recipe aims at")
    parser.add_argument("--root", type=Path, default=Path("runs") / "paper", help="folder of the runs")
    parser.add_argument("--attack-limit", type=non_negative_int, default=10_000,
                        help="test digits attacked for the soundness check (default all 10,000; 0: none)")
    parser.add_argument("--pgd-steps", type=positive_int, default=50)
    parser.add_argument("--fmn-steps", type=positive_int, default=50)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--collect-only", action="store_true",
                        help="never train: tabulate the finished runs, list the others (which may be training in "
                        "another process, where resuming them here would race it)")
    args = parser.parse_args(argv)
    from orthoconv.data import dataset_folder, verify_mnist_folder

    verify_mnist_folder(dataset_folder("mnist"))  # one line naming 'orthoconv data get mnist' when missing
    attack_limit, pgd, fmn, epochs, root = args.attack_limit, args.pgd_steps, args.fmn_steps, args.epochs, args.root
    if args.quick:  # one epoch a run, in their own folder (a quick run never lands among the real ones)
        attack_limit, pgd, fmn, epochs, root = 50, 5, 5, 1, args.root / "quick"
    jobs = [{"arch": args.arch, "layer": layer, "seed": seed, "recipe": args.recipe, "epochs": epochs,
             "train_eps": args.train_eps, "root": str(root), "attack_limit": attack_limit, "pgd_steps": pgd,
             "fmn_steps": fmn, "threads": args.threads, "attack": attack_limit > 0, "collect_only": args.collect_only}
            for layer in args.layers for seed in range(args.seed, args.seed + args.seeds)]
    load_before = load_average()
    with worker_pool(args.workers) as pool:
        results = run_sweep(run_task, jobs, pool, "runs")
    rows = [row for row in results if row is not None]
    pending = [f"{job['layer']} seed {job['seed']}" for job, row in zip(jobs, results) if row is None]
    if pending:
        print(f"not finished (left out, not resumed): {', '.join(pending)}")
    if not rows:
        print(f"no finished run under {root}")
        return 0
    lines = summarize(rows, args.arch)
    title = (f"MNIST (60,000 / 10,000), {args.arch}, recipe {args.recipe}: ours (mean of {args.seeds} seed(s)) "
             "beside Li et al. 2019 (mean of 5)")
    print(title)
    print(format_table(lines, COLUMNS))
    for r in rows:
        print(f"{r['layer']} seed {r['seed']}: L = {r['L']:.9f} (float64, measured), {r['epochs']} epochs "
              f"({r['loss']} eps {r['train_eps']:g}, lr {r['lr']:g}, gamma {r['gamma']:g}), selected epoch "
              f"{r['selected_epoch']}, {r['train_seconds'] / 60:.1f} min at load {r['train_load_average']:.1f}, "
              f"soundness violations {r['violations']} on {r['attacked_images']} attacked digits")
    best = max(rows, key=lambda r: r["cert_1.58"])
    print(f"best certified at 1.58: {best['cert_1.58']:.2f} ({best['layer']}, {best['loss']} eps {best['train_eps']:g}"
          f", {best['epochs']} epochs) against GloRo's {GLORO} (Large, unconstrained, 300 epochs)")
    print(f"load average before {load_before}, after {load_average()}")
    name = "paper_table" if args.arch == "small" and args.recipe == "ce" else f"paper_table_{args.arch}_{args.recipe}"
    figure = save_figure(args.out / f"{name}.png", draw(lines, title))
    write_json(args.out / f"{name}.json", {"rows": rows, "summary": lines, "paper": PAPER[args.arch],
                                           "gloro_certified_1.58": GLORO, "figure": figure}, args)
    return 0 if all(r["violations"] in (0, None) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
