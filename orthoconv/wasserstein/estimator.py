"""Wasserstein-1 estimation through the Kantorovich-Rubinstein dual with a certified critic.

    W1(P, Q) = sup over 1-Lipschitz f of  E_P f - E_Q f          (Kantorovich-Rubinstein)

A critic ``f`` with a certified Lipschitz bound ``L`` gives ``f / L``, which is 1-Lipschitz, so

    estimate = (mean_i f(x_p[i]) - mean_j f(x_q[j])) / L  <=  W1(P_n, Q_m)

on the samples it is evaluated on, whatever the training did (Arjovsky et al. 2017 train such a
critic; Li et al. 2019, Sec. 6, make it orthogonal so that its gradient norm is 1). ``L`` is never
assumed: it is measured on the trained weights (:func:`orthoconv.wasserstein.critic_lipschitz`), and the
value is computed in float64 on a float64 copy of the critic, the same weights the bound is measured on.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..io.progress import progress
from ..math.checks import positive_int
from .certificate import critic_lipschitz
from .samples import check_samples


@dataclass(frozen=True)
class W1Estimate:
    """The result of :func:`estimate_w1`.

    Attributes:
        estimate: ``raw / lipschitz``, a certified lower bound of ``W1`` between the uniform measures on
            the evaluation samples (units of the samples: Euclidean distance between flattened samples).
        lipschitz: the certified bound ``L`` of the trained critic.
        raw: ``mean f(x_p) - mean f(x_q)`` on the evaluation samples, undivided.
        history: one dict per logged step ``{"step", "raw", "lipschitz", "estimate"}`` (same meaning,
            measured on the evaluation samples at that step; step 0 is the initial critic).
        steps, batch_size, lr, seed: the training arguments.
        seconds: wall time of training and evaluation.
    """

    estimate: float
    lipschitz: float
    raw: float
    history: list[dict] = field(repr=False)
    steps: int
    batch_size: int
    lr: float
    seed: int
    seconds: float


def _parameter(critic: nn.Module) -> Tensor:
    parameter = next(critic.parameters(), None)
    if parameter is None:
        raise ValueError("critic has no parameters to train")
    return parameter


@torch.no_grad()
def critic_value(critic: nn.Module, x_p: Tensor, x_q: Tensor, chunk: int = 500) -> tuple[float, float]:
    """``(raw, L)``: ``mean f(x_p) - mean f(x_q)`` and the certified bound ``L``, both from one float64
    copy of ``critic`` in eval mode (the critic itself is left untouched), on ``critic``'s device."""
    check_samples(x_p, x_q)
    frozen = copy.deepcopy(critic).to(torch.float64).eval()
    device = _parameter(frozen).device

    def mean_value(x: Tensor) -> float:
        total = torch.zeros((), dtype=torch.float64, device=device)
        for part in x.split(chunk):
            values = frozen(part.to(device, torch.float64))
            if values.shape != (part.shape[0], 1) and values.shape != (part.shape[0],):
                raise ValueError(f"critic must map (N, *shape) to (N, 1) or (N,), got {tuple(values.shape)}")
            total += values.sum()
        return float(total) / x.shape[0]

    raw = mean_value(x_p) - mean_value(x_q)
    return raw, critic_lipschitz(frozen, x_p.shape[1:])


def project_(critic: nn.Module) -> None:
    """Apply the projection of every layer that keeps its constraint by one (``project_()``, SVCM)."""
    for module in critic.modules():
        if module is not critic and callable(getattr(module, "project_", None)):
            module.project_()


def _batch(x: Tensor, size: int, generator: torch.Generator) -> Tensor:
    if size >= x.shape[0]:
        return x
    return x[torch.randperm(x.shape[0], generator=generator)[:size].to(x.device)]


def _log_steps(steps: int, points: int) -> set[int]:
    return {round(steps * i / points) for i in range(points + 1)}


