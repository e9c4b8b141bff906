"""Block-convolution algebra against direct matrix evaluation and the dense operator."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from orthoconv.blocks import bcop_kernel, block_kernel, compose_kernels, transfer_function
from orthoconv.conv import same_padding
from orthoconv.orthogonal import orthogonal, projector
from orthoconv.spectral import dense_operator


def random_projector(c, r, g):
    return projector(torch.randn(c, r, generator=g, dtype=torch.float64)).numpy()


def random_points(m, g, on_circle):
    z = torch.randn(m, 2, generator=g, dtype=torch.float64).numpy() @ np.array([1, 1j])
    return z / np.abs(z) if on_circle else z


def factor(P, z):
    return P + (np.eye(len(P)) - P) * z


@given(c=st.integers(1, 5), data=st.data(), seed=st.integers(0, 2**16))
def test_block_kernel_is_the_product_of_its_factors_and_paraunitary(c, data, seed):
    g = torch.Generator().manual_seed(seed)
    P = random_projector(c, data.draw(st.integers(0, c)), g)
    Q = random_projector(c, data.draw(st.integers(0, c)), g)
    B = block_kernel(torch.from_numpy(P), torch.from_numpy(Q))
    z1, z2 = random_points(4, g, False), random_points(4, g, False)
    K = transfer_function(B, torch.from_numpy(z1), torch.from_numpy(z2)).numpy()
    K_inv = transfer_function(B, torch.from_numpy(1 / z1), torch.from_numpy(1 / z2)).numpy()
    for a, b, k, k_inv in zip(z1, z2, K, K_inv):
        assert np.abs(k - factor(P, a) @ factor(Q, b)).max() < 1e-12
        assert np.abs(k.T @ k_inv - np.eye(c)).max() < 1e-12


@given(
    c=st.integers(1, 4), k1=st.integers(1, 4), k2=st.integers(1, 4), rows=st.integers(1, 6), cols=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_composed_kernel_is_the_composed_operator(c, k1, k2, rows, cols, seed):
    """``conv(compose(W1, W2)) = conv(W1) o conv(W2)`` up to the circular shift between the "same"
    offsets of the composed kernel and of the two factors (zero unless both sizes are even)."""
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(c + 1, c, k1, k2, generator=g, dtype=torch.float64)
    W2 = torch.randn(c, c + 2, k2, k1, generator=g, dtype=torch.float64)
    W12 = compose_kernels(W1, W2)
    assert W12.shape == (c + 1, c + 2, k1 + k2 - 1, k1 + k2 - 1)
    x = torch.randn(c + 2, rows, cols, generator=g, dtype=torch.float64)
    product = (dense_operator(W1, (rows, cols)) @ dense_operator(W2, (rows, cols)) @ x.flatten()).view(c + 1, rows, cols)
    composed = (dense_operator(W12, (rows, cols)) @ x.flatten()).view(c + 1, rows, cols)
    shift = same_padding(k1 + k2 - 1)[0] - same_padding(k1)[0] - same_padding(k2)[0]
    assert torch.allclose(torch.roll(composed, (-shift, -shift), (1, 2)), product, atol=1e-10)


@given(c=st.integers(1, 5), k=st.integers(1, 5), seed=st.integers(0, 2**16), data=st.data())
def test_bcop_kernel_is_the_factor_product_and_paraunitary(c, k, seed, data):
    g = torch.Generator().manual_seed(seed)
    H = orthogonal(torch.randn(c, c, generator=g, dtype=torch.float64)).numpy()
    Ps = [random_projector(c, data.draw(st.integers(0, c)), g) for _ in range(k - 1)]
    Qs = [random_projector(c, data.draw(st.integers(0, c)), g) for _ in range(k - 1)]
    kernel = bcop_kernel(torch.from_numpy(H), [torch.from_numpy(P) for P in Ps], [torch.from_numpy(Q) for Q in Qs])
    assert kernel.shape == (c, c, k, k)
    z1, z2 = random_points(3, g, True), random_points(3, g, True)
    K = transfer_function(kernel, torch.from_numpy(z1), torch.from_numpy(z2)).numpy()
    for a, b, value in zip(z1, z2, K):
        expected = H
        for P, Q in zip(Ps, Qs):
            expected = expected @ factor(P, a) @ factor(Q, b)
        assert np.abs(value - expected).max() < 1e-12
        assert np.abs(value.conj().T @ value - np.eye(c)).max() < 1e-12


def test_bcop_kernel_equals_composition_of_block_kernels():
    g = torch.Generator().manual_seed(0)
    c, k = 4, 4
    H = orthogonal(torch.randn(c, c, generator=g, dtype=torch.float64))
    Ps = projector(torch.randn(k - 1, c, 2, generator=g, dtype=torch.float64))
    Qs = projector(torch.randn(k - 1, c, 1, generator=g, dtype=torch.float64))
    expected = H[:, :, None, None]
    for P, Q in zip(Ps, Qs):
        expected = compose_kernels(expected, block_kernel(P, Q))
    assert torch.allclose(bcop_kernel(H, Ps, Qs), expected, atol=1e-13)
    assert torch.equal(bcop_kernel(H, [], []), H[:, :, None, None])


def test_transfer_function_at_one_sums_the_taps():
    W = torch.randn(3, 2, 4, 5, dtype=torch.float64)
    assert torch.allclose(transfer_function(W, 1, 1).real, W.sum(dim=(2, 3)))
    assert transfer_function(W, torch.ones(7, 1), torch.ones(1, 2)).shape == (7, 2, 3, 2)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="cannot compose"):
        compose_kernels(torch.randn(2, 3, 1, 1), torch.randn(2, 2, 1, 1))
    with pytest.raises(ValueError, match="4-D kernel"):
        compose_kernels(torch.randn(2, 3, 1), torch.randn(2, 2, 1, 1))
    with pytest.raises(ValueError, match="same number of projectors"):
        bcop_kernel(torch.eye(2), torch.zeros(2, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"square \(2, 2\)"):
        bcop_kernel(torch.eye(2), torch.zeros(1, 3, 3), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="square"):
        block_kernel(torch.zeros(2, 3), torch.zeros(2, 3))
