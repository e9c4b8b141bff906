"""Circular spectra (stride, groups, dilation, 1-3 D, transposed), certificates: against the dense operator
and against closed forms, float64."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthoconv.blocks import bcop_kernel
from orthoconv.conv import conv2d_same
from orthoconv.orthogonal import orthogonal, projector
from orthoconv.spectral import (
    ConvOperator,
    autocorrelation,
    conv_singular_values,
    dense_operator,
    operator_matrix,
    orthogonality_certificate,
    sigma_deviation_bound,
)

from strategies import conv_shapes

F64 = torch.float64


def kernel_of(shape, seed, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def dense_singular_values(kernel, size, padding="circular"):
    return np.linalg.svd(dense_operator(kernel, size, padding).numpy(), compute_uv=False)


def sorted_values(sigma):
    return np.sort(sigma.numpy().ravel())[::-1]


@given(shape=conv_shapes(max_kernel=9, max_side=7), seed=st.integers(0, 2**16))
def test_fft_spectrum_is_the_dense_spectrum(shape, seed):
    """Kernels up to 9 on images from 1 to 7: taps fold around the torus, possibly several times."""
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    sigma = conv_singular_values(kernel, (H, W))
    assert sigma.shape == (H, W, min(c_out, c_in)) and sigma.dtype == F64
    reference = dense_singular_values(kernel, (H, W))
    assert np.abs(sorted_values(sigma) - reference).max() <= 1e-10 * reference.max()


@st.composite
def circular_cases(draw):
    """``(kernel, input_size, stride, groups, dilation)`` for a 1-3 D circular convolution whose stride divides the size."""
    dims = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    c_out, c_in_g = groups * draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, {1: 9, 2: 5, 3: 3}[dims])) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    size = tuple(s * draw(st.integers(1, {1: 8, 2: 4, 3: 2}[dims])) for s in stride)
    kernel = kernel_of((c_out, c_in_g, *k), draw(st.integers(0, 2**16)))
    return kernel, size, stride, groups, dilation


def reference_values(kernel, size, stride, groups, dilation):
    """The dense operator of the circular convolution with outputs at every ``s``-th position of the torus."""
    full = tuple(n // s for n, s in zip(size, stride))
    op = ConvOperator(kernel, size, full, stride, dilation, ((0, 0),) * len(size), "circular", groups)
    return np.linalg.svd(operator_matrix(op).numpy(), compute_uv=False)


@settings(max_examples=60)
@given(case=circular_cases())
def test_polyphase_spectrum_is_the_dense_spectrum(case):
    kernel, size, stride, groups, dilation = case
    sigma = conv_singular_values(kernel, size, stride, groups, dilation)
    c_out_g, n = kernel.shape[0] // groups, kernel.shape[1] * math.prod(stride)
    assert sigma.shape == (*(m // s for m, s in zip(size, stride)), groups * min(c_out_g, n))
    assert bool((sigma[..., :-1] >= sigma[..., 1:]).all())  # descending at every frequency, across groups
    reference = reference_values(kernel, size, stride, groups, dilation)
    assert np.abs(sorted_values(sigma) - reference).max() <= 1e-10 * max(reference.max(), 1e-300)


@settings(max_examples=20)
@given(case=circular_cases())
def test_transposed_spectrum_is_the_adjoints(case):
    kernel, size, stride, groups, dilation = case
    small = tuple(n // s for n, s in zip(size, stride))
    transposed = conv_singular_values(kernel, small, stride, groups, dilation, transposed=True)
    assert torch.equal(transposed, conv_singular_values(kernel, size, stride, groups, dilation))


@given(case=circular_cases(), max_bytes=st.sampled_from([1, 300, 5000]))
def test_blocks_of_any_size_give_the_same_spectrum(case, max_bytes):
    kernel, size, stride, groups, dilation = case
    whole = conv_singular_values(kernel, size, stride, groups, dilation)
    blocked = conv_singular_values(kernel, size, stride, groups, dilation, max_bytes=max_bytes)
    assert torch.allclose(whole, blocked, rtol=1e-13, atol=1e-13 * float(whole.max()))


def test_closed_form_two_tap_filters():
    """``[a, b]`` on ``Z_N``: ``|a + b w^u|``; dilation ``d``: ``|a + b w^(d u)|``; stride 2: the polyphase row
    ``[a, b]`` at every frequency, ``sqrt(a^2 + b^2)``. Exact formulas, asserted to rounding."""
    a, b, N = 0.7, -1.3, 12
    kernel = torch.tensor([[[a, b]]], dtype=F64)
    u = np.arange(N)

    def w(power, n=N):
        return np.exp(-2j * np.pi * ((power * u[: n]) % n) / n)

    close = dict(rtol=2e-15, atol=2e-15)
    assert np.allclose(conv_singular_values(kernel, (N,))[:, 0].numpy(), np.abs(a + b * w(1)), **close)
    assert np.allclose(conv_singular_values(kernel, (N,), dilation=5)[:, 0].numpy(), np.abs(a + b * w(5)), **close)
    strided = conv_singular_values(kernel, (N,), stride=2)
    assert strided.shape == (N // 2, 1)
    assert torch.allclose(strided, torch.full_like(strided, math.hypot(a, b)), rtol=2e-15, atol=0)
    # stride 2 with dilation 2: both taps land in the same polyphase component, |a + b w^u| on Z_(N/2)
    assert np.allclose(conv_singular_values(kernel, (N,), stride=2, dilation=2)[:, 0].numpy(),
                       np.abs(a + b * w(1, N // 2)), **close)


def test_closed_form_depthwise_and_identity():
    """A depthwise (groups = c) 1x1 kernel is a diagonal scaling: the spectrum is |w_c| at every frequency;
    a centered delta kernel is the identity: every singular value is exactly 1."""
    scales = torch.tensor([3.0, -0.5, 2.0], dtype=F64)
    sigma = conv_singular_values(scales.reshape(3, 1, 1, 1), (4, 5), groups=3)
    assert torch.equal(sigma, torch.tensor([3.0, 2.0, 0.5], dtype=F64).expand(4, 5, 3))
    delta = torch.zeros(4, 4, 3, 3, 3, dtype=F64)
    delta[:, :, 1, 1, 1] = torch.eye(4, dtype=F64)
    assert torch.allclose(conv_singular_values(delta, (3, 2, 5)), torch.ones(3, 2, 5, 4, dtype=F64), rtol=0,
                          atol=4e-16)


def test_fft_spectrum_is_accurate_for_small_singular_values():
    """Relative accuracy: a kernel whose operator has singular values over 8 decades."""
    g = torch.Generator().manual_seed(3)
    U = orthogonal(torch.randn(4, 4, generator=g, dtype=F64))
    kernel = (U @ torch.diag(torch.logspace(0, -8, 4, dtype=F64)))[:, :, None, None]
    sigma = np.sort(conv_singular_values(kernel, (3, 4)).numpy().ravel())
    reference = np.sort(np.repeat(np.logspace(0, -8, 4), 12))
    assert np.abs(sigma / reference - 1).max() < 1e-10


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_kernels_are_promoted(dtype):
    """Half and bfloat16 kernels are decomposed in float64 from their exact values (no torch error)."""
    kernel = kernel_of((3, 2, 3, 3), 0, torch.float32).to(dtype)
    sigma = conv_singular_values(kernel, (5, 4), stride=(1, 2))
    assert sigma.dtype == F64
    assert torch.equal(sigma, conv_singular_values(kernel.double(), (5, 4), stride=(1, 2)))
    promoted = kernel.float()  # the 4-D helpers promote to float32 at least
    assert torch.equal(dense_operator(kernel, (3, 3)), dense_operator(promoted, (3, 3)))
    assert orthogonality_certificate(kernel, (3, 3)) == orthogonality_certificate(promoted, (3, 3))


@given(shape=conv_shapes(max_side=6), seed=st.integers(0, 2**16), padding=st.sampled_from(["circular", "zeros"]))
def test_dense_operator_matches_the_convolution(shape, seed, padding):
    """Two independent implementations: index arithmetic and F.conv2d on padded images."""
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    x = torch.randn(1, c_in, H, W, dtype=F64)
    expected = conv2d_same(x, kernel, padding).flatten()
    assert torch.allclose(dense_operator(kernel, (H, W), padding) @ x.flatten(), expected, atol=1e-12)


@given(c=st.integers(1, 4), k=st.integers(1, 4), noise=st.floats(0, 0.1), seed=st.integers(0, 2**16))
def test_certificate_bounds_the_true_deviation(c, k, noise, seed):
    g = torch.Generator().manual_seed(seed)
    H = orthogonal(torch.randn(c, c, generator=g, dtype=F64))
    Ps = projector(torch.randn(k - 1, c, c // 2, generator=g, dtype=F64))
    Qs = projector(torch.randn(k - 1, c, (c + 1) // 2, generator=g, dtype=F64))
    kernel = bcop_kernel(H, Ps, Qs) + noise * torch.randn(c, c, k, k, generator=g, dtype=F64)
    certificate = orthogonality_certificate(kernel, (5, 4))
    true_deviation = np.abs(dense_singular_values(kernel, (5, 4)) - 1).max()
    assert true_deviation <= certificate.sigma_bound + 1e-14
    if noise == 0:
        assert certificate.sigma_bound < 1e-13


@pytest.mark.parametrize("singular_values, delta, bound", [
    ((1.0, 0.9), 0.19, 0.1),      # |0.81 - 1| = 0.19, and 1 - sqrt(1 - 0.19) = 0.1 exactly
    ((1.0, 0.6), 0.64, 0.4),
    ((0.0, 1.0), 1.0, 1.0),       # delta >= 1: sigma may be 0
    ((1.0, 1.0), 0.0, 0.0),
])
def test_certificate_is_exact_when_one_direction_deviates(singular_values, delta, bound):
    """Where the deviation is one singular value below 1, the certificate equals it: a looser formula
    (e.g. ``delta`` itself, 0.19 instead of 0.1) fails here."""
    U = orthogonal(torch.randn(2, 2, generator=torch.Generator().manual_seed(1), dtype=F64))
    kernel = (U @ torch.diag(torch.tensor(singular_values, dtype=F64)))[:, :, None, None]
    certificate = orthogonality_certificate(kernel, (3, 3))
    assert certificate.gram_deviation == pytest.approx(delta, abs=1e-15)
    assert certificate.sigma_bound == pytest.approx(bound, abs=1e-15)
    assert sigma_deviation_bound(delta) == pytest.approx(bound, abs=1e-15)


def test_sigma_deviation_bound_closed_form():
    assert sigma_deviation_bound(0.19) == pytest.approx(0.1, abs=1e-16)
    assert sigma_deviation_bound(0.0) == 0.0
    assert sigma_deviation_bound(3.0) == 1.0  # sqrt(1 + 3) - 1 = 1
    assert sigma_deviation_bound(8.0) == 2.0  # sqrt(1 + 8) - 1 = 2


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
    kernel = bcop_kernel(torch.eye(4, dtype=F64), [], [])[:2]
    assert orthogonality_certificate(kernel, (3, 3)).gram_deviation < 1e-15
    assert orthogonality_certificate(kernel.transpose(0, 1), (3, 3)).gram_deviation < 1e-15


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: conv_singular_values(torch.randn(2, 2, 3), (4, 4)), ValueError, "1-D"),
        (lambda: conv_singular_values(torch.randn(2, 2), (4, 4)), ValueError, "3-D, 4-D or 5-D"),
        (lambda: conv_singular_values(torch.full((1, 1, 1, 1), float("nan")), (4, 4)), ValueError, "non-finite"),
        (lambda: conv_singular_values(torch.ones(1, 1, 1, 1, dtype=torch.int32), (4, 4)), TypeError, "floating"),
        (lambda: conv_singular_values(torch.randn(1, 1, 1, 1), (0, 4)), ValueError, "positive"),
        (lambda: conv_singular_values(torch.randn(1, 1, 1, 1), 4), TypeError, "pair"),
        (lambda: conv_singular_values(torch.randn(1, 1, 3, 3), (5, 4), stride=2), ValueError, "does not divide"),
        (lambda: conv_singular_values(torch.randn(3, 1, 3, 3), (4, 4), groups=2), ValueError, "groups"),
        (lambda: conv_singular_values(torch.randn(2, 1, 3, 3), (4, 4), dilation=0), ValueError, "dilation"),
        (lambda: conv_singular_values(torch.randn(2, 1, 3, 3), (4, 4), stride=(1, 2, 1)), ValueError, "stride"),
        (lambda: dense_operator(torch.randn(64, 64, 1, 1), (16, 16)), ValueError, "DENSE_LIMIT"),
    ],
)
def test_bad_input_names_the_problem(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_float32_and_device(device):
    kernel = torch.randn(8, 4, 3, 3, device=device)
    sigma = conv_singular_values(kernel, (6, 6), stride=2)
    reference = conv_singular_values(kernel.cpu().double(), (6, 6), stride=2)
    assert sigma.device.type == device and sigma.dtype == F64
    assert float((sigma.cpu() - reference).abs().max()) < 1e-12 * float(reference.max())
