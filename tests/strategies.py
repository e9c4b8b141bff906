"""Hypothesis strategies for convolution shapes: odd, even and 1 kernels, rectangular kernels and images, both
channel orders, and kernels up to 9 on images of side 1 to 4, so that a kernel wraps around a tiny image
more than once (where circular padding wider than the image goes wrong)."""

from hypothesis import strategies as st

WIDE_KERNEL_SIDE = 4  # kernels beyond 5 taps are drawn on image sides up to this


@st.composite
def conv_shapes(draw, max_channels: int = 6, max_kernel: int = 9, max_side: int = 7):
    """``(c_out, c_in, kh, kw, H, W)``; a kernel side above 5 only on an image side of at most 4."""
    c_out, c_in = draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kh = draw(st.integers(1, max_kernel if H <= WIDE_KERNEL_SIDE else min(max_kernel, 5)))
    kw = draw(st.integers(1, max_kernel if W <= WIDE_KERNEL_SIDE else min(max_kernel, 5)))
    return c_out, c_in, kh, kw, H, W
