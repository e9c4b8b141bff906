"""LOT (Xu et al. 2022) and BRO (Lai et al. 2025), built exactly: every singular value of the layer's own
forward is 1 to rounding on every image size (odd and even), after optimizer steps and at degenerate
parameters, with finite gradients; the polar factor and the range projector against their definitions.

References: the dense matrix of the layer's forward (tests/dense_reference.py), its float64 SVD; the
polar factor ``A (A^H A)^(-1/2)`` by an eigendecomposition, the projector ``A (A^H A)^(-1) A^H`` by a
solve; finite differences (gradcheck)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.math.polar import polar_factor, range_projector
from orthoconv.verify import check_model

from dense_reference import forward_matrix, singular_values, small

F64 = torch.float64
CLASSES = {"LOT": oc.LOT, "BRO": oc.BRO}
TOL = {F64: 1e-12, torch.float32: 1e-5}


def trained(cls, c_in, c_out, k, dtype, seed, steps=3, **options):
    """A layer with random parameters after ``steps`` Adam steps on a random regression target."""
    torch.manual_seed(seed)
    layer = cls(c_in, c_out, k, dtype=dtype, **options)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    x = torch.randn(4, c_in, 6, 5, dtype=dtype)
    target = torch.randn(4, c_out, 6, 5, dtype=dtype)
    for _ in range(steps):
        optimizer.zero_grad()
        (layer(x) - target).square().sum().backward()
        optimizer.step()
    return layer


def deviation(layer, c_in, H, W, dtype):
    sigma = singular_values(forward_matrix(layer, c_in, H, W, dtype))
    return float(abs(sigma - 1).max()), len(sigma)


@small
@given(name=st.sampled_from(sorted(CLASSES)), c_in=st.integers(1, 5), c_out=st.integers(1, 5), k=st.integers(1, 4),
       H=st.integers(1, 7), W=st.integers(1, 7), dtype=st.sampled_from([F64, torch.float32]),
       seed=st.integers(0, 2**16))
def test_every_singular_value_of_the_forward_is_one_on_every_size(name, c_in, c_out, k, H, W, dtype, seed):
    layer = trained(CLASSES[name], c_in, c_out, k, dtype, seed)
    worst, count = deviation(layer, c_in, H, W, dtype)
    assert count == min(c_in, c_out) * H * W
    assert worst < TOL[dtype]


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_one_layer_is_orthogonal_on_odd_and_even_sizes_alike(name):
    """The FFT size follows the input: the same parameters on 4x4, 5x5, 6x3, 7x8, 1x1 images."""
    layer = trained(CLASSES[name], 3, 3, 3, F64, seed=1)
    for H, W in [(4, 4), (5, 5), (6, 3), (7, 8), (1, 1), (2, 9)]:
        assert deviation(layer, 3, H, W, F64)[0] < 1e-12


def degenerate(layer, kind):
    with torch.no_grad():
        w = layer.weight
        if kind == "zero":
            w.zero_()
        elif kind == "rank_one":  # every tap the same rank-one matrix: Vhat(w) rank <= 1 at every frequency
            w.copy_(torch.randn(w.shape[0], 1, 1, 1, dtype=w.dtype) * torch.randn(1, w.shape[1], 1, 1, dtype=w.dtype))
        elif kind == "repeated":  # all taps equal: Vhat vanishes at every frequency but 0
            w.copy_(torch.randn(w.shape[0], w.shape[1], 1, 1, dtype=w.dtype).expand_as(w))
        elif kind == "huge":
            w.mul_(1e300 if w.dtype == F64 else 1e37)
        elif kind == "tiny":
            w.mul_(1e-300 if w.dtype == F64 else 1e-37)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("kind", ["zero", "rank_one", "repeated", "huge", "tiny"])
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_degenerate_parameters_stay_orthogonal_with_finite_gradients(name, kind, dtype):
    torch.manual_seed(0)
    layer = CLASSES[name](4, 4, 3, dtype=dtype)
    degenerate(layer, kind)
    for H, W in [(4, 4), (5, 3)]:
        x = torch.randn(2, 4, H, W, dtype=dtype)
        layer(x).square().sum().backward()
        assert all(bool(torch.isfinite(p.grad).all()) for p in layer.parameters())
        layer.zero_grad()
        assert deviation(layer, 4, H, W, dtype)[0] < TOL[dtype]


@given(n=st.integers(1, 6), batch=st.integers(1, 3), complex_=st.booleans(), seed=st.integers(0, 2**16))
def test_polar_factor_is_the_definition_and_its_gradient_is_exact(n, batch, complex_, seed):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.complex128 if complex_ else F64
    A = torch.randn(batch, n, n, generator=g, dtype=dtype)
    gram = A.mH @ A
    evals, evecs = torch.linalg.eigh(gram)
    reference = A @ (evecs * evals.rsqrt().unsqueeze(-2).to(dtype)) @ evecs.mH
    assert torch.allclose(polar_factor(A), reference, atol=1e-8)
    assert torch.autograd.gradcheck(polar_factor, (A.clone().requires_grad_(),))


@given(n=st.integers(1, 6), data=st.data(), complex_=st.booleans(), seed=st.integers(0, 2**16))
def test_range_projector_is_the_definition_and_its_gradient_is_exact(n, data, complex_, seed):
    r = data.draw(st.integers(0, n))
    g = torch.Generator().manual_seed(seed)
    dtype = torch.complex128 if complex_ else F64
    A = torch.randn(2, n, r, generator=g, dtype=dtype)
    P = range_projector(A)
    reference = A @ torch.linalg.solve(A.mH @ A, A.mH) if r else torch.zeros(2, n, n, dtype=dtype)
    assert torch.allclose(P, reference, atol=1e-9)
    assert torch.allclose(P @ P, P, atol=1e-12) and torch.allclose(P, P.mH, atol=1e-12)
    if r:
        assert torch.autograd.gradcheck(range_projector, (A.clone().requires_grad_(),))


def test_bro_is_a_reflector_of_the_given_rank():
    """``B = I - 2 P``: symmetric with ``B^2 = I`` and eigenvalue -1 with multiplicity ``r`` per frequency."""
    layer = oc.BRO(6, 6, 3, rank=2, dtype=F64)
    B = layer.transfer((5, 4))
    eye = torch.eye(6, dtype=B.dtype)
    assert torch.allclose(B @ B, eye.expand_as(B), atol=1e-12) and torch.allclose(B, B.mH, atol=1e-12)
    assert torch.allclose(torch.diagonal(B, dim1=-2, dim2=-1).sum(-1).real, torch.full(B.shape[:2], 6.0 - 4.0,
                                                                                     dtype=F64), atol=1e-12)
    assert torch.allclose(oc.BRO(3, 3, 3, rank=0, dtype=F64).transfer((4, 4)), torch.eye(3, dtype=B.dtype).expand(
        4, 3, 3, 3))
    assert oc.BRO(5, 3, 3).rank == 2 and oc.BRO(5, 3, 3).weight.shape == (5, 2, 3, 3)


def test_lot_is_the_polar_factor_of_the_kernel_transfer():
    """On an image where the parameter's taps do not fold, ``T(w)`` is the polar factor of ``Vhat(w)``."""
    layer = oc.LOT(3, 3, 3, dtype=F64)
    Vhat = oc.spectral.frequency_response(layer.weight.detach(), (6, 6))
    assert torch.allclose(layer.transfer((6, 6)), polar_factor(Vhat), atol=1e-12)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_check_model_certifies_the_layer_from_its_own_operator(name):
    torch.manual_seed(0)
    layer = trained(CLASSES[name], 4, 6, 3, F64, seed=3)
    x = torch.randn(2, 4, 7, 6, dtype=F64)
    report = check_model(torch.nn.Sequential(layer), x)
    truth = singular_values(forward_matrix(layer, 4, 7, 6)).max()
    assert truth <= report.lipschitz_upper * (1 + 1e-12) and report.lipschitz_upper <= 1 + 1e-12  # forward rounding
    assert layer.lipschitz_bound((7, 6)) == pytest.approx(1.0, abs=1e-12)
    float32 = CLASSES[name](16, 16, 3)
    assert check_model(torch.nn.Sequential(float32), torch.randn(1, 16, 12, 12)).lipschitz_upper <= 1 + 1e-6


