"""Every layer on the meta device, under torch.export and under torch.compile(fullgraph=True), in train
and eval mode, with outputs (and gradients) equal to eager.

The default run traces every layer with dynamo (``backend="eager"``: a graph break fails ``fullgraph``)
and exports it; generating code with inductor takes minutes on a small CPU, so those runs are
``@pytest.mark.slow`` (``pytest -m slow tests/test_compile.py``).
"""

import copy

import pytest
import torch

import orthoconv

from layer_zoo import LAYERS, PARAMETERLESS, build, example_input

ALL = sorted({**LAYERS, **PARAMETERLESS})
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Layers share ``forward`` code objects: a reset keeps dynamo's per-code recompile limit out of the way."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def assert_close(actual, expected, dtype):
    tol = TOLERANCE[dtype]
    assert actual.dtype == expected.dtype
    assert torch.allclose(actual, expected, rtol=tol, atol=tol * max(1.0, float(expected.detach().abs().max())))


def compare_with_eager(name, run, train, dtype=torch.float32, backward=True, device="cpu"):
    """``run(layer, x)`` on one layer against eager on an identical copy: outputs, gradients, buffers.
    Both start from the same RNG state (OSSN's training forward draws noise)."""
    layer = build(name, dtype=dtype, device=device).train(train)
    eager = copy.deepcopy(layer)
    x = example_input(name, dtype=dtype, device=device)
    torch.manual_seed(0)
    y = run(layer, x)
    torch.manual_seed(0)
    expected = eager(x)
    assert_close(y, expected, dtype)
    for buffer, other in zip(layer.buffers(), eager.buffers()):
        assert_close(buffer, other, dtype)
    if backward and any(True for _ in layer.parameters()):
        y.square().sum().backward()
        expected.square().sum().backward()
        for p, q in zip(layer.parameters(), eager.parameters()):
            assert_close(p.grad, q.grad, dtype)


def run_inductor(layer, x):
    """Inductor with eager's random numbers (its own generator draws other ones by default)."""
    with torch._inductor.config.patch(fallback_random=True):
        return torch.compile(layer, fullgraph=True)(x)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ALL)
def test_meta_device_forward_gives_the_shape(name, train):
    layer = build(name, device="meta").train(train)
    y = layer(example_input(name, device="meta"))
    expected = build(name).train(train)(example_input(name))
    assert y.device.type == "meta" and y.shape == expected.shape and y.dtype == expected.dtype


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ALL)
def test_export_matches_eager(name, train):
    def run(layer, x):
        return torch.export.export(layer, (x,)).module()(x)

    compare_with_eager(name, run, train, backward=False)


@pytest.mark.parametrize("name", ALL + ["OSSN-eval"])
def test_fullgraph_capture_matches_eager(name):
    """dynamo traces the whole forward (no graph break) in train mode, and OSSN (the one layer whose
    forward differs) also in eval mode; forward and backward equal eager."""
    name, _, mode = name.partition("-")

    def run(layer, x):
        return torch.compile(layer, fullgraph=True, backend="eager")(x)

    compare_with_eager(name, run, train=mode != "eval")


@pytest.mark.slow
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ALL)
def test_inductor_matches_eager(name, train):
    compare_with_eager(name, run_inductor, train)


@pytest.mark.slow
def test_inductor_float64_bcop_matches_eager():
    compare_with_eager("BCOP", run_inductor, True, dtype=torch.float64)


@pytest.mark.slow
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
@pytest.mark.parametrize("name, train", [("BCOP", True), ("BCOP", False), ("CayleyConv", True), ("OSSN", True)])
def test_inductor_on_cuda_matches_eager(name, train, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # float32 tolerances need full float32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)

    compare_with_eager(name, run_inductor, train, device="cuda")


def test_non_finite_parameters_fail_in_a_compiled_graph_too():
    """The strict eager ``ValueError`` becomes ``torch._assert_async`` inside the graph on the CPU: still an
    error, no break; and the compiled output is poisoned to nan like the eager one (what CUDA gets)."""
    layer = build("BCOP")
    with torch.no_grad():
        layer.h_param[0, 0] = float("nan")
    with pytest.raises(ValueError, match="nan or inf"), orthoconv.nn.strict_checks():
        layer(example_input("BCOP"))
    assert not torch.isfinite(layer(example_input("BCOP"))).any()
    with pytest.raises(RuntimeError, match="nan or inf"):
        torch.compile(layer, fullgraph=True, backend="eager")(example_input("BCOP"))
