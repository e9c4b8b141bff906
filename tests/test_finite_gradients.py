"""Orthogonal maps and layers at degenerate parameters: exact forward, finite (and, where defined, exact) gradients.

Degenerate = zero, rank deficient (zero or repeated columns, rank one) and scaled by 1e-30 or 1e30, in
float32 and float64. References: torch's own QR autograd (a different derivation) and finite
differences where the map is differentiable; the nesting of QR (its first j columns depend only on the
first j columns of A) where it is not.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.math.orthogonal import BjorckConvergenceError, binary_scale, bjorck_orthogonal, orthogonal, qr_orthogonal

F64 = torch.float64
SCALES = [1e-30, 1e-8, 1.0, 1e8, 1e30]
KINDS = ["full", "zero", "zero_columns", "repeated_column", "rank_one"]


def degenerate(kind, n, r, seed, dtype, scale):
    """An ``(n, r)`` matrix of the given kind, times ``scale``."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, r, generator=g, dtype=F64)
    if kind == "zero":
        A.zero_()
    elif kind == "zero_columns":
        A[:, torch.randperm(r, generator=g)[: max(1, r // 2)]] = 0
    elif kind == "repeated_column" and r > 1:
        A[:, r - 1] = A[:, 0]
    elif kind == "rank_one":
        A = A[:, :1] @ torch.randn(1, r, generator=g, dtype=F64)
    return (A * scale).to(dtype)


def sigma_deviation(Q):
    return float((torch.linalg.svdvals(Q.detach().to(F64)) - 1).abs().max())


def grad_of(fn, A, seed=0):
    A = A.clone().requires_grad_()
    out = fn(A)
    G = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=F64).to(out)
    (grad,) = torch.autograd.grad((out * G).sum(), A)
    return out.detach(), grad


@given(
    n=st.integers(1, 7), data=st.data(), kind=st.sampled_from(KINDS), scale=st.sampled_from(SCALES),
    dtype=st.sampled_from([torch.float32, F64]), method=st.sampled_from(["qr", "expm"]), seed=st.integers(0, 2**16),
)
def test_exact_maps_stay_orthonormal_with_finite_gradients_everywhere(n, data, kind, scale, dtype, method, seed):
    r = data.draw(st.integers(1, n))
    A = degenerate(kind, n, r, seed, dtype, scale)
    Q, grad = grad_of(lambda a: orthogonal(a, method), A, seed)
    assert Q.dtype == dtype and Q.shape == A.shape
    assert sigma_deviation(Q) < (1e-12 if dtype == F64 else 1e-5)
    assert bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("method", ["qr", "expm"])
def test_degenerate_maps_on_the_device(device, method):
    """The same degenerate inputs through the device's own solvers (cuSOLVER on CUDA)."""
    for dtype in (torch.float32, F64):
        for kind in KINDS:
            for scale in (1e-30, 1.0, 1e30):
                A = degenerate(kind, 6, 4, 0, dtype, scale).to(device)
                Q, grad = grad_of(lambda a: orthogonal(a, method), A)
                assert Q.device.type == device and bool(torch.isfinite(grad).all())
                assert sigma_deviation(Q) < (1e-12 if dtype == F64 else 1e-5)


@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (2, 6, 2)])
def test_qr_gradient_is_torchs_qr_gradient_where_both_exist(shape):
    """At full rank the damped backward equals the autograd of ``torch.linalg.qr`` (another derivation)."""
    A = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=F64)

    def reference(a):
        Q, R = torch.linalg.qr(a)
        return Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)

    _, mine = grad_of(orthogonal, A)
    _, theirs = grad_of(reference, A)
    assert torch.allclose(mine, theirs, rtol=1e-12, atol=1e-13)
    assert torch.autograd.gradcheck(orthogonal, (A.clone().requires_grad_(),))


