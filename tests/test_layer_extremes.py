"""Exact or an error, never silently wrong, at extreme parameters (faults a fresh-eyes review found: the
Cayley transform losing orthogonality at large weights, nan kernels from nan or overflowing parameters,
Björck on empty factors, fractional projector ranks). Reference: the dense matrix of each layer's forward."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.math.orthogonal import BjorckConvergenceError, bjorck_orthogonal, orthogonal

from dense_reference import forward_matrix

F64 = torch.float64
LIMIT = {torch.float64: 1e-12, torch.float32: 1e-5}


def deviation(layer, c_in, H, W, dtype):
    sigma = torch.linalg.svdvals(forward_matrix(layer, c_in, H, W, dtype).double())
    return float((sigma - 1).abs().max())


@settings(max_examples=12, deadline=None)
@given(channels=st.sampled_from([(3, 3), (5, 3), (3, 5), (4, 4)]), exponent=st.integers(0, 14),
       dtype=st.sampled_from([torch.float32, F64]), seed=st.integers(0, 50))
def test_cayley_is_orthogonal_or_refuses_at_every_weight_scale(channels, exponent, dtype, seed):
    """Odd channel counts put a zero eigenvalue in A at the real frequencies, where the solve loses
    eps ||A||: before the fix, float32 weights 1e6 times their initialization gave 1.7e-2, 1e8 gave 0.88."""
    torch.manual_seed(seed)
    c_in, c_out = channels
    layer = oc.CayleyConv(c_in, c_out, 3, input_size=(4, 4), dtype=dtype, bias=False)
    with torch.no_grad():
        layer.weight.mul_(10.0**exponent)
    try:
        dev = deviation(layer, c_in, 4, 4, dtype)
    except ValueError as err:
        assert "CayleyConv" in str(err)
        return
    assert dev < LIMIT[dtype]


def test_cayley_keeps_float64_orthogonal_far_beyond_its_initial_scale():
    torch.manual_seed(0)
    layer = oc.CayleyConv(3, 3, 3, input_size=(4, 4), dtype=F64, bias=False)
    with torch.no_grad():
        layer.weight.mul_(1e8)
    assert deviation(layer, 3, 4, 4, F64) < 1e-12


def nan_layers():
    return [
        ("OrthogonalLinear", lambda: oc.OrthogonalLinear(4, 4), "param", (2, 4)),
        ("BCOP", lambda: oc.BCOP(4, 4, 3), "h_param", (1, 4, 4, 4)),
        ("RKO", lambda: oc.RKO(4, 4, 3), "weight", (1, 4, 4, 4)),
        ("RKL2NE", lambda: oc.RKL2NE(4, 4, 3), "weight", (1, 4, 4, 4)),
        ("SOC", lambda: oc.SOC(4, 4, 3, max_norm=None), "weight", (1, 4, 4, 4)),
        ("OSSN", lambda: oc.OSSN(4, 4, 3, input_size=(4, 4)), "weight", (1, 4, 4, 4)),
        ("SVCM", lambda: oc.SVCM(4, 4, 3, input_size=(4, 4)), "weight", (1, 4, 4, 4)),
        ("CayleyConv", lambda: oc.CayleyConv(4, 4, 3, input_size=(4, 4)), "weight", (1, 4, 4, 4)),
    ]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("name, make, attr, shape", nan_layers(), ids=[n for n, *_ in nan_layers()])
def test_non_finite_parameters_are_an_error_naming_the_layer(name, make, attr, shape, bad):
    """Strict mode raises at the layer; by default the forward does not synchronize, its output is nan
    everywhere, and the next host read (raise_failed_checks) names the layer; kernel() called by the user
    raises at once."""
    layer = make()
    with torch.no_grad():
        getattr(layer, attr).view(-1)[0] = bad
    x = torch.randn(*shape)
    with pytest.raises(ValueError, match=name), oc.nn.strict_checks():
        layer(x)
    y = layer(x)
    assert not torch.isfinite(y).any()
    with pytest.raises(ValueError, match=name):
        oc.nn.raise_failed_checks()
    oc.nn.raise_failed_checks()  # read once: the failure is forgotten
    if name not in ("OSSN", "SVCM"):  # their kernel() is a rescaling of the parameter, nan where it is
        with pytest.raises(ValueError, match=f"{name}|kernel has non-finite entries"):
            layer.kernel()


def test_a_failed_check_poisons_the_network_and_the_training_loss_read_names_it():
    """The checks of a whole network defer to the loss read: no value from the faulty layer is finite."""
    torch.manual_seed(0)
    model = oc.networks.build("small", "bcop", 1, 8, 3)
    with torch.no_grad():
        model[1][1].pq_param.view(-1)[3] = math.inf
    loss = model(torch.randn(2, 1, 8, 8)).square().sum()
    loss.backward()
    assert not torch.isfinite(loss)
    with pytest.raises(ValueError, match="BCOP: the kernel has nan or inf"):
        oc.nn.raise_failed_checks()


def test_a_non_unitary_cayley_transform_is_poisoned_and_named():
    """The one check that is not a finiteness check (Cayley's unitarity) defers the same way."""
    torch.manual_seed(0)
    layer = oc.CayleyConv(3, 3, 3, input_size=(4, 4), bias=False)
    with torch.no_grad():
        layer.weight.mul_(1e12)
    y = layer(torch.randn(2, 3, 4, 4))
    assert not torch.isfinite(y).any()
    with pytest.raises(ValueError, match="CayleyConv: the Cayley transform is not unitary"):
        oc.nn.raise_failed_checks()
    with pytest.raises(ValueError, match="CayleyConv: the Cayley transform is not unitary"), oc.nn.strict_checks():
        layer(torch.randn(2, 3, 4, 4))


@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1.5e38), (F64, 8e307)])
def test_expm_is_orthonormal_with_finite_gradients_up_to_the_dtype_max(dtype, scale):
    """``P - P^T`` overflowed and the rotation angles became inf: a nan matrix from finite entries."""
    signs = torch.tensor([[1.0, -1.0, 1.0, -1.0]], dtype=F64)
    A = ((torch.rand(4, 4, generator=torch.Generator().manual_seed(0), dtype=F64) + 0.5) * signs * scale).to(dtype)
    A.requires_grad_()
    Q = orthogonal(A, "expm")
    gram = Q.detach().double().mT @ Q.detach().double()
    assert float((gram - torch.eye(4, dtype=F64)).abs().max()) < 10 * torch.finfo(dtype).eps * 4
    (grad,) = torch.autograd.grad((Q * torch.randn(4, 4, dtype=dtype)).sum(), A)
    assert bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("make, c_in", [
    (lambda: oc.BCOP(4, 4, 1, method="bjorck", dtype=F64), 4),
    (lambda: oc.StridedBCOP(2, 8, 2, method="bjorck", dtype=F64), 2),
    (lambda: oc.BCOP(1, 1, 3, method="bjorck", dtype=F64), 1),
    (lambda: oc.BCOP(4, 4, 3, projector_ranks=0, method="bjorck", dtype=F64), 4),
], ids=["k1", "strided-k2", "one-channel", "rank-0"])
def test_bjorck_handles_empty_factors(make, c_in):
    layer = make()
    assert deviation(layer, c_in, 4, 4, F64) < 1e-10


