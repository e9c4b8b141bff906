"""Certified bounds against exact references: dense-operator SVD (float64) and exact FFT spectra."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.certify import lipschitz_bound
from orthoconv.gram import (
    gram_iteration_norm,
    gram_log_bounds,
    gram_norm_enclosure,
    gram_spectral_norm_bound,
    gram_spectral_norm_enclosure,
)
from orthoconv.math.bounds import reshaped_kernel_bound, tap_norm_bound, zero_padding_norm_bound
from orthoconv.spectral import (
    circular_spectral_norm,
    conv_singular_values,
    dense_operator,
    frequency_response,
    power_iteration_norm,
)

from strategies import conv_shapes

F64 = torch.float64
examples = settings(max_examples=max(30, settings().max_examples), deadline=None)  # the profile may ask for more


def kernel_of(shape, seed, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def dense_norm(kernel, size, padding):
    """Largest singular value of the dense operator (LAPACK through torch, which runs on one thread here)."""
    return float(torch.linalg.svdvals(dense_operator(kernel, size, padding))[0])


def torch_conv_norm(kernel, H, W, **conv2d_args):
    """Largest singular value of ``F.conv2d(., kernel, **conv2d_args)`` on ``H x W`` images, built by
    applying torch's own convolution to every basis image (a reference independent of orthoconv)."""
    c_in = kernel.shape[1]
    basis = torch.eye(c_in * H * W, dtype=F64).reshape(-1, c_in, H, W)
    matrix = F.conv2d(basis, kernel, **conv2d_args).reshape(c_in * H * W, -1)
    return float(torch.linalg.svdvals(matrix)[0])


# ---------------------------------------------------------------- Gram iteration (circular)


@examples
@given(shape=conv_shapes(), seed=st.integers(0, 2**16), n_iter=st.integers(0, 7))
def test_gram_bound_encloses_the_dense_norm(shape, seed, n_iter):
    """exact <= gram <= exact * r^(2^-(n+1)), r = min(c_in, c_out): the Schatten-norm sandwich."""
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    exact = dense_norm(kernel, (H, W), "circular")
    bound = gram_iteration_norm(kernel, (H, W), n_iter)
    assert exact * (1 - 1e-12) <= bound <= exact * min(c_in, c_out) ** (2.0 ** -(n_iter + 1)) * (1 + 1e-12)


@examples
@given(shape=conv_shapes(), seed=st.integers(0, 2**16), rtol=st.sampled_from([1e-1, 1e-3, 1e-8]),
       smooth=st.booleans())
def test_gram_enclosure_holds_and_stops_within_rtol(shape, seed, rtol, smooth):
    """lower <= exact <= upper always; when it stops before n_iter steps, upper <= (1 + rtol) exact."""
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    if smooth:  # a dominant band: frequencies get dropped, and the probe finds the maximum early
        kernel = kernel + 3 * kernel_of((c_out, c_in, 1, 1), seed + 1)
    exact = dense_norm(kernel, (H, W), "circular")
    lower, upper, steps = gram_spectral_norm_enclosure(frequency_response(kernel, (H, W)), 12, rtol=rtol)
    assert lower <= exact * (1 + 1e-12) and exact <= upper * (1 + 1e-12)
    if steps < 12:
        assert upper <= exact * (1 + rtol) * (1 + 1e-12)
    enclosure = gram_norm_enclosure(kernel, (H, W), 12, rtol)
    assert (enclosure.lower, enclosure.upper) == (lower, upper)
    assert gram_iteration_norm(kernel, (H, W), 12, rtol) == upper


@pytest.mark.parametrize("c, k, n", [(64, 3, 8), (32, 5, 16)])
def test_gram_with_rtol_reaches_a_tenth_of_a_percent(c, k, n):
    """i.i.d. Gaussian kernels (tied frequencies, the slow case) reach 0.1% within 16 steps."""
    kernel = kernel_of((c, c, k, k), c * k + n)
    exact = float(conv_singular_values(kernel, (n, n)).max())
    _, upper, steps = gram_spectral_norm_enclosure(frequency_response(kernel, (n, n)), 16, rtol=1e-3)
    assert exact * (1 - 1e-12) <= upper <= exact * (1 + 1e-3)
    assert steps < 16  # stopped on the tolerance, not the step limit


