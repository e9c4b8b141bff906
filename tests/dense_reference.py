"""The dense reference of the layer tests: the matrix of a layer's own forward map (applied to the
identity basis, bias removed) and its SVD in float64, independent of the layers' kernels and of the FFT
code; and the hypothesis strategies the layer tests share."""

import torch
from hypothesis import settings
from hypothesis import strategies as st

from orthoconv.nn import raise_failed_checks

F64 = torch.float64
small = settings(max_examples=max(30, settings().max_examples), deadline=None)  # the profile may ask for more


def forward_matrix(layer, c_in, H, W, dtype=F64):
    """The matrix of ``x -> layer(x) - layer(0)`` on ``c_in x H x W`` images, rows = output coordinates."""
    basis = torch.eye(c_in * H * W, dtype=dtype).reshape(-1, c_in, H, W)
    with torch.no_grad():
        out = layer(basis) - layer(torch.zeros(1, c_in, H, W, dtype=dtype))
    raise_failed_checks()  # a host read: a kernel check that failed in the forwards raises here, naming the layer
    return out.reshape(c_in * H * W, -1).T


def singular_values(matrix):
    """Descending singular values (LAPACK through torch, on one thread here), as a numpy array."""
    return torch.linalg.svdvals(matrix.detach().double()).numpy()


def set_bias(layer, seed=0):
    if getattr(layer, "bias", None) is not None:
        with torch.no_grad():
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=torch.Generator().manual_seed(seed), dtype=F64))


shapes = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5))
modes = st.sampled_from(["circular", "zeros"])
