"""Same-size convolutions (orthoconv.math.conv) against independent references, float64.

- circular: the periodic sum ``y[o, i, j] = sum_{c,p,q} W[o, c, p, q] x[c, (i + p - ph) mod H, (j + q - pw) mod W]``
  with ``ph = (kh - 1) // 2``, written in numpy, for kernels up to 9 on images down to 1 x 1 (a kernel wider
  than the image wraps around it more than once);
- zeros: the same sum with the out-of-image terms dropped, and ``torch.nn.functional.conv2d(padding="same")``;
- padding: ``numpy.pad(mode="wrap")``; the adjoint: ``<conv(x), y> = <x, conv^T(y)>``.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st
from torch.fx.experimental.proxy_tensor import make_fx

from orthoconv.math.conv import conv2d_same, conv2d_same_adjoint, pad, same_padding

from strategies import conv_shapes

F64 = torch.float64


def periodic_sum(x: np.ndarray, W: np.ndarray, circular: bool = True) -> np.ndarray:
    """The convolution as a sum over taps, indices taken modulo the image (circular) or dropped outside it."""
    N, _, H, Wd = x.shape
    _, _, kh, kw = W.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    y = np.zeros((N, W.shape[0], H, Wd))
    for p in range(kh):
        for q in range(kw):
            rows, cols = np.arange(H) + p - ph, np.arange(Wd) + q - pw
            shifted = x[:, :, rows % H][:, :, :, cols % Wd]
            if not circular:
                inside = ((rows >= 0) & (rows < H))[:, None] & ((cols >= 0) & (cols < Wd))[None, :]
                shifted = shifted * inside
            y += np.einsum("oc,nchw->nohw", W[:, :, p, q], shifted)
    return y


def draw(shape, seed):
    c_out, c_in, kh, kw, H, W = shape
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, c_in, H, W, generator=g, dtype=F64), torch.randn(c_out, c_in, kh, kw, generator=g, dtype=F64)


def test_a_7x7_kernel_on_a_2x3_image_is_the_periodic_sum():
    """The pads (3 on each side) exceed both image sides: the index wraps around the image more than once."""
    x, W = draw((2, 3, 7, 7, 2, 3), 0)
    expected = periodic_sum(x.numpy(), W.numpy())
    assert np.abs(conv2d_same(x, W, "circular").numpy() - expected).max() < 1e-12


@example(shape=(1, 1, 9, 9, 1, 1), seed=0)
@example(shape=(2, 3, 7, 7, 2, 3), seed=1)
@example(shape=(1, 2, 9, 2, 4, 1), seed=2)
@given(shape=conv_shapes(), seed=st.integers(0, 2**16))
def test_circular_convolution_is_the_periodic_sum(shape, seed):
    x, W = draw(shape, seed)
    expected = periodic_sum(x.numpy(), W.numpy())
    assert np.abs(conv2d_same(x, W, "circular").numpy() - expected).max() < 1e-12 * max(1, np.abs(expected).max())


@example(shape=(2, 3, 7, 7, 2, 3), seed=1)
@given(shape=conv_shapes(), seed=st.integers(0, 2**16))
@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")
def test_zero_padded_convolution_is_the_truncated_sum_and_torch_same(shape, seed):
    x, W = draw(shape, seed)
    y = conv2d_same(x, W, "zeros")
    assert np.abs(y.numpy() - periodic_sum(x.numpy(), W.numpy(), circular=False)).max() < 1e-12
    assert torch.allclose(y, F.conv2d(x, W, padding="same"), rtol=0, atol=1e-12)


@given(shape=conv_shapes(), seed=st.integers(0, 2**16), padding=st.sampled_from(["circular", "zeros"]))
def test_adjoint_is_the_transpose(shape, seed, padding):
    x, W = draw(shape, seed)
    y = torch.randn(2, W.shape[0], *x.shape[-2:], generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    lhs = float((conv2d_same(x, W, padding) * y).sum())
    rhs = float((x * conv2d_same_adjoint(y, W, padding)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-11, abs=1e-11)
    if padding == "circular":  # the default of both
        assert torch.equal(conv2d_same_adjoint(y, W), conv2d_same_adjoint(y, W, padding))
        assert torch.equal(conv2d_same(x, W), conv2d_same(x, W, padding))


@given(H=st.integers(1, 4), W=st.integers(1, 4), pads=st.tuples(*[st.integers(0, 13)] * 4))
def test_circular_pad_wraps_like_numpy_for_any_width(H, W, pads):
    x = torch.arange(2 * H * W, dtype=F64).reshape(1, 2, H, W)
    left, right, top, bottom = pads
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="wrap")
    assert np.array_equal(pad(x, pads, "circular").numpy(), expected)
    zeros = np.pad(x.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)))
    assert np.array_equal(pad(x, pads, "zeros").numpy(), zeros)
    assert np.array_equal(pad(x[0], pads, "circular").numpy(), expected[0])  # the last two dims of any tensor


@given(H=st.integers(1, 4), W=st.integers(1, 4), pads=st.tuples(*[st.integers(0, 9)] * 4), seed=st.integers(0, 99))
def test_circular_pad_gradient_folds_the_wrapped_entries_back(H, W, pads, seed):
    """The gradient of the circular pad is its adjoint: each input entry gets the sum of the gradient at every
    position that copies it (numpy's wrap applied to the entries' own indices), eager and traced alike."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, H, W, generator=g, dtype=F64, requires_grad=True)
    left, right, top, bottom = pads
    ids = np.pad(np.arange(H * W).reshape(H, W), ((top, bottom), (left, right)), mode="wrap")
    grad = torch.randn(2, 3, *ids.shape, generator=g, dtype=F64)
    expected = torch.zeros(2, 3, H * W, dtype=F64).index_add_(-1, torch.as_tensor(ids.ravel()), grad.flatten(-2))
    (actual,) = torch.autograd.grad(pad(x, pads, "circular"), x, grad)
    assert torch.allclose(actual, expected.view(2, 3, H, W), rtol=1e-14, atol=1e-14)
    traced = make_fx(lambda t: pad(t, pads, "circular"))(x.detach())
    assert torch.equal(traced(x.detach()), pad(x, pads, "circular"))


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 1, 0, 1), (2, 0, 0, 3), (5, 4, 7, 1)])
def test_circular_pad_gradients_in_both_modes_pass_gradcheck(pads):
    """Reverse and forward mode (a tangent is padded like the input), and the reverse mode's own gradient."""
    x = torch.randn(1, 2, 4, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: pad(t, pads, "circular"), (x,), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(lambda t: pad(t, pads, "circular"), (x,))


def test_same_padding_matches_torch_for_odd_and_even_kernels():
    assert [same_padding(k) for k in range(1, 7)] == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 3)]


def test_bias_is_added_per_output_channel():
    x, W = draw((3, 2, 3, 2, 4, 5), 3)
    bias = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    expected = conv2d_same(x, W) + bias.view(1, 3, 1, 1)
    assert torch.allclose(conv2d_same(x, W, bias=bias), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x, W: conv2d_same(x, W, "reflect"), ValueError, "padding_mode"),
        (lambda x, W: pad(x, (1, 1, 1, 1), "reflect"), ValueError, "padding_mode"),
        (lambda x, W: conv2d_same(x[0], W), ValueError, "4-D batch"),
        (lambda x, W: conv2d_same(x, W[0]), ValueError, "kernel must be 4-D"),
        (lambda x, W: conv2d_same(x.numpy(), W), TypeError, "x must be a torch.Tensor, got ndarray"),
        (lambda x, W: conv2d_same(x[:, :1], W), ValueError, "x has 1 channels but the kernel expects c_in = 2"),
        (lambda x, W: conv2d_same_adjoint(x, W), ValueError, "y has 2 channels but the kernel produces c_out = 3"),
    ],
)
def test_bad_input_raises(call, error, match):
    x, W = draw((3, 2, 3, 3, 4, 4), 0)
    with pytest.raises(error, match=match):
        call(x, W)
