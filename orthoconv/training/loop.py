"""``train(config)``: seeded, deterministic training of a Lipschitz classifier, with atomic
checkpoints every epoch, exact resumption, model selection on the validation split, and
data-parallel replicas under ``torchrun``.

Each epoch: the certified Lipschitz bound ``L`` of the current network is measured
(:func:`orthoconv.certify.network_lipschitz`) and sets the loss margin ``sqrt(2) eps L``; the
training images are visited in an order drawn from ``(seed, epoch)`` alone, in global batches of
``batch_size`` (each process takes ``batch[rank::world_size]``); Adam steps (followed by the
projection of layers that have one, SVCM), the learning rate decays by ``gamma``; the validation
split is certified; ``checkpoint.pt`` (everything a resumption needs) and, when the validation
score improves, ``model.pt`` (the selected network) are written
atomically. A resumed run restores the network, Adam, the schedule, the history and the random
state, so it ends exactly where the uninterrupted run ends. The test split is touched once, after
training, to report the selected network.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..certify.bound import network_lipschitz
from ..certify.evaluation import evaluate
from ..data import Dataset, load
from ..io import load_average, progress, run_metadata, write_json
from ..networks import LipschitzNetwork, build, read_record, save
from ..networks import load as load_network
from ..nn import raise_failed_checks
from .config import TrainConfig
from .curves import plot_history
from .distributed import Context, setup, teardown
from .losses import certifying_margin, summed_loss

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.json"
CURVES = "curves.png"
REPORT_EVERY = 10  # batches between progress-bar updates (each one synchronizes the device)


def batch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``range(n)`` for ``epoch``: a function of ``(seed, epoch)`` only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def build_model(config: TrainConfig, data: Dataset) -> LipschitzNetwork:
    """The network of ``config`` for ``data``, initialized from ``config.seed`` (on the CPU, so a seed
    gives the same initial weights on every device). The normalization is built in."""
    mean = data.mean if config.normalize in ("center", "standardize") else 0.0
    std = data.std if config.normalize == "standardize" else 1.0
    torch.manual_seed(config.seed)
    return build(config.arch, config.layer, data.in_channels, data.image_size, data.num_classes,
                  mean=list(mean) if isinstance(mean, tuple) else mean,
                  std=list(std) if isinstance(std, tuple) else std, activation=config.activation)


def _autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class _Deterministic:
    """On CUDA, deterministic algorithms for the duration of a run (restored afterwards). CPU kernels
    are deterministic for a fixed thread count already (the resumption test checks it bit for bit),
    and switching the flag on costs a few seconds of imports."""

    def __init__(self, device: torch.device) -> None:
        self.active = device.type == "cuda"

    def __enter__(self):
        if self.active:
            self.previous = (torch.are_deterministic_algorithms_enabled(),
                             torch.is_deterministic_algorithms_warn_only_enabled())
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        return self

    def __exit__(self, *exc):
        if self.active:
            torch.use_deterministic_algorithms(self.previous[0], warn_only=self.previous[1])


def _validate(model: nn.Module, data: Dataset, config: TrainConfig, device) -> dict:
    result = evaluate(model, data.val.images, data.val.labels, [config.select_eps], device=device,
                      dtype=torch.float32)
    return {"val_clean": result["clean"], "val_certified": result["certified"][config.select_eps],
            "lipschitz": result["lipschitz"]}


def _score(entry: dict, config: TrainConfig) -> tuple[float, float]:
    return (entry["val_certified"], entry["val_clean"]) if config.select == "certified" else (entry["val_clean"], 0.0)


def local_batch(batch: torch.Tensor, rank: int, world_size: int) -> tuple[torch.Tensor, float]:
    """This process's share ``batch[rank::world_size]`` of a global batch and the weight of its loss SUM:
    ``world_size / len(batch)``, so that DDP's average over processes of the weighted gradients is the
    gradient of the mean loss over the global batch. A process left without an example (a last batch
    shorter than ``world_size``) computes one with weight 0, since every process must take part."""
    local = batch[rank::world_size]
    if local.numel() == 0:
        return batch[:1], 0.0
    return local, world_size / batch.numel()


def projected_layers(model: nn.Module) -> list[nn.Module]:
    """The layers trained by projected gradient descent: those with ``project_()`` (SVCM's clip-and-mask,
    Sedghi et al. 2019), which the trainer calls after every optimizer step."""
    return [m for m in model.modules() if callable(getattr(m, "project_", None))]


def _train_epoch(net: nn.Module, data: Dataset, optimizer, config: TrainConfig, context: Context, epoch: int,
                 margin: float, autocast: torch.dtype | None) -> dict:
    train = data.train
    order = batch_order(len(train), config.seed, epoch).to(train.images.device)
    n_batches = math.ceil(len(order) / config.batch_size)
    bar = progress(total=n_batches, label=f"epoch {epoch + 1}/{config.epochs}",
                   enabled=None if context.is_main else False)
    totals = torch.zeros(3, dtype=torch.float64, device=context.device)  # loss sum, correct, seen
    projected = projected_layers(net)
    net.train()
    try:
        for index, start in enumerate(range(0, len(order), config.batch_size)):
            local, weight = local_batch(order[start:start + config.batch_size], context.rank, context.world_size)
            x, y = train.batch(local, context.device)
            with torch.autocast(context.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
                logits = net(x)
            loss = summed_loss(config.loss, logits.float(), y, margin, config.temperature)
            optimizer.zero_grad(set_to_none=True)
            (loss * weight).backward()
            optimizer.step()
            for layer in projected:
                layer.project_()
            if weight:
                correct = (logits.detach().argmax(1) == y).sum()
                totals += torch.stack([loss.detach().double(), correct.double(), totals.new_tensor(y.numel())])
            bar.update(1)
            if index % REPORT_EVERY == 0 or start + config.batch_size >= len(order):
                _check_and_show(totals, bar, epoch)
    finally:
        bar.close()
    loss_sum, correct, seen = context.all_sum(totals.tolist())
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen}


def _check_and_show(totals: torch.Tensor, bar, epoch: int) -> None:
    """Show the running loss and accuracy (one device synchronization); stop on a failed kernel check (the
    layers defer theirs to this read, :func:`orthoconv.nn.raise_failed_checks`) or a non-finite loss."""
    loss_sum, correct, seen = totals.tolist()
    raise_failed_checks()
    if not math.isfinite(loss_sum):
        raise ValueError(f"epoch {epoch + 1}: the training loss is {loss_sum}, not finite; lower --lr")
    bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.4f}", acc=f"{correct / max(seen, 1):.4f}")


def _checkpoint_record(out: Path) -> dict:
    path = Path(out) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: {path} does not exist")
    record = read_record(path)
    training = record.get("training")
    if not isinstance(training, dict) or "optimizer" not in training:
        raise ValueError(f"{path} is a network checkpoint without a training state; it cannot be resumed")
    return record


def checkpoint_config(out) -> TrainConfig:
    """The settings of the run whose ``checkpoint.pt`` is in folder ``out`` (what ``--resume`` continues)."""
    return TrainConfig.from_dict(_checkpoint_record(Path(out))["training"]["config"])


def _resume_state(out: Path, config: TrainConfig) -> dict:
    path = out / CHECKPOINT
    record = _checkpoint_record(out)
    saved = TrainConfig.from_dict(record["training"]["config"])
    changed = saved.differences(config)
    if changed:
        raise ValueError(f"{path} was trained with other settings ({', '.join(changed)}); "
                         "resume with the same settings or start a new --out")
    return record


def train(config: TrainConfig, *, resume: bool = False, log: Callable[[str], None] = print,
          data: Dataset | None = None, on_epoch: Callable[[int, nn.Module], None] | None = None) -> dict:
    """Train ``config`` (module docstring); returns the summary that ``metrics.json`` holds.

    ``data`` skips loading (it must be what ``config`` names); ``on_epoch(epoch, model)`` is called in
    every process after each epoch's checkpoint. Under ``torchrun`` every process runs this; process 0
    writes the files and returns the summary with the test result.
    """
    context = setup(config.device)
    try:
        with _Deterministic(context.device):
            return _train(config, context, resume, log, data, on_epoch)
    finally:
        teardown(context)


def _train(config: TrainConfig, context: Context, resume: bool, log, data: Dataset | None, on_epoch) -> dict:
    out = Path(config.out)
    if not resume and (out / CHECKPOINT).exists():
        raise ValueError(f"{out} already holds a run ({CHECKPOINT}): pass --resume to continue it, or another --out")
    record = _resume_state(out, config) if resume else None  # before mkdir: a failed resume leaves no folder
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = load(config.dataset, config.data_dir, val_fraction=config.val_fraction,
                    test_fraction=config.test_fraction, seed=config.split_seed)
    model = build_model(config, data)
    if record is not None:
        model.load_state_dict(record["state_dict"])
    model.to(context.device)  # before the optimizer, so that a loaded Adam state lands on the device too
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.gamma)
    history: list[dict] = []
    best: dict | None = None
    if record is not None:
        state = record["training"]
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best = list(state["history"]), state["best"]
        _set_rng_state(state["rng"], context.device)
    train_data = Dataset(data.name, data.train.to(context.device), data.val, data.test, data.num_classes,
                         data.mean, data.std)
    net = model
    if context.distributed:
        ids = [context.device.index] if context.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    autocast = _autocast_dtype(config, context.device)
    metadata = run_metadata(config.to_dict(), context.device)
    metadata["world_size"] = context.world_size
    lipschitz = network_lipschitz(model, data.image_size)
    for epoch in range(len(history), config.epochs):
        margin = certifying_margin(config.train_eps, lipschitz)
        started = time.perf_counter()
        entry = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "margin": margin,
                 **_train_epoch(net, train_data, optimizer, config, context, epoch, margin, autocast)}
        entry["seconds"] = time.perf_counter() - started
        scheduler.step()
        started = time.perf_counter()
        entry.update(_validate(model, data, config, context.device), select_eps=config.select_eps)
        entry["eval_seconds"] = time.perf_counter() - started
        entry["load_average"] = load_average()
        lipschitz = entry["lipschitz"]
        history.append(entry)
        improved = best is None or _score(entry, config) > _score(best, config)
        if improved:
            best = dict(entry)
        if context.is_main:
            training = {"config": config.to_dict(), "epoch": epoch + 1, "history": history, "best": best,
                        "dataset": data.describe()}
            if improved:
                save(model, out / MODEL, training=training)
            save(model, out / CHECKPOINT, training={**training, "optimizer": optimizer.state_dict(),
                                                    "scheduler": scheduler.state_dict(),
                                                    "rng": _rng_state(context.device)})
            write_json(out / METRICS, {"metadata": metadata, "config": config.to_dict(),
                                       "dataset": data.describe(), "history": history, "selected": best})
            log(_epoch_line(entry, config))
        context.barrier()
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
    return _finish(config, context, data, out, metadata, history, best, log)


def _epoch_line(entry: dict, config: TrainConfig) -> str:
    return (f"epoch {entry['epoch']:3d}/{config.epochs}  loss {entry['train_loss']:.4f}  train acc "
            f"{entry['train_acc']:.4f}  val clean {entry['val_clean']:.4f}  val certified@{entry['select_eps']:.3g} "
            f"{entry['val_certified']:.4f}  L {entry['lipschitz']:.6f}  {entry['seconds']:.1f}s")


def _finish(config, context, data, out, metadata, history, best, log) -> dict:
    summary = {"metadata": metadata, "config": config.to_dict(), "dataset": data.describe(),
               "history": history, "selected": best}
    if not context.is_main:
        return summary
    model = load_network(out / MODEL, map_location=context.device)
    test = evaluate(model, data.test.images, data.test.labels, config.eval_eps, device=context.device)
    summary["test"] = {"clean": test["clean"], "certified": {str(k): v for k, v in test["certified"].items()},
                       "lipschitz": test["lipschitz"], "split": "test", "size": len(data.test),
                       "dtype": "float64"}
    summary["seconds"] = sum(h["seconds"] + h["eval_seconds"] for h in history)
    write_json(out / METRICS, summary)
    plot_history(history, out / CURVES, f"{config.arch} / {config.layer} on {config.dataset}")
    log(f"selected epoch {best['epoch']} on validation; test ({len(data.test)} images): clean {test['clean']:.4f}, "
        + ", ".join(f"certified@{k:.3g} {v:.4f}" for k, v in test["certified"].items())
        + f", L {test['lipschitz']:.6f}")
    return summary
