"""The certified enclosure ``conv_spectral_norm(..., rtol)`` holds at every scale of the kernel (a fresh-eyes
review found both ends on the wrong side for float64 kernels near 1e-160, all-zero answers below 1e-170,
infinities and LinAlgErrors past 1e150, and an upper end 8% low for a float32 kernel near 1e-23 whose Gram
entries underflow in complex64). Truth: numpy's FFT and SVD per frequency (Sedghi et al. 2019) in float64
of the unit-size kernel, times the power-of-two scale (exact)."""

import math

import numpy as np
import pytest
import torch

from orthoconv.math.spectral import conv_spectral_norm


def circular_truth(kernel: torch.Tensor, n: int) -> float:
    k = kernel.double().numpy()
    padded = np.zeros((*k.shape[:2], n, n))
    padded[:, :, : k.shape[2], : k.shape[3]] = k
    transfer = np.fft.fft2(padded, axes=(2, 3)).transpose(2, 3, 0, 1)
    return float(np.linalg.svd(transfer, compute_uv=False).max())


def assert_encloses(result, truth):
    assert result.lower <= truth * (1 + 1e-12)
    assert truth <= result.upper * (1 + 1e-12)


@pytest.mark.parametrize("exponent", [-1000, -560, -530, 500, 990])
@pytest.mark.parametrize("rtol", [1e-6, 0.1])
def test_float64_kernels_are_enclosed_at_every_scale(exponent, rtol):
    unit = torch.randn(8, 8, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kernel = unit * 2.0**exponent
    truth = math.ldexp(circular_truth(unit, 8), exponent)
    result = conv_spectral_norm(kernel, (8, 8), rtol=rtol)
    assert_encloses(result, truth)
    assert result.upper <= (1 + rtol) * result.lower


def structured_kernel() -> torch.Tensor:
    """16 channels of a high-pass filter on the identity, 16 coupled rank-one by a low-pass filter: the
    maximizing frequency's Gram matrix has off-diagonal entries that flush to zero in complex64 at 1e-23."""
    W = torch.zeros(32, 32, 3, 3, dtype=torch.float64)
    high = 9.67 * torch.tensor([[0.0, -0.191, 0.0], [-0.191, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    low = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=torch.float64) / 16
    W[range(16), range(16)] = high
    W[16:, 16:] = low
    return W


@pytest.mark.parametrize("rtol", [0.01, 0.1, 0.5])
def test_a_tiny_kernel_whose_gram_entries_underflow_in_complex64_is_enclosed(rtol):
    scale = math.sqrt(0.45 * 2.0**-149 / 16)
    kernel = structured_kernel() * scale
    assert_encloses(conv_spectral_norm(kernel, (16, 16), rtol=rtol), circular_truth(kernel, 16))


def test_rtol_must_be_finite():
    with pytest.raises(ValueError, match="finite"):
        conv_spectral_norm(torch.randn(2, 2, 3, 3), (4, 4), rtol=math.inf)
