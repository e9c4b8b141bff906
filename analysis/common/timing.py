"""Wall-clock timing for the benchmarks: sides run interleaved, repeated until their spread is small.

A benchmark row compares functions ("sides") timed in the same process. One round calls every side
once, so a burst of load on the machine hits every side alike; the first round only warms up. Rounds
repeat until the relative spread of every side (median absolute deviation over median) is at most
``tolerance``, or until ``max_repeats`` rounds or ``max_seconds`` have passed, whichever comes first.

A row whose spread stays above the tolerance is **noisy**: its numbers are kept (JSON) but it is not
a result, and the tables say so. The 1-minute load average is read before and after each row; a row
measured while the load exceeded the number of cores is labelled **loaded** (its ratio may still be
fair, since both sides share the load, but its absolute times are not those of a quiet machine).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from orthoconv.io import load_average


@dataclass(frozen=True)
class RepeatPolicy:
    """When to stop repeating: after ``min_repeats`` rounds, once every side's spread is at most
    ``tolerance``; never more than ``max_repeats`` rounds or (past the minimum) ``max_seconds``. A sample
    lasts at least ``min_sample_seconds`` (fast functions are called several times per sample)."""

    min_repeats: int = 5
    max_repeats: int = 40
    max_seconds: float = 60.0
    tolerance: float = 0.05
    min_sample_seconds: float = 2e-3

    def __post_init__(self) -> None:
        if not 1 <= self.min_repeats <= self.max_repeats:
            raise ValueError(f"need 1 <= min_repeats <= max_repeats, got {self.min_repeats}, {self.max_repeats}")
        if not (self.max_seconds > 0 and self.tolerance > 0):
            raise ValueError(f"max_seconds and tolerance must be positive, got {self.max_seconds}, {self.tolerance}")


QUICK = RepeatPolicy(min_repeats=3, max_repeats=10, max_seconds=10.0)


@dataclass(frozen=True)
class Timing:
    """One side of a row: ``median`` seconds over ``repeats`` rounds, ``spread`` = MAD / median."""

    median: float
    spread: float
    repeats: int


def relative_spread(samples: Sequence[float]) -> float:
    """``median(|t - median(t)|) / median(t)``: robust to a single outlier, 0 for identical samples."""
    center = statistics.median(samples)
    if center <= 0:
        return 0.0 if all(s == center for s in samples) else float("inf")
    return statistics.median(abs(s - center) for s in samples) / center


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _calls_per_sample(seconds: float, min_sample_seconds: float) -> int:
    """How many calls make one sample last ``min_sample_seconds`` (timer resolution and scheduling jitter
    dominate a single call of a few microseconds), from the warm-up time of one call."""
    return max(1, min(1000, math.ceil(min_sample_seconds / max(seconds, 1e-9))))


def time_sides(fns: Sequence[Callable[[], object]], policy: RepeatPolicy, device: str = "cpu") -> list[Timing]:
    """Time every function of ``fns`` in interleaved rounds after one warm-up round (module docstring).

    A function faster than ``policy.min_sample_seconds`` is called several times per sample (the count
    fixed by the warm-up) and its time divided by the count. CUDA work is synchronized before and
    after each sample, so a time covers the kernels it launched.
    """
    samples: list[list[float]] = [[] for _ in fns]
    calls = [1] * len(fns)
    start = time.perf_counter()
    for round_ in range(policy.max_repeats + 1):
        for index, fn in enumerate(fns):
            _synchronize(device)
            tic = time.perf_counter()
            for _ in range(calls[index]):
                fn()
            _synchronize(device)
            elapsed = (time.perf_counter() - tic) / calls[index]
            if round_:
                samples[index].append(elapsed)
            else:
                calls[index] = _calls_per_sample(elapsed, policy.min_sample_seconds)
        if round_ >= policy.min_repeats:
            steady = all(relative_spread(s) <= policy.tolerance for s in samples)
            if steady or time.perf_counter() - start > policy.max_seconds:
                break
    return [Timing(statistics.median(s), relative_spread(s), len(s)) for s in samples]


def _busiest_load() -> float | None:
    load = load_average()
    return None if load is None else load[0]


def timed_row(
    fns: Sequence[Callable[[], object]], policy: RepeatPolicy, device: str = "cpu"
) -> tuple[list[Timing], dict]:
    """:func:`time_sides` plus what qualifies the row: ``{"spread", "repeats", "load", "flag"}``.

    ``spread`` is the largest side's, ``load`` the larger 1-minute load average of before and after,
    ``flag`` names what applies of ``noisy`` (spread above the tolerance: not a result) and ``loaded``
    (load above the number of cores), comma-separated, or is ``""``.
    """
    before = _busiest_load()
    timings = time_sides(fns, policy, device)
    after = _busiest_load()
    loads = [x for x in (before, after) if x is not None]
    load = max(loads) if loads else None
    spread = max(t.spread for t in timings)
    flags = [name for name, raised in (("noisy", spread > policy.tolerance),
                                       ("loaded", load is not None and load > (os.cpu_count() or 1))) if raised]
    flag = ", ".join(flags)
    return timings, {"spread": spread, "repeats": min(t.repeats for t in timings), "load": load, "flag": flag}


def verdict(met: bool, flag: str) -> str:
    """The ``met`` cell of a table: ``yes``/``no``, or ``?`` for a noisy row, whose numbers are no result."""
    if "noisy" in flag:
        return "?"
    return "yes" if met else "no"


def flag_summary(rows: Sequence[dict], tolerance: float) -> str:
    """One line counting the noisy and the loaded rows of a table."""
    noisy = sum("noisy" in row["flag"] for row in rows)
    loaded = sum("loaded" in row["flag"] for row in rows)
    text = (f"{noisy}/{len(rows)} rows noisy (a side's spread MAD/median > {tolerance:g}: no result, verdict '?'); "
            f"{loaded} loaded (1-min load average above the {os.cpu_count()} cores)")
    return text + ("; rerun them on a quiet machine" if noisy else "")


def add_policy_arguments(parser) -> None:
    """``--tolerance``, ``--max-repeats`` and ``--max-seconds`` (defaults: :class:`RepeatPolicy`; ``--quick``
    lowers the repeats and the time)."""
    from orthoconv.cli.args import positive_float, positive_int

    default = RepeatPolicy()
    parser.add_argument("--tolerance", type=positive_float, default=default.tolerance,
                        help="largest relative spread (MAD / median) of a side's repeats for a row to count as a "
                        f"result (default {default.tolerance})")
    parser.add_argument("--max-repeats", type=positive_int,
                        help=f"most timed rounds per row (default {default.max_repeats}; --quick: {QUICK.max_repeats})")
    parser.add_argument("--max-seconds", type=positive_float,
                        help=f"time per row after which repeating stops (default {default.max_seconds:g} s; "
                        f"--quick: {QUICK.max_seconds:g} s)")


def policy_from(args) -> RepeatPolicy:
    """The :class:`RepeatPolicy` of parsed :func:`add_policy_arguments` options (``args.quick`` picks the base)."""
    base = QUICK if args.quick else RepeatPolicy()
    max_repeats = args.max_repeats or base.max_repeats
    return replace(base, min_repeats=min(base.min_repeats, max_repeats), max_repeats=max_repeats,
                   max_seconds=args.max_seconds or base.max_seconds, tolerance=args.tolerance)
