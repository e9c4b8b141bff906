"""The BCOP paper's Table 1 on the full MNIST, reproduced: our numbers beside the paper's.

Li et al. (NeurIPS 2019) report, for the Small and Large networks of Wong et al. with each
orthogonal convolution (OSSN, RKO, SVCM, BCOP), the clean and certified accuracy at L2 radius 1.58
on the 10,000 MNIST test digits (mean of 5 runs). This experiment trains each layer on the full
MNIST (``orthoconv data get mnist``; 54,000 training, 6,000 validation digits drawn from the 60,000),
selects the epoch on the validation split, and certifies the selected network on the 10,000 test
digits in float64 with ``L`` measured from the weights (certified when the margin exceeds
``sqrt(2) eps L``). The soundness check of ``orthoconv certify`` runs on the test digits (the first
``--attack-limit``): foolbox L2PGD at 1.58 and L2FMN must break no certified point inside its radius.
``--layers`` takes the paper's four (the default) and every other constrained convolution of
``orthoconv.networks`` (AOL, CPL, SLL, LOT, BRO, Sandwich, RK-L2NE, Cayley, SOC), in the same network.

Recipes (``--recipe``):

- ``ce`` (default): cross-entropy with the offset ``sqrt(2) eps L`` and temperature 0.25 (Prach &
  Lampert 2022), eps ``--train-eps`` (default 1.58), Adam 3e-3 (``orthoconv train``'s), batch 128, the
  learning rate decayed per epoch by ``gamma = 0.01 ** (1 / epochs)`` (rounded to 3 digits: 1/100 at
  the end; 0.891 for 40 epochs), 40 epochs. (Adam 1e-3 with this decay left BCOP underfitting, at
  90.7 % training and validation accuracy after 10 epochs.)
- ``paper``: the paper's multi-class hinge with eps 1.5, Adam 1e-3, decay 0.96235 per epoch, batch
  128, 200 epochs (REFERENCES: "The 2019 training settings").

``--lr``, ``--gamma`` and ``--temperature`` replace the recipe's (the hinge has no temperature).

Each run lives in ``ROOT/ARCH-LAYER-LOSSEPS[-lrLR][-gGAMMA][-tT]-seedS`` (e.g. ``small-bcop-ce1.58-seed0``,
``small-bcop-ce1.58-g977-seed0`` for ``--gamma 0.977``): the learning rate, decay and temperature are
in the name where they differ from the recipe's. It is what ``orthoconv train`` writes there
(checkpoint every epoch). A finished run (``metrics.json`` with its test result) is collected as it
is; an interrupted one is resumed with its own saved settings (``--epochs`` may lengthen or shorten
it); a missing one is trained. An existing run whose loss, radius, learning rate, temperature or
(where given) decay differ from the ones asked for is an error, never collected in their place. So
the runs can be started by hand with ``orthoconv train`` (in parallel, in the background) and
collected here later. ``--collect-only`` never trains: it tabulates every finished run directly
under ROOT of ``--arch`` with a layer of ``--layers``, whatever its settings and seed, and lists the
runs that have not finished (they may still be training in another process). Each row says its
recipe (loss, radius, learning rate, decay, temperature, epochs); the table has one line per layer
and recipe, the mean over its seeds. Runs go in ``--workers`` processes (default 2, one torch thread
each).

Writes ``OUT/paper_table.json`` (every row, the means and per-seed values, the best certified
accuracy at 1.58 against GloRo's 62.8, the paper's numbers, args, versions, load) and
``OUT/paper_table.png`` (default OUT: analysis/figures; with ``--quick``: ROOT/quick, where the quick
runs go); prints the tables, or with ``--json`` the JSON document. Exit status 1 when a soundness
violation is found.

``orthoconv experiment paper-table [--arch small|large] [--layers ...] [--seeds N] [--epochs N] [--recipe ce|paper]
[--lr LR] [--gamma G] [--temperature T] [--collect-only] [--json]``
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import torch

from orthoconv import io
from orthoconv.cli.args import non_negative_int, positive_float, positive_int
from orthoconv.io import load_average

from ..common.harness import experiment_parser, run_sweep, save_figure, worker_pool, write_json
from .paper_table_report import GLORO, LAYERS, PAPER, PAPER_LAYERS, best_line, draw, print_report, summarize

EPS = (0.5, 1.0, 1.58)
ATTACK_EPS = 1.58
RECIPES = {
    "ce": {"loss": "ce", "temperature": 0.25, "lr": 3e-3, "batch_size": 128, "epochs": 40},
    "paper": {"loss": "hinge", "train_eps": 1.5, "lr": 1e-3, "gamma": 0.96235, "batch_size": 128, "epochs": 200},
}
RECIPE_OF_LOSS = {"ce": "ce", "hinge": "paper"}
ROW = "paper_row.json"  # a collected run's row, reused when the attack settings are the same
def recipe_config(recipe: str, epochs: int | None = None, train_eps: float = 1.58, *, lr: float | None = None,
                  gamma: float | None = None, temperature: float | None = None) -> dict:
    """The training settings of ``recipe`` (module docstring) for ``epochs`` (default: the recipe's), with
    ``lr``, ``gamma`` and ``temperature`` replaced where given. ``train_eps`` is the ``ce`` recipe's radius
    (the ``paper`` recipe's hinge aims at 1.5). Raises ``ValueError`` naming the setting: an unknown
    recipe, a temperature for the hinge (which has none), a ``gamma`` outside ``(0, 1]``, a non-positive
    ``lr`` or ``temperature``."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
    settings = dict(RECIPES[recipe])
    if epochs is not None:
        settings["epochs"] = epochs
    if recipe == "ce":
        settings["train_eps"] = train_eps
        settings["gamma"] = round(0.01 ** (1 / settings["epochs"]), 3)
    elif temperature is not None:
        raise ValueError(f"temperature: the {recipe} recipe's loss ({settings['loss']}) has no temperature")
    for name, value in (("lr", lr), ("temperature", temperature)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
    if gamma is not None and not 0 < gamma <= 1:
        raise ValueError(f"gamma (the learning rate's decay per epoch) must lie in (0, 1], got {gamma!r}")
    settings.update({k: v for k, v in (("lr", lr), ("gamma", gamma), ("temperature", temperature)) if v is not None})
    return settings


def run_name(arch: str, layer: str, settings: dict, seed: int) -> str:
    """``ARCH-LAYER-LOSSEPS[-lrLR][-gGAMMA][-tT]-seedS``: the learning rate, decay and temperature appear
    when they differ from the recipe's (for ``ce`` the decay that reaches 1/100 in the run's epochs), the
    decay without its ``0.`` (``g977`` for 0.977). The epochs are not in the name (a run may be lengthened)."""
    defaults = recipe_config(RECIPE_OF_LOSS[settings["loss"]], settings["epochs"], settings["train_eps"])
    parts = [arch, layer, f"{settings['loss']}{settings['train_eps']:g}"]
    if settings["lr"] != defaults["lr"]:
        parts.append(f"lr{settings['lr']!r}")
    if settings["gamma"] != defaults["gamma"]:
        parts.append("g" + repr(float(settings["gamma"])).removeprefix("0."))
    if settings.get("temperature") != defaults.get("temperature"):
        parts.append(f"t{settings['temperature']!r}")
    return "-".join([*parts, f"seed{seed}"])


def recipe_fields(config: dict, epochs: int) -> dict:
    """A run's recipe (loss, train_eps, lr, gamma, epochs, temperature, batch_size) from its saved training
    settings and its number of epochs, with a label that names every value exactly
    (``ce 1.58, lr 0.003, gamma 0.891, T 0.25, 40 ep``)."""
    hinge = config["loss"] == "hinge"
    fields = {"loss": config["loss"], "train_eps": config["train_eps"], "lr": config["lr"], "gamma": config["gamma"],
              "epochs": epochs, "temperature": None if hinge else config["temperature"],
              "batch_size": config["batch_size"]}
    label = (f"{fields['loss']} {fields['train_eps']!r}, lr {fields['lr']!r}, gamma {fields['gamma']!r}, "
             + ("" if hinge else f"T {fields['temperature']!r}, ") + f"{epochs} ep"
             + ("" if fields["batch_size"] == 128 else f", batch {fields['batch_size']}"))
    return {"recipe": label, **fields}


def _finished(folder: Path) -> dict | None:
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary if "test" in summary else None


def _saved_config(folder: Path) -> dict:
    from orthoconv.networks import read_record

    return read_record(folder / "checkpoint.pt")["training"]["config"]


def _check_same(folder: Path, saved: dict, settings: dict, checked: tuple[str, ...]) -> None:
    differ = [f"{k} {saved[k]!r} (asked {settings[k]!r})" for k in checked if saved.get(k) != settings[k]]
    if differ:
        raise ValueError(f"{folder} holds a run with other settings: {', '.join(differ)}; choose another --root")


def train_run(folder: Path, arch: str, layer: str, seed: int, settings: dict, epochs: int | None,
              checked: tuple[str, ...]) -> dict:
    """The finished run in ``folder`` (``orthoconv train``'s metrics), resumed to ``epochs`` (default its
    own) or trained from scratch with ``settings``. ``checked``: the settings an existing run must share."""
    from orthoconv.training import TrainConfig, train

    summary = _finished(folder)
    if summary is not None:
        _check_same(folder, summary["config"], settings, checked)
        return summary
    if (folder / "checkpoint.pt").is_file():
        saved = _saved_config(folder)
        _check_same(folder, saved, settings, checked)
        config = TrainConfig.from_dict({**saved, "epochs": epochs or saved["epochs"], "out": str(folder)})
    else:
        config = TrainConfig(dataset="mnist", arch=arch, layer=layer, seed=seed, out=str(folder), **settings)
    return train(config, resume=(folder / "checkpoint.pt").is_file(), log=lambda _: None)


def certify_run(folder: Path, summary: dict, attack_limit: int, pgd_steps: int, fmn_steps: int) -> dict:
    """One row: the selected network of the finished run in ``folder`` certified on the 10,000 test digits
    (float64, ``L`` measured) and attacked on the first ``attack_limit`` (0: no attack); cached in
    ``folder/paper_row.json`` for the same attack settings."""
    from orthoconv.certify import evaluate
    from orthoconv.certify.report import certify_network
    from orthoconv.data import load
    from orthoconv.networks import load as load_network

    config, history = summary["config"], summary["history"]
    recipe = recipe_fields(config, len(history))
    key = {"attack_limit": attack_limit, "pgd_steps": pgd_steps, "fmn_steps": fmn_steps, "attack": attack_limit > 0,
           "selected_epoch": summary["selected"]["epoch"], "epochs": len(history)}
    cached = folder / ROW
    if cached.is_file() and json.loads(cached.read_text()).get("key") == key:
        return {**json.loads(cached.read_text())["row"], **recipe}
    data = load("mnist", val_fraction=config["val_fraction"], seed=config["split_seed"])
    model = load_network(folder / "model.pt")
    started = time.perf_counter()
    full = evaluate(model, data.test.images, data.test.labels, EPS, dtype=torch.float64)
    limit = min(attack_limit, len(data.test))
    report = certify_network(model, data.test.images[:limit], data.test.labels[:limit], [ATTACK_EPS], attack=True,
                             pgd_steps=pgd_steps, fmn_steps=fmn_steps) if limit else None
    row = {
        "layer": config["layer"], "seed": config["seed"], "arch": config["arch"], "run": str(folder), **recipe,
        "selected_epoch": summary["selected"]["epoch"],
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


def run_task(folder: str, attack_limit: int, pgd_steps: int, fmn_steps: int, threads: int, train: dict | None = None,
             collect_only: bool = False) -> dict | None:
    """One row for the run in ``folder``: trained, resumed or collected (``train``: the arguments of
    :func:`train_run` but the folder), then certified and attacked. ``None`` when only collecting and
    the run has not finished: it may be training in another process."""
    torch.set_num_threads(threads)
    path = Path(folder)
    if collect_only or train is None:
        summary = _finished(path)
        if summary is None:
            return None
    else:
        summary = train_run(path, **train)
    return certify_run(path, summary, attack_limit, pgd_steps, fmn_steps)


def scan_runs(root: Path, arch: str, layers) -> tuple[list[Path], list[str]]:
    """The run folders directly under ``root`` of ``arch`` with a layer in ``layers``, whatever their
    settings: the finished ones, and the names of the others (a checkpoint or metrics, no test result)."""
    finished, pending = [], []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        summary = _finished(folder)
        if summary is not None:
            if summary["config"]["arch"] == arch and summary["config"]["layer"] in layers:
                finished.append(folder)
            continue
        started = (folder / "checkpoint.pt").is_file() or (folder / "metrics.json").is_file()
        if started and folder.name.startswith(f"{arch}-") and folder.name.split("-")[1] in layers:
            pending.append(folder.name)
    return finished, pending


def _recipe_arguments(parser, args) -> tuple[dict, tuple[str, ...]]:
    """The settings the arguments ask for, and those an existing run must share (the others may differ:
    the epochs, and the ``ce`` decay when derived from them)."""
    try:
        settings = recipe_config(args.recipe, args.epochs, args.train_eps, lr=args.lr, gamma=args.gamma,
                                 temperature=args.temperature)
    except ValueError as err:
        parser.error(f"argument --{str(err).split()[0].rstrip(':')}: {err}")
    checked = ("loss", "train_eps", "lr", "batch_size", *(("temperature",) if "temperature" in settings else ()))
    return settings, checked + (("gamma",) if args.recipe == "paper" or args.gamma is not None else ())


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = experiment_parser("paper_table", __doc__.split("\n\n")[0], prog)
    parser.set_defaults(workers=2, out=None)
    parser.add_argument("--arch", choices=sorted(PAPER), default="small")
    parser.add_argument("--layers", nargs="+", choices=LAYERS, default=list(PAPER_LAYERS),
                        help="layers (default: the paper's four; any of orthoconv.networks' constrained ones)")
    parser.add_argument("--seeds", type=positive_int, default=1, help="seeds per layer: --seed .. --seed + N - 1")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="ce")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="epochs (default: the recipe's, 40 for ce and 200 for paper; a resumed run keeps "
                        "its own unless given)")
    parser.add_argument("--train-eps", type=positive_float, default=1.58, help="radius the ce recipe aims at")
    parser.add_argument("--lr", type=positive_float, default=None, help="Adam's learning rate (default: the recipe's)")
    parser.add_argument("--gamma", type=positive_float, default=None,
                        help="learning-rate decay per epoch, in (0, 1] (default: the recipe's; ce: 1/100 over the run)")
    parser.add_argument("--temperature", type=positive_float, default=None,
                        help="the ce loss's temperature (default 0.25; the paper recipe's hinge has none)")
    parser.add_argument("--root", type=Path, default=Path("runs") / "paper", help="folder of the runs")
    parser.add_argument("--attack-limit", type=non_negative_int, default=10_000,
                        help="test digits attacked for the soundness check (default all 10,000; 0: none)")
    parser.add_argument("--pgd-steps", type=positive_int, default=50)
    parser.add_argument("--fmn-steps", type=positive_int, default=50)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--collect-only", action="store_true",
                        help="never train: tabulate every finished run under --root of --arch and --layers, whatever "
                        "its recipe and seed; list the others (which may be training in another process)")
    parser.add_argument("--json", action="store_true", help="print the JSON document instead of the tables")
    args = parser.parse_args(argv)
    settings, checked = _recipe_arguments(parser, args)
    if not args.collect_only:  # collecting needs the data only for a row not yet cached, and load() says so
        from orthoconv.data import dataset_folder, verify_mnist_folder

        verify_mnist_folder(dataset_folder("mnist"))  # one line naming 'orthoconv data get mnist' when missing
    attack_limit, pgd, fmn, epochs, root = args.attack_limit, args.pgd_steps, args.fmn_steps, args.epochs, args.root
    out = args.out or Path("analysis") / "figures"
    if args.quick:  # one epoch a run, in their own folder (a quick run never lands among the real ones)
        attack_limit, pgd, fmn, epochs, root = 50, 5, 5, 1, args.root / "quick"
        settings, out = recipe_config(args.recipe, 1, args.train_eps, lr=args.lr, gamma=args.gamma,
                                      temperature=args.temperature), args.out or root
    common = {"attack_limit": attack_limit, "pgd_steps": pgd, "fmn_steps": fmn, "threads": args.threads}
    if args.collect_only:
        folders, pending = scan_runs(root, args.arch, args.layers)
        jobs = [{"folder": str(folder), **common} for folder in folders]
    else:
        jobs = [{"folder": str(root / run_name(args.arch, layer, settings, seed)), **common,
                 "train": {"arch": args.arch, "layer": layer, "seed": seed, "settings": settings, "epochs": epochs,
                           "checked": checked}}
                for layer in args.layers for seed in range(args.seed, args.seed + args.seeds)]
        pending = []
    load_before = load_average()
    with worker_pool(args.workers) as pool:
        rows = [row for row in run_sweep(run_task, jobs, pool, "runs") if row is not None]
    order = {layer: i for i, layer in enumerate(LAYERS)}
    rows.sort(key=lambda r: (order[r["layer"]], r["recipe"], r["seed"]))
    if not rows:
        message = f"no finished run under {root}" + (f" (not finished: {', '.join(pending)})" if pending else "")
        print(json.dumps({"rows": [], "not_finished": pending, "message": message}) if args.json else message)
        return 0
    lines = summarize(rows, args.arch)
    best = best_line(lines, args.arch)
    recipes = "recipes as labelled" if args.collect_only else f"recipe {args.recipe}"
    title = (f"MNIST (60,000 / 10,000), {args.arch}, {recipes}: ours (mean over seeds) beside Li et al. 2019 "
             "(mean of 5)")
    name = "paper_table" if args.arch == "small" and args.recipe == "ce" else f"paper_table_{args.arch}_{args.recipe}"
    figure = save_figure(out / f"{name}.png", draw(lines, title))
    document = {"rows": rows, "summary": lines, "best": best, "not_finished": pending, "paper": PAPER[args.arch],
                "gloro_certified_1.58": GLORO, "figure": figure,
                "load_average": {"before": load_before, "after": load_average()}}
    path = write_json(out / f"{name}.json", document, args)
    if args.json:
        print(path.read_text())
    else:
        print_report(rows, lines, best, title, pending)
        print(f"load average before {load_before}, after {load_average()}; wrote {path}")
    return 0 if all(r["violations"] in (0, None) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