def test_bjorck_names_nan_and_zero_inputs():
    with pytest.raises(ValueError, match="nan or inf"):
        bjorck_orthogonal(torch.full((3, 2), math.nan))
    with pytest.raises(BjorckConvergenceError, match="zero matrix"):
        bjorck_orthogonal(torch.zeros(3, 2))


def test_fractional_projector_ranks_are_refused():
    with pytest.raises(ValueError, match="projector_ranks"):
        oc.BCOP(4, 4, 3, projector_ranks=((1.7, 1.2), (2.9, 3.5)))


@pytest.mark.parametrize("layer_dtype, x_dtype", [(torch.float32, F64), (F64, torch.float32)])
@pytest.mark.parametrize("make, shape", [(lambda d: oc.BCOP(4, 4, 3, dtype=d), (1, 4, 4, 4)),
                                         (lambda d: oc.OrthogonalLinear(4, 4, dtype=d), (2, 4))], ids=["BCOP", "linear"])
def test_float64_on_one_side_under_autocast_is_named(make, shape, layer_dtype, x_dtype):
    """autocast does not cast float64: torch failed inside the convolution with a message naming no layer."""
    layer = make(layer_dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(TypeError, match="autocast does not cast float64"):
        layer(torch.randn(*shape, dtype=x_dtype))


def test_a_failed_check_inside_torch_func_is_poisoned():
    """torch.func's transforms can neither read nor record a value: the output is non-finite, nothing raises."""
    layer = oc.BCOP(3, 3, 3)
    with torch.no_grad():
        layer.h_param[0, 0] = math.nan
    x = torch.randn(2, 3, 4, 4)
    y, tangent = torch.func.jvp(layer, (x,), (torch.ones_like(x),))
    assert not torch.isfinite(y).any() and not torch.isfinite(tangent).any()
