"""The shared harness of the experiments: common flags, a parallel sweep, and the JSON/PNG outputs.

A sweep is a list of keyword dictionaries for one top-level task function. Each task is a pure
function of its arguments (seed included), so the list can go to any ``concurrent.futures``
executor: here worker processes (``spawn``, one torch thread each), or in-process with one worker.
Results come back in task order whatever the completion order.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

import torch

from orthoconv import io
from orthoconv.cli.args import Parser, positive_int
from orthoconv.cli.args import seed as seed_type
from orthoconv.io import progress, run_metadata
from orthoconv.io.figures import pyplot


def experiment_parser(name: str, description: str, prog: str | None = None) -> argparse.ArgumentParser:
    """``--seed``, ``--quick``, ``--out`` (default ``results/NAME``) and ``--workers``; errors are one line."""
    parser = Parser(prog=prog or f"python -m analysis.experiments.{name}", description=description)
    parser.add_argument("--seed", type=seed_type, default=0, help="base random seed (default 0)")
    parser.add_argument("--quick", action="store_true", help="a reduced run that finishes in seconds")
    parser.add_argument("--out", type=Path, default=Path("results") / name, help=f"output folder (default results/{name})")
    parser.add_argument(
        "--workers", type=positive_int, default=os.cpu_count() or 1,
        help="worker processes (default: all cores; 1 runs in-process)",
    )
    return parser


PARENT_POLL_SECONDS = 1.0


def _exit_with_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(parent: int) -> None:
    """One torch thread, and exit once the parent is gone (killed, say): an orphaned worker would go on
    training for hours. Runs checkpoint atomically, so nothing is lost beyond the current epoch."""
    torch.set_num_threads(1)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


@contextmanager
def worker_pool(workers: int) -> Iterator[Executor | None]:
    """A pool of ``workers`` spawned processes (one torch thread each), or ``None`` for ``workers == 1``.

    Open it once per experiment: starting a spawned worker imports torch (seconds). A worker exits on its own
    within a second or two of the parent process's death.
    """
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if workers == 1:
        yield None
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(os.getpid(),)) as pool:
        yield pool


def run_sweep(task: Callable[..., dict], jobs: Sequence[dict], pool: Executor | None, label: str) -> list[dict]:
    """``[task(**job) for job in jobs]`` on ``pool`` (in-process when ``None``), with a progress bar."""
    if pool is None:
        return [task(**job) for job in progress(jobs, label=label)]
    futures = {pool.submit(task, **job): index for index, job in enumerate(jobs)}
    results: list[dict | None] = [None] * len(jobs)
    for future in progress(as_completed(futures), total=len(jobs), label=label):
        results[futures[future]] = future.result()
    return results


def write_json(path: Path, data: dict, args: argparse.Namespace) -> Path:
    """``data`` with ``"run"``: every argument in ``args``, the orthoconv and torch versions, the device
    (``args.device``, else the CPU) and the load average (:func:`orthoconv.io.run_metadata`); written
    atomically, its folder created."""
    return io.write_json(path, {"run": run_metadata(args, getattr(args, "device", None)), **data})


def save_figure(path: Path, draw: Callable) -> str | None:
    """Call ``draw(pyplot)`` to build a figure and save it as ``path``; ``None`` when matplotlib is missing.

    Uses the non-interactive Agg backend. A missing matplotlib skips the PNG with a message instead of
    failing the experiment: the JSON and the table carry the same numbers.
    """
    plt = pyplot()
    if plt is None:
        print(f"matplotlib is not installed: skipped the figure {path}")
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = draw(plt)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return str(path)