def estimate_w1(
    critic: nn.Module,
    x_p: Tensor,
    x_q: Tensor,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    *,
    eval_p: Tensor | None = None,
    eval_q: Tensor | None = None,
    log_points: int = 20,
    label: str = "",
) -> W1Estimate:
    """Train ``critic`` to maximize ``mean f(x_p) - mean f(x_q)`` and return the certified estimate.

    Args:
        critic: an ``nn.Sequential`` mapping ``(N, *shape)`` to ``(N, 1)`` whose Lipschitz bound
            :func:`orthoconv.wasserstein.critic_lipschitz` can certify (e.g. :func:`conv_critic`,
            :func:`mlp_critic`). It is trained in place, on its own device and dtype.
        x_p, x_q: ``(N_p, *shape)`` and ``(N_q, *shape)`` samples of ``P`` and ``Q`` (any device).
        steps: Adam steps; ``batch_size``: samples of each set per step (all of them when
            ``batch_size >= N``, drawn without replacement otherwise); ``lr``: the initial learning
            rate, decayed to 0 by a cosine schedule; ``seed``: the batches (and any global-RNG use
            inside the critic during training).
        eval_p, eval_q: the samples the result is reported on (default: ``x_p``, ``x_q``); see
            :func:`estimate_w1_heldout`.
        log_points: how many evenly spaced steps (besides step 0) enter ``history``.
        label: progress bar label (the bar shows only on a terminal).

    After every optimizer step, layers with a ``project_()`` method (SVCM) are projected. Returns a
    :class:`W1Estimate`; ``estimate = raw / lipschitz`` (module docstring) is a lower bound on the
    exact ``W1`` of the evaluation samples' uniform measures, in the samples' units.

    Raises ``ValueError`` for different sample shapes, fewer than 2 samples in a set, non-finite
    samples, non-positive ``steps``/``batch_size``/``log_points``, a non-positive ``lr``, or a critic
    whose output is not one value per sample; ``TypeError`` for non-tensor samples or a critic whose
    bound cannot be certified.
    """
    check_samples(x_p, x_q, minimum=2)
    eval_p = x_p if eval_p is None else eval_p
    eval_q = x_q if eval_q is None else eval_q
    check_samples(eval_p, eval_q)
    if eval_p.shape[1:] != x_p.shape[1:]:
        raise ValueError(f"eval_p/eval_q must have the sample shape {tuple(x_p.shape[1:])}, got "
                         f"{tuple(eval_p.shape[1:])}")
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    log_points = positive_int(log_points, "log_points")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < lr < math.inf):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    parameter = _parameter(critic)
    device, dtype = parameter.device, parameter.dtype
    train_p, train_q = x_p.to(device, dtype), x_q.to(device, dtype)
    critic_lipschitz(copy.deepcopy(critic).eval(), x_p.shape[1:])  # an uncertifiable critic fails before training
    start = time.perf_counter()
    history: list[dict] = []
    logged = _log_steps(steps, min(log_points, steps))

    def log(step: int) -> None:
        raw, lipschitz = critic_value(critic, eval_p, eval_q)
        history.append({"step": step, "raw": raw, "lipschitz": lipschitz, "estimate": raw / lipschitz})

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    rng_devices = []
    if device.type == "cuda":
        rng_devices = [torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        log(0)
        critic.train()
        for step in progress(range(1, steps + 1), label=label):
            gap = critic(_batch(train_p, batch_size, generator)).mean() - critic(
                _batch(train_q, batch_size, generator)).mean()
            optimizer.zero_grad(set_to_none=True)
            (-gap).backward()
            optimizer.step()
            schedule.step()
            project_(critic)
            if step in logged:
                log(step)
    critic.eval()
    final = history[-1]
    return W1Estimate(
        estimate=final["estimate"], lipschitz=final["lipschitz"], raw=final["raw"], history=history,
        steps=steps, batch_size=batch_size, lr=float(lr), seed=seed, seconds=time.perf_counter() - start,
    )


def split(x: Tensor, fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A random ``(train, held_out)`` split of the samples of ``x``, ``round(fraction N)`` held out."""
    held = round(fraction * x.shape[0])
    order = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return x[order[held:]], x[order[:held]]


def estimate_w1_heldout(
    critic: nn.Module,
    x_p: Tensor,
    x_q: Tensor,
    steps: int = 1000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    *,
    held_out: float = 0.5,
    log_points: int = 20,
    label: str = "",
) -> W1Estimate:
    """:func:`estimate_w1` trained on a random part of each sample set and reported on the rest.

    ``held_out`` (in (0, 1)) of each set, drawn with ``seed``, is kept out of training. Since the
    trained critic does not depend on the held-out samples, its value there is an unbiased estimate of
    ``(E_P f - E_Q f) / L <= W1(P, Q)``: a lower bound on the POPULATION distance up to sampling
    error, free of the optimistic bias of a critic scored on the samples it was fitted to. Each part
    must keep at least 2 samples (``ValueError`` otherwise).
    """
    check_samples(x_p, x_q, minimum=4)
    if isinstance(held_out, bool) or not isinstance(held_out, (int, float)) or not 0 < held_out < 1:
        raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out!r}")
    generator = torch.Generator().manual_seed(seed)
    train_p, test_p = split(x_p, held_out, generator)
    train_q, test_q = split(x_q, held_out, generator)
    for name, part in (("x_p", train_p), ("x_p", test_p), ("x_q", train_q), ("x_q", test_q)):
        if part.shape[0] < 2:
            raise ValueError(f"held_out={held_out} leaves {part.shape[0]} sample(s) of {name} in one part; "
                             "at least 2 are needed in each")
    return estimate_w1(critic, train_p, train_q, steps, batch_size, lr, seed, eval_p=test_p, eval_q=test_q,
                       log_points=log_points, label=label)