@pytest.mark.parametrize("c, k, n", [(16, 3, 8), (32, 3, 16), (24, 5, 12)])
def test_gram_is_close_to_exact_after_eight_steps(c, k, n):
    kernel = kernel_of((c, c, k, k), c + k + n)
    exact = float(conv_singular_values(kernel, (n, n)).max())
    assert gram_iteration_norm(kernel, (n, n), 8) == pytest.approx(exact, rel=1e-6, abs=0)
    assert gram_iteration_norm(kernel, (n, n), 8) >= exact * (1 - 1e-14)


@examples
@given(shape=conv_shapes(), seed=st.integers(0, 2**16), n_iter=st.integers(0, 6))
def test_dropping_frequencies_does_not_change_the_bound(shape, seed, n_iter):
    c_out, c_in, kh, kw, H, W = shape
    K = frequency_response(kernel_of((c_out, c_in, kh, kw), seed), (H, W))
    full = math.exp(float(gram_log_bounds(K, n_iter).max()))
    assert gram_spectral_norm_bound(K, n_iter) == pytest.approx(full, rel=1e-12)
    per_matrix = torch.linalg.matrix_norm(K, ord=2)
    assert bool((gram_log_bounds(K, n_iter).exp() >= per_matrix * (1 - 1e-12)).all())


@examples
@given(shape=conv_shapes(), seed=st.integers(0, 2**16), n_iter=st.integers(0, 7), row=st.booleans())
def test_gram_is_exact_on_rank_one_transfer_matrices(shape, seed, n_iter, row):
    """With one input (or one output) channel every K(w) is a vector: all its Schatten norms are its Euclidean
    norm, so every step of the iteration, the lower bound and the maximum over frequencies are exact."""
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((1, c_in, kh, kw) if row else (c_out, 1, kh, kw), seed)
    exact = dense_norm(kernel, (H, W), "circular")
    assert gram_iteration_norm(kernel, (H, W), n_iter) == pytest.approx(exact, rel=1e-12)
    lower, upper, _ = gram_spectral_norm_enclosure(frequency_response(kernel, (H, W)), max(n_iter, 1), rtol=1e-9)
    assert lower == pytest.approx(exact, rel=1e-12) and upper == pytest.approx(exact, rel=1e-12)
    vectors = frequency_response(kernel, (H, W))
    per_frequency = torch.linalg.vector_norm(vectors, dim=(-2, -1))
    assert torch.allclose(gram_log_bounds(vectors, n_iter).exp(), per_frequency, rtol=1e-12, atol=0)


@pytest.mark.parametrize("n_iter", [0, 1, 2, 3, 5])
def test_gram_bound_is_the_schatten_norm(n_iter):
    """M with singular values 4 and 3: after t steps the bound is exactly the Schatten norm of order 2^(t+1),
    ``(4^p + 3^p)^(1/p)`` (t = 0: the Frobenius norm 5), the same for every copy in a batch and for the maximum."""
    M = torch.zeros(2, 3, 2, dtype=F64)
    M[:, 0, 0], M[:, 1, 1] = 3.0, 4.0
    p = 2 ** (n_iter + 1)
    schatten = (4.0**p + 3.0**p) ** (1 / p)
    assert torch.allclose(gram_log_bounds(M, n_iter).exp(), torch.full((2,), schatten, dtype=F64), rtol=1e-14, atol=0)
    assert gram_spectral_norm_bound(M, n_iter, exact_probe=False) == pytest.approx(schatten, rel=1e-14)
    assert gram_spectral_norm_bound(M, n_iter) == pytest.approx(schatten, rel=1e-14)
    close = torch.diag(torch.tensor([4.0, 3.9], dtype=F64))  # tied singular values: every step shows
    assert torch.equal(gram_log_bounds(close), gram_log_bounds(close, 6))  # the documented default: 6 steps
    assert not torch.equal(gram_log_bounds(close, 6), gram_log_bounds(close, 7))


def test_gram_never_overflows_and_is_homogeneous():
    kernel = kernel_of((8, 8, 3, 3), 0)
    base = gram_iteration_norm(kernel, (6, 6), 12)
    for scale in (1e-150, 1e150):
        assert gram_iteration_norm(scale * kernel, (6, 6), 12) == pytest.approx(scale * base, rel=1e-12)
    assert gram_iteration_norm(torch.zeros(3, 2, 3, 3, dtype=F64), (4, 4)) == 0.0


