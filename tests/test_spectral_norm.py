"""Operator norms: exact for every circular configuration, certified enclosures (rtol and zero padding), against
the dense operator in float64; the pieces of the certified method against their definitions."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_spectral import circular_cases, kernel_of, reference_values

from orthoconv.math.spectral import certified, gram_taps
from orthoconv.spectral import (
    conv_operator,
    conv_singular_values,
    conv_spectral_norm,
    dense_operator,
    operator_matrix,
    polyphase_transfer,
    power_iteration_norm,
)

from strategies import conv_shapes

F64 = torch.float64


def smooth(kernel, seed):
    """One shared random tap plus 0.3 x the kernel: a spectrum peaked at low frequencies."""
    shared = kernel_of(kernel.shape[:2] + (1,) * (kernel.dim() - 2), seed + 1)
    return shared + 0.3 * kernel


@settings(max_examples=40)
@given(case=circular_cases())
def test_exact_norm_of_every_circular_configuration(case):
    kernel, size, stride, groups, dilation = case
    norm = conv_spectral_norm(kernel, size, "circular", stride, groups, dilation)
    assert norm.exact and norm.method == ("fft" if max(stride) == 1 else "polyphase-fft")
    assert norm.value == pytest.approx(reference_values(kernel, size, stride, groups, dilation)[0], rel=1e-12)


@settings(max_examples=60)
@given(case=circular_cases(), rtol=st.sampled_from([0.1, 1e-3, 1e-6]), family=st.sampled_from(["gaussian", "smooth"]),
       seed=st.integers(0, 100))
def test_certified_enclosure_within_rtol(case, rtol, family, seed):
    """``lower <= ||A|| <= upper <= (1 + rtol) lower`` with a real witness below: never above the exact norm."""
    kernel, size, stride, groups, dilation = case
    if family == "smooth":
        kernel = smooth(kernel, seed)
    exact = float(conv_singular_values(kernel, size, stride, groups, dilation).max())
    norm = conv_spectral_norm(kernel, size, "circular", stride, groups, dilation, rtol=rtol)
    assert norm.lower <= exact <= norm.upper
    assert norm.upper <= (1 + rtol) * norm.lower * (1 + 1e-12)
    # the probes find the maximum itself on these sizes; the lower end gives up only its rounding margin
    assert exact - norm.lower <= 1e-12 * float(kernel.abs().sum()) ** 2 / max(exact, 1e-300) + 1e-12 * exact


def test_certified_method_prunes_smooth_kernels_and_certifies_gaussian_ones():
    gaussian = kernel_of((16, 16, 3, 3), 0)
    size = (32, 32)
    frequencies = 32 * 17
    kinds = {}
    for name, kernel in (("gaussian", gaussian), ("smooth", smooth(gaussian, 0))):
        exact = float(conv_singular_values(kernel, size).max())
        result = certified.certified_circular_norm(kernel, size, (1, 1), (1, 1), 1, 1e-3)
        assert result.lower <= exact <= result.upper <= 1.001 * result.lower * (1 + 1e-12)
        assert result.pruned + result.certified + result.decomposed == result.frequencies == frequencies
        kinds[name] = result
    assert kinds["smooth"].pruned > 0.8 * frequencies
    assert kinds["gaussian"].decomposed < 0.1 * frequencies


@pytest.mark.parametrize("k", [1, 3])
def test_rank_one_transfer_matrices_give_the_exact_norm_from_below(k):
    """``W[:, :, p, q] = f[p, q] u v^T``: every Gram matrix is rank one, so the ranking step's Rayleigh
    quotient is its exact eigenvalue (k = 1: all frequencies tie and none can be pruned), and the lower
    end must still not exceed the exact norm (an overstated witness would)."""
    g = torch.Generator().manual_seed(0)
    u, v, f = (torch.randn(n, generator=g, dtype=F64) for n in (16, 16, k * k))
    kernel = ((u[:, None] * v[None, :])[:, :, None] * f[None, None, :]).reshape(16, 16, k, k)
    exact = float(conv_singular_values(kernel, (16, 16)).max())
    norm = conv_spectral_norm(kernel, (16, 16), rtol=1e-3)
    assert norm.lower <= exact <= norm.upper <= 1.001 * norm.lower * (1 + 1e-12)
    assert norm.lower == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("rtol", [1e-3, 1e-6])
def test_the_largest_frobenius_norm_need_not_hold_the_maximum(rtol):
    """``K(w) = a u u^T (1 + e^-iw) + s I (1 - e^-iw)`` (unit ``u``): eigenvalues ``|(a + s) + (a - s) e^-iw|``
    on ``u`` and ``|s (1 - e^-iw)|`` elsewhere, so with ``a = 1.02 s`` the norm ``2a`` sits at ``w = 0`` (rank
    one there, its Schatten-4 bound tight), while ``w = pi`` (``2s I``) has the largest Frobenius norm:
    only a sound prune keeps ``w = 0``."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(16, generator=g, dtype=F64)
    u = u / torch.linalg.vector_norm(u)
    a, s = 1.02, 1.0
    outer, eye = a * u[:, None] * u[None, :], s * torch.eye(16, dtype=F64)
    kernel = torch.stack([outer + eye, outer - eye], dim=-1)
    exact = float(conv_singular_values(kernel, (64,)).max())
    assert exact == pytest.approx(2 * a, rel=1e-12)
    norm = conv_spectral_norm(kernel, (64,), rtol=rtol)
    assert norm.lower <= exact <= norm.upper <= (1 + rtol) * norm.lower * (1 + 1e-12)


