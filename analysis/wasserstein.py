"""Wasserstein-1 estimates of every critic layer against known answers (Li et al. 2019, Sec. 6).

Each critic (:func:`orthoconv.wasserstein.conv_critic` for every convolution by name, and
:func:`orthoconv.wasserstein.mlp_critic`) is trained by :func:`orthoconv.wasserstein.estimate_w1` on

- ``a-gauss``: i.i.d. N(0, 1) images (1 x 28 x 28, i.e. R^784) against the same images + delta;
- ``a-mnist``: MNIST-5k digits against the same digits + delta (W1 = ||delta|| for both);
- ``b-square``: blank images against +-1 squares (W1 = side, closed form);
- ``c-mnist``: MNIST-5k digits 0-4 against 5-9, n = 500 each, W1 = the exact assignment
  (:func:`orthoconv.wasserstein.exact_w1`), once per seed (``--seeds``: samples and critic both
  change with the seed).

Every true value is the exact W1 of the empirical measures the critic is scored on, so on every
problem a certified critic must stay at or below it; ``sound`` says whether it did. ``estimate``
divides by the critic's certified Lipschitz bound ``L``. The paper's order BCOP >= RKO >= OSSN
(STL-10: 9.91 / 8.95 / 7.39) is checked on every problem and reported either way.

``python -m analysis.wasserstein [--quick] [--seed S] [--seeds K] [--layers ...] [--problems ...]
[--steps N] [--device DEV] [--json] [--out DIR]``
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from orthoconv.cli.args import device as device_type
from orthoconv.cli.args import positive_int
from orthoconv.io import format_table, load_average, run_metadata, write_json
from orthoconv.wasserstein import (
    CRITIC_LAYERS,
    blank_vs_square,
    conv_critic,
    estimate_w1,
    gaussian_translation,
    is_sound,
    mlp_critic,
    mnist_halves,
    mnist_translation,
)

from .harness import experiment_parser, run_sweep, save_figure, worker_pool

LAYERS = (*CRITIC_LAYERS, "mlp")
PROBLEMS = ("a-gauss", "a-mnist", "b-square", "c-mnist")
PAPER_ORDER = ("bcop", "rko", "ossn")
# per problem: samples per set, batch size per set, Adam learning rate (cosine decay to 0)
SETTINGS = {
    "a-gauss": {"n": 128, "batch_size": 128, "lr": 3e-2},
    "a-mnist": {"n": 128, "batch_size": 128, "lr": 3e-2},
    "b-square": {"n": 128, "batch_size": 128, "lr": 3e-2},
    "c-mnist": {"n": 500, "batch_size": 250, "lr": 3e-2},
}
FULL = {"steps": 300, "seeds": 5, "log_points": 15}
QUICK = {"steps": 40, "seeds": 1, "log_points": 4, "n": 32}


def make_problem(name: str, n: int, seed: int):
    """The problem ``name`` with ``n`` samples per set, drawn with ``seed``."""
    if name == "a-gauss":
        return gaussian_translation(n, (1, 28, 28), 2.0, seed)
    if name == "a-mnist":
        return mnist_translation(n, 2.0, seed)
    if name == "b-square":
        return blank_vs_square(n, 28, 15, 1, seed)
    if name == "c-mnist":
        return mnist_halves(n, seed)
    raise ValueError(f"problem must be one of {PROBLEMS}, got {name!r}")


def make_critic(layer: str, shape: tuple[int, ...]):
    """The critic of ``layer`` (``mlp`` or a convolution name) for samples of ``shape``."""
    if layer == "mlp":
        return mlp_critic(int(torch.tensor(shape).prod()), (256, 256))
    return conv_critic(layer, shape[0], shape[1:])


def run_task(problem: str, layer: str, seed: int, n: int, steps: int, batch_size: int, lr: float,
             log_points: int, device: str) -> dict:
    """Train one critic on one problem; a JSON-ready row (top-level, so worker processes can run it)."""
    data = make_problem(problem, n, seed)
    torch.manual_seed(seed)
    critic = make_critic(layer, data.sample_shape).to(device)
    result = estimate_w1(critic, data.x_p, data.x_q, steps, batch_size, lr, seed, log_points=log_points)
    return {
        "problem": problem, "layer": layer, "seed": seed, "n": n, "true W1": data.true_w1,
        "estimate": result.estimate, "est/true": result.estimate / data.true_w1,
        "sound": is_sound(result.estimate, data.true_w1), "margin": data.true_w1 - result.estimate,
        "L": result.lipschitz, "raw": result.raw, "seconds": result.seconds, "steps": steps,
        "batch_size": batch_size, "lr": lr, "history": result.history, "description": data.description,
    }


def jobs_for(args) -> list[dict]:
    mode = QUICK if args.quick else FULL
    steps = args.steps or mode["steps"]
    seeds = args.seeds or mode["seeds"]
    jobs = []
    for problem in args.problems:
        settings = SETTINGS[problem]
        n = settings["n"] if problem == "c-mnist" or not args.quick else QUICK["n"]
        for layer in args.layers:
            for seed in range(args.seed, args.seed + (seeds if problem == "c-mnist" else 1)):
                jobs.append({"problem": problem, "layer": layer, "seed": seed, "n": n, "steps": steps,
                             "batch_size": min(settings["batch_size"], n), "lr": settings["lr"],
                             "log_points": mode["log_points"], "device": args.device})
    return jobs


def summarize(rows: list[dict], base_seed: int) -> list[dict]:
    """The table: one row per (problem, layer) at the base seed; on problems run with several seeds
    the violations over all of them and the mean ratio."""
    table = []
    for row in rows:
        if row["seed"] != base_seed:
            continue
        same = [r for r in rows if (r["problem"], r["layer"]) == (row["problem"], row["layer"])]
        entry = {key: row[key] for key in ("problem", "layer", "true W1", "estimate", "est/true", "sound", "L",
                                           "seconds")}
        entry["seeds"] = len(same)
        entry["violations"] = sum(not r["sound"] for r in same)
        entry["mean est/true"] = statistics.fmean(r["est/true"] for r in same)
        table.append(entry)
    return table


def paper_order(table: list[dict]) -> list[dict]:
    """For every problem with BCOP, RKO and OSSN: their mean est/true and whether BCOP >= RKO >= OSSN."""
    checks = []
    for problem in dict.fromkeys(r["problem"] for r in table):
        ratios = {r["layer"]: r["mean est/true"] for r in table if r["problem"] == problem}
        if all(layer in ratios for layer in PAPER_ORDER):
            values = [ratios[layer] for layer in PAPER_ORDER]
            checks.append({"problem": problem, **dict(zip(PAPER_ORDER, values)),
                           "BCOP >= RKO >= OSSN": values[0] >= values[1] >= values[2]})
    return checks


def draw(rows: list[dict], problems: list[str], base_seed: int):
    def build(plt):
        figure, axes = plt.subplots(1, len(problems), figsize=(4.2 * len(problems), 3.6), squeeze=False)
        for axis, problem in zip(axes[0], problems):
            shown = [r for r in rows if r["problem"] == problem and r["seed"] == base_seed]
            for row in shown:
                history = row["history"]
                axis.plot([h["step"] for h in history], [h["estimate"] for h in history], label=row["layer"])
            if shown:
                axis.axhline(shown[0]["true W1"], color="black", linestyle="--", linewidth=1, label="true W1")
            axis.set_title(problem)
            axis.set_xlabel("training steps")
            axis.set_ylabel("estimate = raw / L")
        axes[0][0].legend(fontsize=7)
        figure.suptitle("Certified W1 lower bounds against the exact value")
        figure.tight_layout()
        return figure

    return build


def _names(allowed: tuple[str, ...], what: str):
    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            import argparse

            raise argparse.ArgumentTypeError(f"{what} must be a comma-separated subset of {','.join(allowed)}")
        return names

    return parse


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = experiment_parser("wasserstein", __doc__.splitlines()[0], prog)
    parser.add_argument("--layers", type=_names(LAYERS, "--layers"), default=list(LAYERS),
                        help=f"critics to run (default all: {','.join(LAYERS)})")
    parser.add_argument("--problems", type=_names(PROBLEMS, "--problems"), default=list(PROBLEMS),
                        help=f"problems to run (default all: {','.join(PROBLEMS)})")
    parser.add_argument("--steps", type=positive_int,
                        help=f"Adam steps per critic (default {FULL['steps']}; --quick: {QUICK['steps']})")
    parser.add_argument("--seeds", type=positive_int,
                        help=f"seeds of c-mnist, from --seed on (default {FULL['seeds']}; --quick: {QUICK['seeds']})")
    parser.add_argument("--device", type=device_type, default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--json", action="store_true", help="print the JSON record on stdout instead of the tables")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be a positive integer, got {args.workers}")
    torch.set_num_threads(1)
    metadata = run_metadata(args, args.device)
    jobs = jobs_for(args)
    start = time.perf_counter()
    with worker_pool(args.workers if args.device == "cpu" else 1) as pool:
        rows = run_sweep(run_task, jobs, pool, "wasserstein")
    seconds = time.perf_counter() - start
    table = summarize(rows, args.seed)
    order = paper_order(table)
    figure = save_figure(args.out / "wasserstein.png", draw(rows, args.problems, args.seed))
    violations = sum(not r["sound"] for r in rows)
    record = {**metadata, "seconds": seconds, "load_average_after": load_average(), "figure": figure,
              "violations": violations, "runs": len(rows), "table": table, "paper_order": order, "rows": rows}
    path = write_json(args.out / "wasserstein.json", record)
    if args.json:
        print(json.dumps(record, indent=2, default=str))
        return 0
    print(format_table(table, ["problem", "layer", "true W1", "estimate", "est/true", "sound", "L", "seconds",
                               "seeds", "violations", "mean est/true"]))
    print(f"\nsoundness: {violations} violation(s) in {len(rows)} runs (estimate > exact W1 of the scored samples)")
    for check in order:
        verdict = "holds" if check["BCOP >= RKO >= OSSN"] else "does not hold"
        print(f"paper's order BCOP >= RKO >= OSSN on {check['problem']}: {verdict} "
              f"(mean est/true {check['bcop']:.4f} / {check['rko']:.4f} / {check['ossn']:.4f})")
    print(f"{len(rows)} runs in {seconds:.0f} s on {metadata['device']}, load average {load_average()} "
          f"(before: {metadata['load_average']})")
    print(f"wrote {path}" + (f" and {figure}" if figure else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