@pytest.mark.parametrize("n_iter", [0, 1, 3])
def test_zero_matrices_in_a_batch(n_iter):
    """A zero matrix has sigma_1 = 0: log bound -inf, and it never holds the maximum of a batch."""
    M = torch.zeros(3, 2, 2, dtype=F64)
    M[1] = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=F64)
    logs = gram_log_bounds(M, n_iter)
    assert logs[0] == -math.inf and logs[2] == -math.inf and math.isfinite(logs[1])
    lower, upper, _ = gram_spectral_norm_enclosure(M, n_iter)
    assert upper == pytest.approx(math.exp(float(logs[1])), rel=1e-14) and upper >= 3.0
    assert gram_spectral_norm_enclosure(torch.zeros(2, 3, 3, dtype=F64), n_iter) == (0.0, 0.0, 0)
    assert gram_spectral_norm_enclosure(torch.zeros(0, 3, 3, dtype=F64), n_iter) == (0.0, 0.0, 0)


def test_the_exact_probe_after_the_first_product_stops_the_enclosure_early():
    """Frobenius norms favour 0.8 I (1.39 > 1.35), so the first probe misses diag(1, 0.9, 0); after one product the
    trace bound ranks it first and its exact sigma_1 = 1 is the lower bound: with rtol = 0.15 the enclosure stops
    at step 1 (the trace bound alone, 0.957, is not within 15% of the upper bound 1.134)."""
    M = torch.stack([0.8 * torch.eye(3, dtype=F64), torch.diag(torch.tensor([1.0, 0.9, 0.0], dtype=F64))])
    lower, upper, steps = gram_spectral_norm_enclosure(M, 12, rtol=0.15)
    assert (lower, steps) == (pytest.approx(1.0, rel=1e-14), 1)
    assert upper == pytest.approx((1 + 0.9**4) ** 0.25, rel=1e-14)
    without_probe = gram_spectral_norm_enclosure(M, 12, exact_probe=False, rtol=0.15)
    assert without_probe[2] > 1 and without_probe[0] < 1
    assert gram_spectral_norm_bound(M, 12, rtol=0.15) == upper  # the bound is the enclosure's upper end
    assert gram_spectral_norm_bound(M, 12, exact_probe=False, rtol=0.15) == without_probe[1] < upper


def test_gram_max_over_frequencies_is_not_the_stack_frobenius():
    """A kernel with two equally strong frequencies: one Gram iteration on the whole stack would give
    2^(2^-(t+1)) times too much; the per-frequency maximum is exact for rank-1 transfer matrices."""
    kernel = torch.zeros(1, 1, 1, 2, dtype=F64)
    kernel[0, 0, 0, 0], kernel[0, 0, 0, 1] = 1.0, 1.0  # K(w) = 1 + w: |K| = 2 at w = 1 only
    assert gram_iteration_norm(kernel, (1, 4), 3) == pytest.approx(2.0, rel=1e-14)


def test_bounds_run_on_the_device_of_the_kernel(device):
    """Every bound takes its kernel where it is (CPU, and CUDA where present) and agrees with the CPU float64 value."""
    kernel = kernel_of((6, 4, 3, 3), 0)
    on_device = kernel.to(device)
    for bound in (
        lambda K: gram_iteration_norm(K, (8, 8), 6),
        lambda K: zero_padding_norm_bound(K, (8, 8), 6),
        lambda K: power_iteration_norm(K, (8, 8), "zeros", 30),
    ):
        assert bound(on_device) == pytest.approx(bound(kernel), rel=1e-9)
    circular, zeros = dense_norm(kernel, (8, 8), "circular"), torch_conv_norm(kernel, 8, 8, padding=1)
    assert circular * (1 - 1e-12) <= gram_iteration_norm(on_device, (8, 8), 6) <= circular * 1.01
    assert zeros * (1 - 1e-12) <= zero_padding_norm_bound(on_device, (8, 8), 6)
    assert 0.99 * zeros <= power_iteration_norm(on_device, (8, 8), "zeros", 30) <= zeros * (1 + 1e-12)


# ---------------------------------------------------------------- zero padding


