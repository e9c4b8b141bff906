"""Hypothesis strategies for convolution shapes (odd/even/1 kernels, both channel orders, tiny images)."""

from hypothesis import strategies as st

channels = st.integers(1, 6)
kernel_sizes = st.integers(1, 5)
image_sides = st.integers(1, 7)


@st.composite
def conv_shapes(draw, max_channels: int = 6, max_kernel: int = 5, max_side: int = 7):
    """``(c_out, c_in, kh, kw, H, W)``: rectangular kernels and images, kernels may exceed the image."""
    c_out, c_in = draw(st.integers(1, max_channels)), draw(st.integers(1, max_channels))
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    return c_out, c_in, kh, kw, H, W