@given(n=st.integers(2, 7), data=st.data(), zeros=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_qr_gradient_at_zero_columns_is_the_gradient_of_the_leading_block(n, data, zeros, seed):
    """QR is nested: the first j columns of Q depend only on the first j columns of A. With the last
    columns zero, a loss on the leading columns has the gradient of the leading block's own (full-rank)
    map, and the zero columns get gradient 0 (the documented value where the direction is undefined)."""
    r = data.draw(st.integers(2, n))
    j = max(1, r - zeros)
    A = torch.randn(n, r, generator=torch.Generator().manual_seed(seed), dtype=F64)
    A[:, j:] = 0
    G = torch.randn(n, j, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    full = A.clone().requires_grad_()
    (orthogonal(full)[:, :j] * G).sum().backward()
    block = A[:, :j].clone().requires_grad_()
    (orthogonal(block) * G).sum().backward()
    assert torch.allclose(full.grad[:, :j], block.grad, rtol=1e-10, atol=1e-12)
    assert torch.equal(full.grad[:, j:], torch.zeros(n, r - j, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_qr_gradient_scales_exactly_with_a_power_of_two(dtype):
    """``Q(c A) = Q(A)``, so ``dL/dA`` at ``c A`` is ``dL/dA(A) / c``; for ``c = 2^100`` exactly (bitwise)."""
    A = degenerate("full", 6, 4, 3, dtype, 1.0)
    c = 2.0**100
    Q1, g1 = grad_of(orthogonal, A)
    Q2, g2 = grad_of(orthogonal, A * c)
    assert torch.equal(Q1, Q2)
    assert torch.equal(g2 * c, g1)
    assert float(binary_scale(A * c).squeeze()) == float(binary_scale(A).squeeze()) * c


def test_qr_gradient_at_zero_is_zero():
    _, grad = grad_of(orthogonal, torch.zeros(5, 3, dtype=F64))
    assert torch.equal(grad, torch.zeros(5, 3, dtype=F64))


@pytest.mark.parametrize("scale", [0.0, 1.0, 30.0])
def test_expm_gradient_matches_finite_differences(scale):
    """Daleckii-Krein divided differences: exact also at coinciding eigenvalues (``A = 0``)."""
    A = scale * torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    assert torch.autograd.gradcheck(lambda a: orthogonal(a, "expm"), (A.requires_grad_(),))


def test_expm_is_the_matrix_exponential_where_that_is_accurate():
    A = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.allclose(orthogonal(A, "expm"), torch.linalg.matrix_exp(A - A.T), atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_bjorck_works_at_any_magnitude_and_refuses_rank_deficiency(dtype, scale):
    A = degenerate("full", 6, 4, 0, dtype, scale)
    Q, grad = grad_of(bjorck_orthogonal, A)
    assert sigma_deviation(Q) < (1e-12 if dtype == F64 else 1e-5)
    assert bool(torch.isfinite(grad).all())
    with pytest.raises(BjorckConvergenceError, match="singular or too ill-conditioned"):
        bjorck_orthogonal(degenerate("repeated_column", 6, 4, 0, dtype, scale))


LAYERS = {
    "BCOP": lambda dt, method: oc.BCOP(3, 4, 3, method=method, dtype=dt),
    "RKO": lambda dt, method: oc.RKO(3, 4, 2, method=method, dtype=dt),
    "OrthogonalLinear": lambda dt, method: oc.OrthogonalLinear(5, 3, method=method, dtype=dt),
    "RKL2NE": lambda dt, method: oc.RKL2NE(3, 4, 3, dtype=dt),
    "OSSN": lambda dt, method: oc.OSSN(3, 4, 3, input_size=6, dtype=dt),
    "CayleyConv": lambda dt, method: oc.CayleyConv(3, 4, 3, input_size=6, dtype=dt),
    "SOC": lambda dt, method: oc.SOC(3, 4, 3, dtype=dt),
    "StridedBCOP": lambda dt, method: oc.StridedBCOP(1, 4, 3, 2, method=method, dtype=dt),
    "AOL": lambda dt, method: oc.AOL(3, 4, 3, dtype=dt),
    "CPL": lambda dt, method: oc.CPL(3, 3, 3, inner_channels=4, dtype=dt),
    "SLL": lambda dt, method: oc.SLL(3, 3, 3, padding_mode="zeros", dtype=dt),
    "Sandwich": lambda dt, method: oc.Sandwich(3, 4, 3, dtype=dt),
}


@given(
    name=st.sampled_from(sorted(LAYERS)), kind=st.sampled_from(["zero", "zero_column", "repeated_column"]),
    scale=st.sampled_from(SCALES), dtype=st.sampled_from([torch.float32, F64]), method=st.sampled_from(["qr", "expm"]),
    seed=st.integers(0, 2**16),
)
def test_layers_have_finite_gradients_at_degenerate_parameters(name, kind, scale, dtype, method, seed):
    torch.manual_seed(seed)
    layer = LAYERS[name](dtype, method)
    with torch.no_grad():
        for pname, p in layer.named_parameters():
            if pname.endswith("bias"):
                continue
            if kind == "zero":
                p.zero_()
            elif kind == "zero_column" and p.dim() >= 2:
                p[..., 0] = 0
            elif kind == "repeated_column" and p.dim() >= 2 and p.shape[-1] > 1:
                p[..., 1] = p[..., 0]
            p.mul_(scale)
    x = torch.randn(2, 5, dtype=dtype) if name == "OrthogonalLinear" else torch.randn(2, layer.in_channels, 6, 6,
                                                                                          dtype=dtype)
    y = layer(x)
    y.square().sum().backward()
    assert bool(torch.isfinite(y).all())
    for pname, p in layer.named_parameters():
        assert bool(torch.isfinite(p.grad).all()), pname
    if name in ("BCOP", "StridedBCOP"):
        size = (3, 3)
        sigma = oc.conv_singular_values(layer.kernel().detach().to(F64), size)
        assert float((sigma - 1).abs().max()) < (1e-12 if dtype == F64 else 1e-5)


def test_the_issue_example_bcop_with_zeroed_parameters():
    """Issue 10: zeroing ``pq_param`` (or ``h_param``, or one column) gave 32/32 (16/16, 16/32) nan gradients."""
    for zero in ("pq_param", "h_param", "column"):
        layer = oc.BCOP(4, 4, 3, dtype=F64)
        with torch.no_grad():
            if zero == "column":
                layer.pq_param[..., 0] = 0
            else:
                getattr(layer, zero).zero_()
        layer(torch.randn(1, 4, 6, 6, dtype=F64)).square().sum().backward()
        assert bool(torch.isfinite(layer.h_param.grad).all()) and bool(torch.isfinite(layer.pq_param.grad).all())
        sigma = oc.conv_singular_values(layer.kernel().detach(), (6, 6))
        assert np.abs(sigma.numpy() - 1).max() < 1e-12


@pytest.mark.parametrize("n", [32, 64])
def test_qr_gradient_keeps_float32_accuracy_on_well_conditioned_matrices(n):
    """Away from singular matrices the backward is a plain triangular solve: a float32 gradient is within
    float32 rounding (times the condition number) of the float64 one. Going through ``R^T R`` everywhere
    squared the condition number: 5.6e-5 to 8.4e-5 relative error on these draws."""
    g = torch.Generator().manual_seed(n)
    A, G = torch.randn(2, n, n, generator=g, dtype=torch.float64)
    reference, = torch.autograd.grad((qr_orthogonal(A.requires_grad_()) * G).sum(), A)
    A32 = A.detach().float().requires_grad_()
    grad, = torch.autograd.grad((qr_orthogonal(A32) * G.float()).sum(), A32)
    assert float((grad.double() - reference).abs().max() / reference.abs().max()) < 1.5e-5
