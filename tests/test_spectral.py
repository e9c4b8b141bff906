"""FFT spectra, norms and certificates against the dense operator (float64)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import orthoconv.spectral as spectral
from orthoconv.blocks import bcop_kernel
from orthoconv.conv import conv2d_same
from orthoconv.orthogonal import orthogonal, projector
from orthoconv.spectral import (
    autocorrelation,
    conv_singular_values,
    conv_spectral_norm,
    dense_operator,
    orthogonality_certificate,
    power_iteration_norm,
)

from strategies import conv_shapes


def kernel_of(shape, seed):
    c_out, c_in, kh, kw = shape
    return torch.randn(c_out, c_in, kh, kw, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def dense_singular_values(kernel, size, padding="circular"):
    return np.linalg.svd(dense_operator(kernel, size, padding).numpy(), compute_uv=False)


@given(shape=conv_shapes(), seed=st.integers(0, 2**16))
def test_fft_spectrum_is_the_dense_spectrum(shape, seed):
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    sigma = conv_singular_values(kernel, (H, W))
    assert sigma.shape == (H, W, min(c_out, c_in))
    reference = dense_singular_values(kernel, (H, W))
    measured = np.sort(sigma.numpy().ravel())[::-1]
    assert np.abs(measured - reference).max() <= 1e-10 * reference.max()


def test_fft_spectrum_is_accurate_for_small_singular_values():
    """Relative accuracy: a kernel whose operator has singular values over 8 decades."""
    g = torch.Generator().manual_seed(3)
    U = orthogonal(torch.randn(4, 4, generator=g, dtype=torch.float64))
    kernel = (U @ torch.diag(torch.logspace(0, -8, 4, dtype=torch.float64)))[:, :, None, None]
    sigma = np.sort(conv_singular_values(kernel, (3, 4)).numpy().ravel())
    reference = np.sort(np.repeat(np.logspace(0, -8, 4), 12))
    assert np.abs(sigma / reference - 1).max() < 1e-10


@given(shape=conv_shapes(max_side=6), seed=st.integers(0, 2**16), padding=st.sampled_from(["circular", "zeros"]))
def test_dense_operator_matches_the_convolution(shape, seed, padding):
    """Two independent implementations: index arithmetic and F.conv2d on padded images."""
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    x = torch.randn(1, c_in, H, W, dtype=torch.float64)
    expected = conv2d_same(x, kernel, padding).flatten()
    assert torch.allclose(dense_operator(kernel, (H, W), padding) @ x.flatten(), expected, atol=1e-12)


@given(shape=conv_shapes(max_side=6), seed=st.integers(0, 2**16), padding=st.sampled_from(["circular", "zeros"]))
def test_spectral_norm_is_exact_on_small_images(shape, seed, padding):
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    norm = conv_spectral_norm(kernel, (H, W), padding)
    assert norm.exact
    assert abs(norm.value - dense_singular_values(kernel, (H, W), padding)[0]) < 1e-10 * norm.value


@given(shape=conv_shapes(max_channels=3, max_side=9), seed=st.integers(0, 2**16))
def test_zero_padding_enclosure_contains_the_exact_norm(shape, seed):
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    exact = dense_singular_values(kernel, (H, W), "zeros")[0]
    original = spectral.DENSE_LIMIT
    spectral.DENSE_LIMIT = 0
    try:
        norm = conv_spectral_norm(kernel, (H, W), "zeros", n_iter=100)
    finally:
        spectral.DENSE_LIMIT = original
    assert norm.method == "circular-embedding+power-iteration"
    assert norm.lower <= exact * (1 + 1e-12) and exact <= norm.upper * (1 + 1e-12)


@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_power_iteration_approaches_the_norm_from_below(padding):
    kernel = kernel_of((4, 3, 3, 3), 0)
    exact = dense_singular_values(kernel, (6, 5), padding)[0]
    estimates = [power_iteration_norm(kernel, (6, 5), padding, n_iter=n) for n in (5, 50, 500)]
    assert all(e <= exact * (1 + 1e-12) for e in estimates)
    assert estimates[-1] > exact * (1 - 1e-3)


@given(c=st.integers(1, 4), k=st.integers(1, 4), noise=st.floats(0, 0.1), seed=st.integers(0, 2**16))
def test_certificate_bounds_the_true_deviation(c, k, noise, seed):
    g = torch.Generator().manual_seed(seed)
    H = orthogonal(torch.randn(c, c, generator=g, dtype=torch.float64))
    Ps = projector(torch.randn(k - 1, c, c // 2, generator=g, dtype=torch.float64))
    Qs = projector(torch.randn(k - 1, c, (c + 1) // 2, generator=g, dtype=torch.float64))
    kernel = bcop_kernel(H, Ps, Qs) + noise * torch.randn(c, c, k, k, generator=g, dtype=torch.float64)
    certificate = orthogonality_certificate(kernel, (5, 4))
    true_deviation = np.abs(dense_singular_values(kernel, (5, 4)) - 1).max()
    assert true_deviation <= certificate.sigma_bound + 1e-14
    if noise == 0:
        assert certificate.sigma_bound < 1e-13


@given(shape=conv_shapes(max_channels=4, max_kernel=4, max_side=6), seed=st.integers(0, 2**16))
def test_autocorrelation_is_the_gram_operator(shape, seed):
    """``conv(A) = conv(W)^T conv(W)`` (c_in <= c_out); otherwise ``conv(flip A) = conv(W) conv(W)^T``."""
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    A = autocorrelation(kernel)
    D = dense_operator(kernel, (H, W))
    if c_in <= c_out:
        assert torch.allclose(dense_operator(A, (H, W)), D.T @ D, atol=1e-10)
    else:
        assert torch.allclose(dense_operator(A.flip(-2, -1), (H, W)), D @ D.T, atol=1e-10)


def test_certificate_handles_rectangular_kernels():
    kernel = bcop_kernel(torch.eye(4, dtype=torch.float64), [], [])[:2]
    assert orthogonality_certificate(kernel, (3, 3)).gram_deviation < 1e-15
    assert orthogonality_certificate(kernel.transpose(0, 1), (3, 3)).gram_deviation < 1e-15


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: conv_singular_values(torch.randn(2, 2, 3), (4, 4)), ValueError, "4-D"),
        (lambda: conv_singular_values(torch.full((1, 1, 1, 1), float("nan")), (4, 4)), ValueError, "non-finite"),
        (lambda: conv_singular_values(torch.ones(1, 1, 1, 1, dtype=torch.int32), (4, 4)), TypeError, "floating"),
        (lambda: conv_singular_values(torch.randn(1, 1, 1, 1), (0, 4)), ValueError, "positive"),
        (lambda: conv_singular_values(torch.randn(1, 1, 1, 1), 4), TypeError, "pair"),
        (lambda: conv_spectral_norm(torch.randn(1, 1, 1, 1), (4, 4), "reflect"), ValueError, "padding_mode"),
        (lambda: dense_operator(torch.randn(64, 64, 1, 1), (16, 16)), ValueError, "DENSE_LIMIT"),
    ],
)
def test_bad_input_names_the_problem(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_float32_and_device(device):
    kernel = torch.randn(8, 4, 3, 3, device=device)
    sigma = conv_singular_values(kernel, (6, 6))
    reference = conv_singular_values(kernel.cpu().double(), (6, 6))
    assert sigma.device.type == device
    assert float((sigma.cpu().double() - reference).abs().max()) < 1e-4 * float(reference.max())