@examples
@given(shape=conv_shapes(max_side=6), seed=st.integers(0, 2**16), n_iter=st.integers(0, 6), crop=st.booleans())
def test_zero_padding_bound_is_certified(shape, seed, n_iter, crop):
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    exact = dense_norm(kernel, (H, W), "zeros")
    bound = zero_padding_norm_bound(kernel, (H, W) if crop else None, n_iter)
    assert bound >= exact * (1 - 1e-12)
    if not crop:  # size independent: at least the circular norm on every size (a sup over the torus)
        for size in [(H, W), (7, 5), (16, 16)]:
            assert bound >= circular_spectral_norm(kernel, size) * (1 - 1e-12)


@example(c_in=3, c_out=2, k=2, H=1, W=1, stride=1, padding=1, seed=2)  # wider input: the Gram side must be c_in
@examples
@given(
    c_in=st.integers(1, 3), c_out=st.integers(1, 3), k=st.integers(1, 4), H=st.integers(2, 6), W=st.integers(2, 6),
    stride=st.integers(1, 2), padding=st.integers(0, 3), seed=st.integers(0, 2**16),
)
def test_cropped_bound_holds_for_any_zero_padding_and_stride(c_in, c_out, k, H, W, stride, padding, seed):
    """The crop argument only uses the INPUT window: any padding amount or stride is covered."""
    kernel = kernel_of((c_out, c_in, k, k), seed)
    if H + 2 * padding < k or W + 2 * padding < k:
        return
    exact = torch_conv_norm(kernel, H, W, stride=stride, padding=padding)
    assert zero_padding_norm_bound(kernel, (H, W), 6) >= exact * (1 - 1e-12)


@examples
@given(shape=conv_shapes(max_side=5), seed=st.integers(0, 2**16), n_iter=st.sampled_from([1, 6, 24]))
def test_cropped_bound_never_falls_below_the_full_convolution_norm(shape, seed, n_iter):
    """The crop keeps every output of the plane convolution: ``||P S_t P||^(2^-t) >= ||P S_1 P||^(1/2) = ||T P||``
    (``T P``: the "full" convolution, output ``(H + kh - 1) x (W + kw - 1)``), so no number of steps goes below
    it; at ``t = 1`` the bound still exceeds it."""
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    full_norm = torch_conv_norm(kernel, H, W, padding=(kh - 1, kw - 1))
    assert zero_padding_norm_bound(kernel, (H, W), n_iter) >= full_norm * (1 - 1e-12)


@pytest.mark.parametrize("c, k, n", [(4, 3, 8), (16, 3, 8), (16, 5, 8), (8, 4, 6), (32, 3, 6)])
def test_zero_padding_bound_is_within_15_percent_with_the_crop(c, k, n):
    kernel = kernel_of((c, c, k, k), c * k)
    exact = dense_norm(kernel, (n, n), "zeros")
    assert exact <= zero_padding_norm_bound(kernel, (n, n), 6) <= 1.15 * exact


def test_zero_padding_bound_refuses_to_exceed_its_memory_budget():
    kernel = kernel_of((8, 8, 3, 3), 0)
    with pytest.raises(ValueError, match="max_elements"):
        zero_padding_norm_bound(kernel, None, 6, max_elements=10_000)
    assert zero_padding_norm_bound(kernel, (4, 4), 6, max_elements=10_000) > 0  # the crop keeps it small
    # step 1: a 5 x 5 grid, half spectrum 5 x 3, of 8 x 8 complex matrices: 960 numbers, allowed up to the budget
    assert zero_padding_norm_bound(kernel, None, 1, max_elements=960) > 0
    with pytest.raises(ValueError, match=r"step 1 needs a 5x5 grid of 8x8 matrices \(960 complex numbers > "
                       r"max_elements = 959\); pass input_size to crop the kernel to the image, lower n_iter, or "
                       r"raise max_elements"):
        zero_padding_norm_bound(kernel, None, 1, max_elements=959)


