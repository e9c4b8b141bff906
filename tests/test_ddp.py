"""Data parallelism: ``torchrun --nproc_per_node 2`` on the CPU (gloo) ends with identical replicas
that match one process trained on the same global batches."""

import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.networks import build
from orthoconv.training import TrainConfig, train
from orthoconv.training.loop import local_batch

from test_data import write_mnist

SCRIPT = """
import os, sys, torch
from orthoconv.training import TrainConfig, train
from orthoconv.training.loop import local_batch
config = TrainConfig(**{config!r})
rank = os.environ.get("RANK", "0")
def keep(epoch, model):
    if epoch == config.epochs:
        torch.save(model.state_dict(), os.path.join(config.out, f"rank{{rank}}.pt"))
train(config, on_epoch=keep, log=lambda _: None)
"""


def config_for(folder, out) -> dict:
    # 50 training images in global batches of 7: the last batch has one image, so one process gets none
    return dict(dataset="mnist", data_dir=str(folder), val_fraction=0.2, arch="small", layer="bcop", epochs=2,
                batch_size=7, lr=1e-3, out=str(out))


@given(size=st.integers(1, 20), world=st.integers(1, 5), seed=st.integers(0, 99))
def test_local_batches_average_to_the_global_mean(size, world, seed):
    """The average over processes of each one's weighted loss sum is the global mean, for every batch
    size, including last batches with fewer examples than processes."""
    losses = torch.rand(size, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    batch = torch.arange(size)
    parts = [local_batch(batch, rank, world) for rank in range(world)]
    assert sorted(i for local, w in parts if w for i in local.tolist()) == list(range(size))
    average = sum(w * float(losses[local].sum()) for local, w in parts) / world
    assert average == pytest.approx(float(losses.mean()), rel=1e-12)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_two_processes_end_identical_and_match_one(tmp_path):
    write_mnist(tmp_path, n_train=60, n_test=10)
    single = config_for(tmp_path, tmp_path / "single")
    kept = {}
    train(TrainConfig(**single), log=lambda _: None,
          on_epoch=lambda epoch, model: kept.update(model.state_dict()) if epoch == 2 else None)
    parallel = config_for(tmp_path, tmp_path / "parallel")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(config=parallel))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0 = torch.load(tmp_path / "parallel" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "parallel" / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for name, value in rank0.items():
        if torch.is_tensor(value):
            assert torch.equal(value, rank1[name]), name
    # The same function as one process. Raw parameters are not compared: QR is flat along A -> A R, and
    # Adam turns the rounding noise of those exactly-zero gradient components into full-size steps; it
    # also amplifies rounding differences elsewhere, hence 1e-4 on logits of order 1. The weighting
    # itself is exact: test_local_batches_average_to_the_global_mean.
    net_single, net_parallel = (build(**TrainConfig_network(single)) for _ in range(2))
    net_single.load_state_dict(kept)
    net_parallel.load_state_dict(rank0)
    images = torch.rand(16, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = net_single.double().eval()(images), net_parallel.double().eval()(images)
        assert torch.allclose(a, b, rtol=0, atol=1e-4)  # measured 1.0e-5 after 16 Adam steps
        for (name, m), m2 in zip(net_single.named_modules(), net_parallel.modules()):
            if isinstance(m, oc.BCOP):
                assert torch.allclose(m.kernel(), m2.kernel(), atol=1e-4), name
    initial = build(**TrainConfig_network(single)).double().eval()
    assert not torch.allclose(initial(images), a, atol=1e-3)  # it trained
    single_history = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)["training"]["history"]
    parallel_history = torch.load(tmp_path / "parallel" / "checkpoint.pt", weights_only=True)["training"]["history"]
    for h1, h2 in zip(single_history, parallel_history):
        assert h1["train_loss"] == pytest.approx(h2["train_loss"], rel=1e-5)
        assert h1["train_acc"] == h2["train_acc"]


def TrainConfig_network(values: dict) -> dict:
    """The network ``orthoconv train`` builds for these settings (MNIST files written by the test)."""
    from orthoconv.data import load
    from orthoconv.training import build_model

    config = TrainConfig(**values)
    data = load(config.dataset, config.data_dir, val_fraction=config.val_fraction)
    return build_model(config, data).spec
