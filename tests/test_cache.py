"""No stale kernels: every way of changing a parameter is seen; reuse only inside ``orthoconv.nn.cached()``.

Reference: an independent layer rebuilt from ``config()`` and loaded from the changed ``state_dict``.
"""

import pytest
import torch
from torch import nn

import orthoconv as oc

from layer_zoo import LAYERS, build, example_input, kernel_of, rebuilt

F64 = torch.float64


def first_weight(layer):
    """``(owner module, attribute name, parameter)`` of the first non-bias parameter."""
    name, param = next((n, p) for n, p in layer.named_parameters() if not n.endswith("bias"))
    owner = layer.get_submodule(name.rpartition(".")[0]) if "." in name else layer
    return owner, name.rpartition(".")[2], param


def noise_like(p, seed=5):
    return torch.randn(p.shape, generator=torch.Generator().manual_seed(seed), dtype=p.dtype).to(p.device)


def data_write(layer):
    first_weight(layer)[2].data[:1].mul_(-1.5)  # one slice: BRO's projector is invariant under a global scale


def data_copy(layer):
    p = first_weight(layer)[2]
    p.data.copy_(noise_like(p))


def no_grad_copy(layer):
    p = first_weight(layer)[2]
    with torch.no_grad():
        p.copy_(noise_like(p))


def load_state_dict(layer):
    layer.load_state_dict(rebuilt_with_seed(layer, 7).state_dict())


def rebuilt_with_seed(layer, seed):
    torch.manual_seed(seed)
    first = next(layer.parameters())
    return oc.nn.from_config(layer.config(), device=first.device, dtype=first.dtype)


def reassign(layer):
    owner, name, p = first_weight(layer)
    setattr(owner, name, nn.Parameter(noise_like(p)))


def vector_to_parameters(layer):
    vector = nn.utils.parameters_to_vector(layer.parameters())
    nn.utils.vector_to_parameters(noise_like(vector), layer.parameters())


def optimizer_step(layer):
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer.train()
    x = example_input(layer_name(layer), dtype=next(layer.parameters()).dtype)
    layer(x).square().sum().backward()
    optimizer.step()
    layer.eval()


def to_other_dtype(layer):
    layer.to(torch.float32)


def layer_name(layer):
    return type(layer).__name__


CHANGES = [data_write, data_copy, no_grad_copy, load_state_dict, reassign, vector_to_parameters, optimizer_step,
           to_other_dtype]


@pytest.mark.parametrize("change", CHANGES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_eval_forward_sees_every_parameter_change(name, change):
    layer = build(name, dtype=F64).eval()
    x = example_input(name, dtype=F64)
    with torch.no_grad():
        before = layer(x)
        layer(x)
    change(layer)
    dtype = next(layer.parameters()).dtype
    x = x.to(dtype)
    with torch.no_grad():
        after = layer(x)
        expected = rebuilt(layer).eval()(x)
    assert after.dtype == dtype
    assert torch.equal(after, expected)
    if change is not to_other_dtype:
        assert not torch.allclose(after, before)


def test_the_issue_example():
    """Issue 10: after ``h_param.data.mul_(-1)`` the eval output stayed the old one (a fresh layer differs by 6.6)."""
    layer = oc.BCOP(4, 4, 3, dtype=F64).eval()
    x = torch.randn(1, 4, 6, 6, dtype=F64)
    with torch.no_grad():
        y0 = layer(x)
        layer.h_param.data.mul_(-1.0)
        y1 = layer(x)
        fresh = rebuilt(layer).eval()(x)
    assert torch.equal(y1, fresh)
    assert float((y1 - y0).abs().max()) > 0.1


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_cached_builds_once_and_only_inside_the_block(name):
    layer = build(name, dtype=F64).eval()
    x = example_input(name, dtype=F64)
    with torch.no_grad():
        with oc.nn.cached():
            k1 = kernel_of(layer, name)
            built = k1.clone()
            assert kernel_of(layer, name) is k1
            y1 = layer(x)
            data_copy(layer)  # inside the block the kernel stays as built (documented, as parametrize.cached)
            assert kernel_of(layer, name) is k1
            if name != "SVCM":  # SVCM's kernel IS its parameter
                assert torch.equal(layer(x), y1)
        assert not torch.equal(kernel_of(layer, name), built)
        assert torch.equal(layer(x), rebuilt(layer).eval()(x))


def test_cached_nests_and_counts_the_builds(monkeypatch):
    calls = []
    real = oc.nn.bcop.bcop_kernel
    monkeypatch.setattr(oc.nn.bcop, "bcop_kernel", lambda *args: calls.append(1) or real(*args))
    layer, other = oc.BCOP(3, 3, 2), oc.BCOP(3, 3, 2)
    x = torch.randn(1, 3, 4, 4)
    with oc.nn.cached():
        layer(x)
        with oc.nn.cached():
            layer(x)
            other(x)
        layer(x)
        other(x)
    assert len(calls) == 2
    layer(x)
    layer(x)
    assert len(calls) == 4


def test_cached_kernel_carries_the_gradient_of_every_use():
    """Built with grad inside ``cached()``, one kernel serves two forwards and one backward (weight sharing)."""
    layer = oc.BCOP(3, 3, 3, dtype=F64)
    x = torch.randn(2, 3, 5, 5, dtype=F64)
    with oc.nn.cached():
        (layer(layer(x)).sum()).backward()
    shared = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    (layer(layer(x)).sum()).backward()
    for a, b in zip(shared, layer.parameters()):
        assert torch.allclose(a, b.grad, rtol=1e-12, atol=1e-14)