def test_kernel_is_the_operator_on_its_size_and_sizes_are_required():
    layer = oc.BRO(3, 2, 3, dtype=F64)
    kernel = layer.kernel((5, 4))
    assert kernel.shape == (2, 3, 5, 4)
    dense = oc.spectral.dense_operator(kernel.detach(), (5, 4))
    assert torch.allclose(dense, forward_matrix(layer, 3, 5, 4), atol=1e-12)
    with pytest.raises(ValueError, match="pass input_size"):
        layer.kernel()
    with pytest.raises(ValueError, match="pass input_size"):
        layer.lipschitz_bound()


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="rank must be an int in \\[0, 4\\]"):
        oc.BRO(4, 3, 3, rank=5)
    with pytest.raises(ValueError, match="padding_mode"):
        oc.LOT(3, 3, 3, padding_mode="zeros")
    with pytest.raises(ValueError, match="stride 1 only"):
        oc.BRO(3, 3, 3, 2)
    layer = oc.LOT(2, 2, 3)
    with torch.no_grad():
        layer.weight[0, 0, 0, 0] = math.nan
    y = layer(torch.randn(1, 2, 4, 4))  # inside a forward: poisoned, the named error at the next read
    assert not torch.isfinite(y).any()
    with pytest.raises(ValueError, match="LOT: the parameter has nan"):
        oc.nn.raise_failed_checks()
    with pytest.raises(ValueError, match="LOT: the parameter has nan"), oc.nn.strict_checks():
        layer(torch.randn(1, 2, 4, 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_orthoconv_verify_reads_their_checkpoints(tmp_path, capsys, dtype):
    """The CLI rebuilds each layer from its saved config and checks it on the given size from its own numbers."""
    from test_cli import verify_json

    torch.manual_seed(0)
    model = torch.nn.Sequential(oc.LOT(3, 5, 3), oc.BRO(5, 4, 2, rank=3), oc.BCOPTranspose(4, 2, 3, 2)).to(dtype)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    rows, _, _ = verify_json(capsys, tmp_path / "model.pt", "--input-size", 7, 6, status=0)
    assert [row["type"] for row in rows.values()] == ["LOT", "BRO", "BCOPTranspose"]
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    for (name, row), c_in in zip(rows.items(), (3, 5, 4)):
        layer = model.get_submodule(name).double() if dtype == torch.float32 else None
        assert row["verdict"] in ("orthogonal", "isometry", "co-isometry") and row["max_deviation"] < tol
        if layer is not None:  # the float32 layer's forward, evaluated in float64
            sigma = torch.linalg.svdvals(forward_matrix(layer, c_in, 7, 6))
            assert row["sigma_max"] == pytest.approx(float(sigma.max()), abs=2e-6)
