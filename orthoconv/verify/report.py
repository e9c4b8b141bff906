"""The verification report: build BCOP layers of several shapes, measure them, say what holds.

For each shape the layer is measured at its initialization and after adding N(0, 30^2) noise to
every parameter (orthogonality must hold for any parameter values), on a regular image and on one
smaller than the kernel. Each row gives the exact spectrum (FFT, float64), the decomposition-free
certificate, and the gradient-norm ratio ``||J^T g|| / ||g||`` measured with autograd.
"""

from __future__ import annotations

import time

import torch

from ..math.spectral import orthogonality_certificate
from ..nn.bcop import BCOP
from .orthogonality import check_orthogonal, gradient_norm_ratio

SHAPES = ((16, 16, 3), (16, 32, 3), (32, 16, 2), (8, 8, 1), (8, 8, 5), (64, 64, 3))
INPUT_SIZES = ((32, 32), (3, 5))


def _perturb(layer: BCOP, scale: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device))


def measure_layer(layer: BCOP, input_size, batch: int, generator: torch.Generator) -> dict:
    """One report row: spectrum, certificate and gradient-norm ratio of ``layer`` on ``input_size``."""
    start = time.perf_counter()
    report = check_orthogonal(layer, input_size)
    certificate = orthogonality_certificate(layer.kernel().detach().to(torch.float64), input_size)
    param = layer.h_param
    x = torch.randn(batch, layer.in_channels, *input_size, generator=generator, dtype=param.dtype).to(param.device)
    ratios = gradient_norm_ratio(layer, x, seed=int(torch.randint(2**31, (1,), generator=generator)))
    return {
        **report.as_dict(),
        "certificate_bound": certificate.sigma_bound,
        "grad_ratio_min": float(ratios.min()),
        "grad_ratio_max": float(ratios.max()),
        "seconds": time.perf_counter() - start,
    }


def run_report(
    shapes=SHAPES, input_sizes=INPUT_SIZES, dtype=torch.float64, device="cpu", seed: int = 0, batch: int = 4
) -> list[dict]:
    """Measure every shape in ``shapes`` (c_in, c_out, k) at init and with noisy parameters."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for c_in, c_out, k in shapes:
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
        layer = BCOP(c_in, c_out, k, device=device, dtype=dtype)
        for params in ("init", "noise30"):
            if params == "noise30":
                _perturb(layer, 30.0, generator)
            for size in input_sizes:
                row = measure_layer(layer, size, batch, generator)
                rows.append({"layer": f"BCOP({c_in}, {c_out}, {k})", "params": params, **row})
    return rows