def test_zero_kernel_has_norm_zero():
    norm = conv_spectral_norm(torch.zeros(2, 3, 3, 3, dtype=F64), (4, 4), rtol=1e-3)
    assert (norm.lower, norm.upper) == (0.0, 0.0)


@pytest.mark.parametrize("side", ["rows", "columns"])
@settings(max_examples=30)
@given(case=circular_cases())
def test_gram_taps_give_the_gram_matrices(side, case):
    """``sum_D A_D phi_D(u)`` (and ``B_D``) equal ``K K^H`` (``K^H K``) of the polyphase transfer matrices, the
    quadratic form equals ``||K||_F^2``, and :func:`transfers_at` equals :func:`polyphase_transfer`."""
    kernel, size, stride, groups, dilation = case
    ksize = tuple(kernel.shape[2:])
    W = gram_taps.grouped_taps(kernel, groups)
    S = math.prod(stride)
    r = gram_taps.residues(ksize, stride, dilation, "cpu")
    K = polyphase_transfer(kernel, size, stride, dilation, groups)
    freqs = gram_taps.frequency_list(tuple(torch.arange(f) for f in K.shape[: len(size)]))
    K = K.reshape(-1, *K.shape[-3:])
    assert torch.allclose(gram_taps.transfers_at(W, freqs, size, ksize, dilation, r, S), K, atol=1e-12, rtol=0)
    A = gram_taps.autocorrelation_taps(W, ksize, r, S, side)
    G = gram_taps.grams_from_taps(A, freqs, size, ksize, dilation, side)
    scale = float(gram_taps.tap_norm_sum(W).max()) ** 2
    direct = gram_taps.grams_direct(K, side)
    assert torch.allclose(G, direct, atol=1e-12 * scale, rtol=0)
    gram_frobenius = gram_taps.gram_frobenius(A, freqs, size, ksize, dilation)  # a bound, tight to rounding
    assert bool((gram_frobenius >= torch.linalg.matrix_norm(direct)).all())
    assert torch.allclose(gram_frobenius, torch.linalg.matrix_norm(direct), atol=1e-6 * scale, rtol=0)
    same = (r[:, None] == r[None, :]).to(F64)
    frob2 = gram_taps.frobenius_squares(W, same, freqs, size, gram_taps.tap_offsets(ksize, dilation, "cpu"))
    assert torch.allclose(frob2, torch.linalg.matrix_norm(K).square(), atol=1e-12 * scale, rtol=0)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_cholesky_certificate_decides_the_threshold(dtype):
    """A completed factorization of ``mu I - G`` certifies ``lambda_max(G) <= target``: it must refuse a
    matrix just above the target and accept one below it by more than the rounding margins."""
    c, target = 12, 4.0
    Q = torch.linalg.qr(torch.randn(c, c, dtype=torch.complex128, generator=torch.Generator().manual_seed(0)))[0]
    lam = torch.linspace(0.0, 1.0, c, dtype=F64)

    def gram(top):
        return (Q * torch.cat([lam[:-1], torch.tensor([top], dtype=F64)]).to(Q.dtype)) @ Q.mH

    G = torch.stack([gram(target * (1 + 1e-4)), gram(target * (1 - 1e-3)), gram(target)])
    error = torch.zeros(3, dtype=F64)
    frob2 = torch.linalg.matrix_norm(G).real
    passed = certified._certify(G, None, error, frob2, target, dtype)
    assert passed.tolist()[:2] == [False, True]


