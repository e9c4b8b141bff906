"""On CUDA, a training step of every layer's network without a host synchronization, and captured whole: under
``torch.cuda.set_sync_debug_mode("error")`` (any synchronizing CUDA call raises), under
``torch.compile(mode="reduce-overhead")`` (CUDA graphs) and under ``torch.cuda.graph`` (a captured step replayed
equals eager steps). Skipped without a GPU; ``.ci/device`` runs them (``-m cuda``). The CPU counterpart, that the
same forward and backward dispatch no synchronizing operation, is tests/test_dispatch_counts.py."""

import copy
import os

import pytest
import torch
import torch.nn.functional as F

import orthoconv as oc
from orthoconv.networks import CONV_LAYERS

pytestmark = pytest.mark.cuda
LAYERS = [layer for layer in CONV_LAYERS if layer != "conv"]


@pytest.fixture(autouse=True)
def cuda_only(monkeypatch):
    if not torch.cuda.is_available():
        if os.environ.get("ORTHOCONV_REQUIRE_CUDA"):
            pytest.fail("ORTHOCONV_REQUIRE_CUDA is set but CUDA is not available")
        pytest.skip("CUDA is not available on this machine")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # float32 tolerances need full float32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def network(arch, layer, seed=0):
    torch.manual_seed(seed)
    return oc.networks.build(arch, layer, 3, 32, 10).cuda()


def batch(seed=1, size=16):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.rand(size, 3, 32, 32, device="cuda", generator=g), torch.randint(0, 10, (size,), device="cuda",
                                                                                generator=g)


def train_step(model, optimizer, x, y):
    optimizer.zero_grad(set_to_none=False)
    loss = F.multi_margin_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


@pytest.mark.parametrize("arch", ["small", "large"])
@pytest.mark.parametrize("layer", LAYERS + ["conv"])
def test_a_training_step_never_synchronizes(arch, layer):
    model = network(arch, layer)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = batch()
    train_step(model, optimizer, x, y)  # first step: lazy initializations (cuBLAS, cuSOLVER handles, flags)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = train_step(model, optimizer, x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss)
    oc.nn.raise_failed_checks()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["small", "large"])
@pytest.mark.parametrize("layer", LAYERS)
def test_reduce_overhead_compile_matches_eager(arch, layer):
    """CUDA graphs through inductor (``mode="reduce-overhead"``): forward and backward equal eager's."""
    model = network(arch, layer).eval()  # eval: OSSN's training noise is drawn by another generator in inductor
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, mode="reduce-overhead")
    x, _ = batch()
    for _ in range(3):  # warm-up, record, replay
        out = compiled(x)
        out.square().sum().backward()
    expected = eager(x)
    expected.square().sum().backward()
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-5)
    for p, q in zip(model.parameters(), eager.parameters()):
        assert torch.allclose(p.grad / 3, q.grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("arch", ["small", "large"])
@pytest.mark.parametrize("layer", LAYERS)
def test_a_captured_training_step_replays_like_eager_steps(arch, layer):
    """``torch.cuda.graph`` captures forward, backward and the optimizer's update (no synchronization may happen
    inside a capture); two replays equal two eager steps from the same weights."""
    model = network(arch, layer).eval()
    eager = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    eager_optimizer = torch.optim.SGD(eager.parameters(), lr=1e-2)
    x, y = batch()
    static_x, static_y = x.clone(), y.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graph's recipe asks
        for _ in range(2):
            train_step(model, optimizer, static_x, static_y)
            train_step(eager, eager_optimizer, x, y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = train_step(model, optimizer, static_x, static_y)
    for _ in range(2):
        graph.replay()
        expected = train_step(eager, eager_optimizer, x, y)
    torch.cuda.synchronize()
    assert torch.allclose(static_loss, expected, rtol=1e-4, atol=1e-6)
    for p, q in zip(model.parameters(), eager.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6)
    oc.nn.raise_failed_checks()