@examples
@given(shape=conv_shapes(), seed=st.integers(0, 2**16), n_iter=st.integers(1, 6))
def test_zero_padding_bound_is_exact_for_one_input_channel_on_one_pixel(shape, seed, n_iter):
    """c_in = 1 on a 1 x 1 image: the cropped T^T T is the scalar sum_d ||W_d||^2, so every step gives exactly the
    norm of the full convolution (every output the one pixel reaches), ``sqrt(sum W^2)``."""
    c_out, _, kh, kw, _, _ = shape
    kernel = kernel_of((c_out, 1, kh, kw), seed)
    full = torch_conv_norm(kernel, 1, 1, padding=(kh - 1, kw - 1))
    assert full == pytest.approx(float(kernel.square().sum().sqrt()), rel=1e-12)
    assert zero_padding_norm_bound(kernel, (1, 1), n_iter) == pytest.approx(full, rel=1e-12)


@examples
@given(shape=conv_shapes(), seed=st.integers(0, 2**16), padding=st.sampled_from(["circular", "zeros"]))
def test_one_by_one_kernels_are_bounded_exactly(shape, seed, padding):
    """A 1 x 1 kernel acts as one matrix on every pixel: every bound is that matrix's norm."""
    c_out, c_in, _, _, H, W = shape
    kernel = kernel_of((c_out, c_in, 1, 1), seed)
    exact = dense_norm(kernel, (H, W), padding)
    for bound in (reshaped_kernel_bound(kernel), tap_norm_bound(kernel), zero_padding_norm_bound(kernel, None, 3),
                  zero_padding_norm_bound(kernel, (H, W), 3)):
        assert bound == pytest.approx(exact, rel=1e-12)


@examples
@given(shape=conv_shapes(), seed=st.integers(0, 2**16))
def test_reshaped_and_tap_bounds_are_exact_for_equal_taps(shape, seed):
    """Every tap equal to A: the circular operator at frequency 0 is kh kw A, which attains both bounds,
    ``sqrt(kh kw) ||[A ... A]|| = kh kw ||A|| = sum_taps ||A||``, on every image size (kernels folded or not)."""
    c_out, c_in, kh, kw, H, W = shape
    A = kernel_of((c_out, c_in, 1, 1), seed)
    kernel = A.expand(c_out, c_in, kh, kw).contiguous()
    exact = dense_norm(kernel, (H, W), "circular")
    expected = kh * kw * float(torch.linalg.matrix_norm(A[:, :, 0, 0], ord=2))
    assert exact == pytest.approx(expected, rel=1e-12)
    assert reshaped_kernel_bound(kernel) == pytest.approx(expected, rel=1e-12)
    assert tap_norm_bound(kernel) == pytest.approx(expected, rel=1e-12)


def test_size_independent_bounds_are_computed_in_float64():
    """A float32 kernel is bounded in float64: the same value as its float64 copy, to the last bit."""
    kernel = kernel_of((5, 3, 3, 3), 4).float()
    assert tap_norm_bound(kernel) == tap_norm_bound(kernel.double())
    assert reshaped_kernel_bound(kernel) == reshaped_kernel_bound(kernel.double())


@examples
@given(shape=conv_shapes(max_side=6), seed=st.integers(0, 2**16), padding=st.sampled_from(["circular", "zeros"]))
def test_reshaped_and_tap_bounds_are_certified(shape, seed, padding):
    c_out, c_in, kh, kw, H, W = shape
    kernel = kernel_of((c_out, c_in, kh, kw), seed)
    exact = dense_norm(kernel, (H, W), padding)
    assert reshaped_kernel_bound(kernel) >= exact * (1 - 1e-12)
    assert tap_norm_bound(kernel) >= exact * (1 - 1e-12)


# ---------------------------------------------------------------- network bound


def network_jacobian_norm(model, c, H, W):
    x = torch.zeros(1, c, H, W, dtype=F64)
    jac = torch.autograd.functional.jacobian(model, x).reshape(model(x).numel(), -1)
    return float(torch.linalg.svdvals(jac)[0])


def module_norm(module, shape):
    """The exact operator norm of a linear module on one input of ``shape``, from its dense Jacobian."""
    x = torch.zeros(1, *shape, dtype=F64)
    jac = torch.autograd.functional.jacobian(module, x).reshape(module(x).numel(), -1)
    return float(torch.linalg.svdvals(jac)[0])


