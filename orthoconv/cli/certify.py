"""``orthoconv certify CHECKPOINT``: certified and attacked accuracy of a trained Lipschitz classifier."""

from __future__ import annotations

import json
from pathlib import Path

from . import args as types

COLUMNS = ["eps", "certified", "pgd_robust", "certified_broken"]


def _data_settings(record: dict, args) -> dict:
    """Which data and split the network is evaluated on: the training run's unless overridden."""
    config = (record.get("training") or {}).get("config") or {}
    dataset = args.dataset or config.get("dataset")
    if dataset is None:
        raise ValueError("the checkpoint does not record its data set: pass --dataset")
    same = dataset == config.get("dataset")
    return {"name": dataset, "data_dir": args.data_dir or (config.get("data_dir") if same else None),
            "val_fraction": config.get("val_fraction", 0.1) if same else 0.1,
            "test_fraction": config.get("test_fraction", 0.1) if same else 0.1,
            "seed": config.get("split_seed", 0) if same else 0}


def run(args, extra) -> int:
    import torch

    from ..certify.report import certify_network, plot_radii
    from ..data import load as load_data
    from ..io import run_metadata, write_json
    from ..networks import load, read_record
    from ..training import default_eps

    torch.set_num_threads(args.threads)
    record = read_record(args.checkpoint)
    model = load(args.checkpoint, map_location=args.device)
    settings = _data_settings(record, args)
    data = load_data(settings.pop("name"), settings.pop("data_dir"), **settings)
    split = data.split(args.split)
    images, labels = split.images, split.labels
    if args.limit is not None:
        images, labels = images[: args.limit], labels[: args.limit]
    spec = record["network"]
    if list(data.image_size) != list(spec["image_size"]) or data.in_channels != spec["in_channels"]:
        raise ValueError(f"the network takes {spec['in_channels']}x{spec['image_size']} images, {data.name} has "
                         f"{data.in_channels}x{list(data.image_size)}")
    eps = args.eps or list(default_eps(data.name))
    report = certify_network(model, images, labels, eps, attack=not args.no_attack, pgd_steps=args.pgd_steps,
                             fmn_steps=args.fmn_steps, lipschitz_samples=args.lipschitz_samples, seed=args.seed,
                             batch_size=args.batch_size, dtype=args.dtype)
    training = record.get("training") or {}
    report.update(checkpoint=str(args.checkpoint), network=spec, dataset=data.name, split=args.split,
                  selected_epoch=training.get("epoch"), metadata=run_metadata(args, args.device))
    subset = "" if args.limit is None else f"-first{args.limit}"
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"certify-{args.split}{subset}"
    out.mkdir(parents=True, exist_ok=True)
    title = f"{spec['arch']} / {spec['layer']} on {data.name} {args.split} ({report['n']} images)"
    figure = plot_radii(report, out / "radii.png", title)
    write_json(out / "certify.json", report)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k not in ("radii", "fmn_distance")}, indent=2))
    else:
        _print(report, title, figure, out)
    return 0 if report["soundness_violations"] in (0, None) else 1


def _print(report: dict, title: str, figure, out: Path) -> None:
    from ..io import format_table

    L = report["lipschitz"]
    print(title)
    print(f"evaluated in {report['dtype']}; certified L {L['certified']:.6f} (upper bound, measured from the "
          f"weights); empirical L >= {L['empirical']:.4f}")
    print(f"clean accuracy {report['clean']:.4f}")
    print(format_table(report["eps"], COLUMNS))
    if report["attack_skipped"]:
        print(f"attacks skipped: {report['attack_skipped']}")
    else:
        by = report["violations_by_attack"]
        print(f"soundness violations: {report['soundness_violations']} (certified at radius r, broken at distance "
              f"< r: PGD {by['pgd']}, FMN {by['fmn']}); must be 0")
    print(f"wrote {out / 'certify.json'}" + (f" and {figure}" if figure else ""))


def add_parser(sub) -> None:
    from ..data import DATASETS

    parser = sub.add_parser(
        "certify", help="certified (and attacked) accuracy of a trained Lipschitz classifier",
        description="Load a network checkpoint (orthoconv train's model.pt or checkpoint.pt; weights_only=True), "
        "measure its certified Lipschitz bound L from the weights, and certify each test image: certified at eps iff "
        "margin > sqrt(2) eps L (ties never). With foolbox (pip install 'orthoconv[attack]') it also runs L2PGD at "
        "each eps and the minimum-norm FMN attack, reports PGD-robust accuracy (an upper bound) and the soundness "
        "check: certified examples that an attack breaks inside their radius (must be 0), and an empirical lower "
        "bound on L. Exit 0, 1 if a soundness violation was found, 2 on bad input.")
    parser.add_argument("checkpoint", type=types.input_file, help="model.pt / checkpoint.pt written by orthoconv train")
    parser.add_argument("--dataset", choices=DATASETS, default=None,
                        help="data set (default: the one the network was trained on, with the same split)")
    parser.add_argument("--data-dir", default=None, help="folder of the data files (default: the training run's)")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="split (default %(default)s)")
    parser.add_argument("--eps", type=types.positive_float, nargs="+", default=None, metavar="EPS",
                        help="L2 radii (default: 0.5 1.0 1.58 on MNIST-like data, 36/255 72/255 108/255 on CIFAR-10)")
    parser.add_argument("--limit", type=types.positive_int, default=None,
                        help="only the first N images of the split (a random sample: the evaluation splits are "
                        "in a seeded random order)")
    parser.add_argument("--no-attack", action="store_true", help="skip the attacks (certificate only)")
    parser.add_argument("--pgd-steps", type=types.positive_int, default=100, help="L2PGD steps (default %(default)s)")
    parser.add_argument("--fmn-steps", type=types.positive_int, default=100, help="FMN steps (default %(default)s)")
    parser.add_argument("--lipschitz-samples", type=types.non_negative_int, default=100,
                        help="images for the empirical Lipschitz lower bound (default %(default)s)")
    parser.add_argument("--seed", type=types.seed, default=0,
                        help="seed of the attacks' random starts (default %(default)s)")
    parser.add_argument("--batch-size", type=types.positive_int, default=250, help="batch size (default %(default)s)")
    parser.add_argument("--dtype", type=types.dtype, default="float64",
                        help="evaluation dtype, float64 (default) or float32")
    parser.add_argument("--device", type=types.device, default="cpu", help="cpu, cuda, ... (default %(default)s)")
    parser.add_argument("--threads", type=types.positive_int, default=1, help="CPU threads (default 1, as for train)")
    parser.add_argument("--out", type=types.output_folder, default=None, help="folder for certify.json and radii.png "
                        "(default: beside the checkpoint, certify-SPLIT, or certify-SPLIT-firstN with --limit N)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(func=run)
