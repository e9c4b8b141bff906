"""Orthogonal upsampling (BCOPTranspose): an isometry whenever ``c_out s^2 >= c_in``, measured from the dense
matrix of the layer's own forward (float64 SVD and ``A^T A = I``), on odd and even sizes, after optimizer
steps and at degenerate parameters; the other case is a co-isometry and says so."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.verify import check_model

from dense_reference import forward_matrix, small

F64 = torch.float64


def trained(c_in, c_out, k, s, seed, steps=3):
    torch.manual_seed(seed)
    layer = oc.BCOPTranspose(c_in, c_out, k, s, dtype=F64)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    x = torch.randn(2, c_in, 3, 2, dtype=F64)
    target = torch.randn(2, c_out, 3 * s, 2 * s, dtype=F64)
    for _ in range(steps):
        optimizer.zero_grad()
        (layer(x) - target).square().sum().backward()
        optimizer.step()
    return layer


@small
@given(c_in=st.integers(1, 8), c_out=st.integers(1, 3), k=st.integers(1, 5), s=st.integers(1, 3), H=st.integers(1, 4),
       W=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_upsampling_is_an_isometry_or_says_it_is_a_co_isometry(c_in, c_out, k, s, H, W, seed):
    layer = trained(c_in, c_out, k, s, seed)
    A = forward_matrix(layer, c_in, H, W)  # (c_out s^2 H W) x (c_in H W)
    assert A.shape == (c_out * s * s * H * W, c_in * H * W)
    sigma = torch.linalg.svdvals(A)
    assert float((sigma - 1).abs().max()) < 1e-12
    if c_out * s * s >= c_in:
        assert layer.kind == "isometry"
        assert torch.allclose(A.T @ A, torch.eye(A.shape[1], dtype=F64), atol=1e-12)  # ||y|| = ||x|| for every x
    else:
        assert layer.kind == "co-isometry"
        assert torch.allclose(A @ A.T, torch.eye(A.shape[0], dtype=F64), atol=1e-12)
        with pytest.raises(ValueError, match="cannot be an isometry"):
            oc.BCOPTranspose(c_in, c_out, k, s, isometric=True)


def test_output_shape_and_the_pixel_shuffle_layout():
    layer = oc.BCOPTranspose(4, 3, 4, 2, dtype=F64)
    x = torch.randn(2, 4, 5, 3, dtype=F64)
    y = layer(x)
    assert y.shape == (2, 3, 10, 6)
    assert torch.equal(y, torch.nn.functional.pixel_shuffle(layer.conv(x), 2))
    assert layer.kernel().shape == (12, 4, 2, 2)


@pytest.mark.parametrize("kind", ["zero", "huge"])
def test_degenerate_parameters_keep_it_isometric_with_finite_gradients(kind):
    layer = oc.BCOPTranspose(3, 2, 3, 2, dtype=F64)
    with torch.no_grad():
        for p in (layer.conv.h_param, layer.conv.pq_param):
            p.zero_() if kind == "zero" else p.mul_(1e300)
    x = torch.randn(2, 3, 4, 3, dtype=F64)
    layer(x).square().sum().backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in layer.parameters())
    A = forward_matrix(layer, 3, 4, 3)
    assert torch.allclose(A.T @ A, torch.eye(A.shape[1], dtype=F64), atol=1e-12)


def test_verification_reads_the_layer():
    torch.manual_seed(0)
    layer = oc.BCOPTranspose(6, 2, 3, 2, dtype=F64)
    report = oc.check_orthogonal(layer, (4, 5))
    assert report.kind == "isometry" and report.verdict == "isometry" and report.max_deviation < 1e-12
    model = check_model(torch.nn.Sequential(layer), torch.randn(1, 6, 4, 5, dtype=F64))
    assert 1 - 1e-12 <= model.lipschitz_lower <= model.lipschitz_upper <= 1 + 1e-12
    assert layer.lipschitz_bound((4, 5)) == pytest.approx(1.0, abs=1e-12)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="square strides"):
        oc.BCOPTranspose(2, 2, 3, (2, 1))
    with pytest.raises(ValueError, match="padding must be 'same'"):
        oc.BCOPTranspose(2, 2, 3, 2, padding=1)
    with pytest.raises(ValueError, match="BCOPTranspose: x has 3 channels"):
        oc.BCOPTranspose(2, 2, 3, 2)(torch.randn(1, 3, 4, 4))