def test_network_bound_is_the_product_of_exact_layer_norms_and_dominates_the_jacobian():
    torch.manual_seed(0)
    layers = [
        oc.RKO(2, 4, 3, dtype=F64, bias=False),
        oc.OSSN(4, 4, 3, input_size=(6, 6), dtype=F64, bias=False),
        torch.nn.Conv2d(4, 4, 3, padding=1, bias=False, dtype=F64),
        torch.nn.Conv2d(4, 3, 2, stride=2, bias=False, dtype=F64),
        torch.nn.Flatten(),
        torch.nn.Linear(27, 5, bias=False, dtype=F64),
    ]
    model = torch.nn.Sequential(*layers[:2], torch.nn.Sequential(*layers[2:4]), *layers[4:])
    with torch.no_grad():
        layers[2].weight.mul_(3)
    model.eval()
    bound = lipschitz_bound(model, (6, 6))
    shapes = [(2, 6, 6), (4, 6, 6), (4, 6, 6), (4, 6, 6), None, (27,)]
    expected = math.prod(module_norm(m, s) for m, s in zip(layers, shapes) if s is not None)
    assert bound == pytest.approx(expected, rel=1e-10)
    assert network_jacobian_norm(model, 2, 6, 6) <= bound * (1 + 1e-12)


def test_orthogonal_network_has_bound_one():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        oc.BCOP(2, 4, 3, dtype=F64), oc.MaxMin(), oc.StridedBCOP(4, 16, 3, 2, dtype=F64), oc.GroupSort(4),
        oc.CayleyConv(16, 16, 3, input_size=(4, 4), dtype=F64), oc.InvertibleDownsampling(2), torch.nn.Flatten(),
        oc.OrthogonalLinear(256, 10, dtype=F64),
    )
    assert lipschitz_bound(model, (8, 8)) == pytest.approx(1.0, abs=1e-12)
    soc = torch.nn.Sequential(oc.SOC(3, 3, 3, terms=6, dtype=F64))
    exact = module_norm(soc, (3, 5, 5))
    assert lipschitz_bound(soc, (5, 5)) == pytest.approx(exact, rel=1e-10)
    assert exact <= 1 + 1 / math.factorial(7)


def test_network_bound_rejects_what_it_cannot_certify():
    with pytest.raises(TypeError, match="LayerNorm.*divides by the input's own statistics"):
        lipschitz_bound(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3), torch.nn.LayerNorm([2, 2])), (4, 4))
    with pytest.raises(ValueError, match="4-D batch"):
        lipschitz_bound(torch.nn.Sequential(torch.nn.Flatten(), oc.RKO(1, 1, 3)), (4, 4))
    with pytest.raises(ValueError, match="built for|orthogonal for"):
        lipschitz_bound(torch.nn.Sequential(oc.CayleyConv(1, 1, 3, input_size=(5, 5))), (4, 4))
    with pytest.raises(TypeError, match="nn.Module"):
        lipschitz_bound([oc.RKO(1, 1, 3)], (4, 4))


BAD = [
    (lambda: gram_iteration_norm(torch.randn(2, 2, 3, 3), (4, 4), -1), ValueError, "n_iter"),
    (lambda: gram_iteration_norm(torch.randn(2, 2, 3, 3), (4, 4), 6, rtol=0.0), ValueError, "rtol"),
    (lambda: gram_norm_enclosure(torch.randn(2, 2, 3, 3), (4, 4), rtol="1e-3"), ValueError, "rtol"),
    (lambda: gram_iteration_norm(torch.randn(2, 2, 3), (4, 4)), ValueError, "4-D"),
    (lambda: gram_iteration_norm(torch.randn(2, 2, 3, 3), (0, 4)), ValueError, "input_size"),
    (lambda: zero_padding_norm_bound(torch.randn(2, 2, 3, 3), (4, 4), 1.5), ValueError, "n_iter"),
    (lambda: zero_padding_norm_bound(torch.randn(2, 2, 3, 3), "big"), TypeError, "input_size"),
    (lambda: zero_padding_norm_bound(torch.full((2, 2, 3, 3), math.nan), None), ValueError, "non-finite"),
    (lambda: reshaped_kernel_bound(torch.ones(2, 2, 3, 3, dtype=torch.int64)), TypeError, "floating"),
]


@pytest.mark.parametrize("build, error, match", BAD)
def test_bad_input_raises(build, error, match):
    with pytest.raises(error, match=match):
        build()