@given(shape=conv_shapes(max_channels=3, max_side=9), seed=st.integers(0, 2**16),
       padding=st.sampled_from(["zeros", "reflect", "replicate"]), stride=st.integers(1, 2))
def test_enclosure_contains_the_norm_for_every_padding(shape, seed, padding, stride):
    c_out, c_in, kh, kw, H, W = shape
    if padding == "reflect":
        H, W = max(H, kh // 2 + 1), max(W, kw // 2 + 1)
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in (kh, kw))
    op = conv_operator(kernel, (H, W), stride, pads, 1, 1, padding)
    exact = float(np.linalg.svd(operator_matrix(op).numpy(), compute_uv=False)[0])
    norm = conv_spectral_norm(kernel, (H, W), padding, stride, n_iter=100, exact_limit=0)
    assert norm.method.startswith("enclosure")
    assert norm.lower <= exact * (1 + 1e-12) and exact <= norm.upper * (1 + 1e-12)
    dense = conv_spectral_norm(kernel, (H, W), padding, stride)
    assert dense.exact and dense.method == "dense" and dense.value == pytest.approx(exact, rel=1e-12)


@given(c_out=st.integers(1, 3), c_in=st.integers(1, 3), n=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_embedding_bound_is_exact_for_pointwise_kernels(c_out, c_in, n, seed):
    """A 1x1 convolution is the same matrix at every pixel with any padding: the circular-embedding bound
    equals the exact norm (its transfer matrix is constant); the Lanczos witness stops once it is within the
    default ``rtol`` of it."""
    kernel = kernel_of((c_out, c_in, 1, 1), seed)
    norm = conv_spectral_norm(kernel, (n, n + 1), "zeros", exact_limit=0)
    exact = float(torch.linalg.matrix_norm(kernel[:, :, 0, 0], ord=2))
    assert norm.upper == pytest.approx(exact, rel=1e-14)
    assert exact <= (1 + 1e-3) * norm.lower and norm.lower <= exact * (1 + 1e-12) and norm.rtol_met


@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_power_iteration_approaches_the_norm_from_below(padding):
    kernel = kernel_of((4, 3, 3, 3), 0)
    exact = np.linalg.svd(dense_operator(kernel, (6, 5), padding).numpy(), compute_uv=False)[0]
    estimates = [power_iteration_norm(kernel, (6, 5), padding, n_iter=n) for n in (5, 50, 500)]
    assert all(e <= exact for e in estimates)
    assert estimates[-1] > exact * (1 - 1e-3)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: conv_spectral_norm(torch.randn(1, 1, 1, 1), (4, 4), "mirror"), ValueError, "padding_mode"),
        (lambda: conv_spectral_norm(torch.randn(1, 1, 1, 1), (4, 4), rtol=0), ValueError, "rtol"),
        (lambda: conv_spectral_norm(torch.randn(1, 1, 1, 1), (4, 4), rtol=True), ValueError, "rtol"),
        (lambda: conv_spectral_norm(torch.randn(1, 1, 3, 3), (4, 4), "reflect", transposed=True), ValueError,
         "zeros only"),
        (lambda: conv_spectral_norm(torch.randn(1, 1, 3, 3), (4, 4), "zeros", n_iter=-1, exact_limit=0), ValueError,
         "n_iter"),
        (lambda: conv_spectral_norm(torch.randn(1, 1, 5, 5), (2, 2), "reflect"), ValueError, "reflect"),
    ],
)
def test_bad_input_names_the_problem(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_certified_norm_on_device(device):
    kernel = kernel_of((8, 4, 3, 3), 0).to(device)
    norm = conv_spectral_norm(kernel, (8, 8), stride=2, groups=2, rtol=1e-3)
    exact = conv_spectral_norm(kernel.cpu(), (8, 8), stride=2, groups=2).value
    assert norm.lower <= exact <= norm.upper <= 1.001 * norm.lower * (1 + 1e-12)
