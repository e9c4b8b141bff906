"""Checking the weights of a state dict without the model that uses them (``orthoconv verify`` without
``--model``).

Which tensors are weights: in a torch state dict, floating tensors whose last name component is
``weight`` or ``kernel`` (so ``pos_embed`` or ``cls_token`` are not), 2-D ones as ``nn.Linear`` (not
under an ``embed`` module: embedding tables are lookups) and 3-, 4- and 5-D ones as 1-, 2- and 3-D
convolutions; in a numpy file, every 2- to 5-D floating array. A raw weight does not say its stride,
groups, dilation or padding: it is checked under the STATED assumptions of :data:`ASSUMPTIONS`; a
transposed convolution's weight ``(c_in, c_out / groups, *taps)`` is recognised by its module's name
(``deconv``, ``convtranspose``, ``upconv``...), and otherwise read as ``(c_out, c_in, *taps)``. A
weight whose ``c_in`` is no other convolution's ``c_out`` is flagged: it is likely grouped, and the
groups-1 numbers are not its own. orthoconv layers saved with their config are rebuilt and checked
through ``kernel()`` with their own configuration.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..math.spectral import conv_singular_values, module_spectrum
from .checkpoint import orthoconv_layers
from .orthogonality import (
    NON_FINITE,
    default_tolerance,
    isometry_kind,
    orthogonality_verdict,
)

ASSUMPTIONS = ("stride 1", "groups 1", "dilation 1", "circular padding")
_TRANSPOSED_NAME = re.compile(r"(transpose|deconv|convt|conv_t|upconv|up_conv)", re.IGNORECASE)
_DIMS = {3: "1d", 4: "2d", 5: "3d"}


@dataclass
class WeightRow:
    """One checked operator: extreme singular values (``exact`` or a certified enclosure), the verdict at
    ``tol``, and notes stating what was assumed or flagged."""

    name: str
    type: str
    shape: tuple[int, ...]
    dtype: str
    kind: str = ""
    sigma_min: float = float("nan")
    sigma_max: float = float("nan")
    max_deviation: float = float("nan")
    tol: float = float("nan")
    exact: bool = True
    verdict: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.kind) and self.verdict == self.kind and not self.flagged

    @property
    def flagged(self) -> bool:
        return any(note.startswith("FLAG") for note in self.notes)

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _dtype_name(t: Tensor) -> str:
    return str(t.dtype).split(".")[-1]


def weight_kind(name: str, tensor: Tensor, named: bool = True) -> str | None:
    """``"linear"``, ``"conv"``, ``"conv_transpose"`` or None (not a weight), by name and shape (module docstring)."""
    if not tensor.is_floating_point() or not 2 <= tensor.dim() <= 5:
        return None
    parts = name.split(".")
    if named and parts[-1] not in ("weight", "kernel"):
        return None
    if tensor.dim() == 2:
        return None if any("embed" in p.lower() for p in parts[:-1]) else "linear"
    return "conv_transpose" if named and _TRANSPOSED_NAME.search(name) else "conv"


def _finish(row: WeightRow, low: float, high: float, tol: float, exact: bool = True,
            high_lower: float | None = None) -> WeightRow:
    row.sigma_min, row.sigma_max, row.tol, row.exact = low, high, tol, exact
    row.max_deviation = max(1 - low, high - 1)
    row.verdict = orthogonality_verdict(row.kind, low, high, tol, exact, high_lower)
    return row


def _spatial(size: tuple[int, ...], d: int, name: str) -> tuple[int, ...]:
    if len(size) < d:
        raise ValueError(f"{name} is a {d}-D convolution weight: --input-size needs {d} numbers, got {len(size)}")
    return tuple(size[-d:])


def check_weight(name: str, weight: Tensor, kind: str, size: tuple[int, ...], tol: float | None) -> WeightRow:
    """Check one raw weight under :data:`ASSUMPTIONS` (exact: FFT spectrum or matrix SVD in float64)."""
    label = {"linear": "Linear", "conv": "Conv", "conv_transpose": "ConvTranspose"}[kind]
    label += "" if kind == "linear" else _DIMS[weight.dim()]
    row = WeightRow(name, f"{label} weight", tuple(weight.shape), _dtype_name(weight))
    if kind == "conv_transpose":
        row.notes.append("transposed by its name: (c_in, c_out) weight")
    if not bool(torch.isfinite(weight).all()):
        row.verdict = NON_FINITE
        return row
    w64 = weight.detach().to(torch.float64)
    tol = default_tolerance(weight.dtype, weight.detach()) if tol is None else tol
    if kind == "linear":
        row.kind = isometry_kind(weight.shape[0], weight.shape[1])
        sigma = torch.linalg.svdvals(w64)
    else:
        spatial = _spatial(size, weight.dim() - 2, name)
        c_in, c_out = (weight.shape[0], weight.shape[1]) if kind == "conv_transpose" else weight.shape[1::-1]
        row.kind = isometry_kind(c_out, c_in)
        row.notes.append("assumed: " + ", ".join(ASSUMPTIONS) + f" on {'x'.join(map(str, spatial))}")
        if kind == "conv":
            row.notes.append(f"read as (c_out, c_in); a transposed weight maps {c_out}->{c_in}: "
                             f"{isometry_kind(c_in, c_out)}, same singular values")
        sigma = conv_singular_values(w64, spatial)
    return _finish(row, float(sigma.min()), float(sigma.max()), tol)


def check_layer(name: str, layer: nn.Module, size: tuple[int, ...], tol: float | None, notes: list[str],
                stored: torch.dtype) -> WeightRow:
    """Check a rebuilt orthoconv layer through ``module_spectrum`` (its own padding mode and stride); the
    default tolerance is that of the ``stored`` precision of its parameters."""
    row = WeightRow(name, type(layer).__name__, (), str(stored).split(".")[-1])
    row.notes += notes
    params = [p for p in layer.parameters() if p.is_floating_point()]
    if any(not bool(torch.isfinite(p).all()) for p in params):
        row.verdict = NON_FINITE
        return row
    if getattr(layer, "nonlinear", False):
        return _check_nonlinear(row, layer, size, tol, stored)
    try:
        with torch.no_grad():
            if getattr(layer, "kernel_depends_on_size", False):  # LOT, BRO: the operator on this size
                kernel = layer.kernel(_spatial(size, 2, name))
            else:
                kernel = layer.kernel() if callable(getattr(layer, "kernel", None)) else None
    except ValueError:
        kernel = None
    row.shape = tuple(kernel.shape) if kernel is not None else ()
    if tol is None:
        tol = default_tolerance(stored, kernel.detach()) if kernel is not None else default_tolerance(stored)
    if kernel is not None and kernel.dim() == 2:  # OrthogonalLinear: its matrix
        sigma = torch.linalg.svdvals(kernel.detach().to(torch.float64))
        row.kind = isometry_kind(*kernel.shape)
        row.notes.append("kernel() matrix, svd")
        return _finish(row, float(sigma.min()), float(sigma.max()), tol, True, float(sigma.max()))
    spatial = _spatial(size, 2, name)
    try:
        spectrum = module_spectrum(layer, spatial)
    except (ValueError, TypeError) as err:
        row.verdict = "error"
        row.notes.append("cannot check: " + " ".join(str(err).split()))
        return row
    row.kind = isometry_kind(math.prod(spectrum.output_shape), math.prod(spectrum.input_shape))
    row.notes.append(f"kernel() with {getattr(layer, 'padding_mode', '?')} padding, {spectrum.method}")
    return _finish(row, spectrum.sigma_min, spectrum.sigma_max, tol, spectrum.exact, spectrum.sigma_max_lower)


def _check_nonlinear(row: WeightRow, layer: nn.Module, size: tuple[int, ...], tol: float | None,
                     stored: torch.dtype) -> WeightRow:
    """A nonlinear 1-Lipschitz layer (CPL, SLL, Sandwich) is no linear map: its row is its certified Lipschitz
    bound (``lipschitz_bound`` on the image, float64) against 1, kind ``1-Lipschitz``."""
    spatial = _spatial(size, 2, row.name)
    row.shape = tuple(layer.weight.shape)
    row.kind, row.exact = "1-Lipschitz", False
    row.tol = default_tolerance(stored) if tol is None else tol
    try:
        with torch.no_grad():
            row.sigma_max = layer.lipschitz_bound(spatial)
    except (ValueError, TypeError) as err:
        row.verdict = "error"
        row.notes.append("cannot check: " + " ".join(str(err).split()))
        return row
    row.max_deviation = row.sigma_max - 1
    row.verdict = row.kind if row.sigma_max <= 1 + row.tol else "NOT 1-Lipschitz"
    row.notes.append(f"nonlinear: certified Lipschitz bound on {'x'.join(map(str, spatial))} with "
                     f"{layer.padding_mode} padding (lipschitz_bound), not singular values")
    return row


def _flag_unmatched_inputs(rows: list[tuple[WeightRow, int, int, bool]]) -> None:
    """Flag a raw convolution weight whose ``c_in`` is no other convolution's ``c_out`` (a grouped one,
    likely), and one with ``c_in = 1`` after a layer with several outputs (a depthwise one, likely).
    Rebuilt orthoconv layers know their configuration and are not flagged."""
    outputs = [c_out for _, _, c_out, _ in rows]
    for index, (row, c_in, _, raw) in enumerate(rows):
        if not raw:
            continue
        others = outputs[:index] + outputs[index + 1:]
        if index > 0 and c_in not in others:
            row.notes.insert(0, f"FLAG: c_in {c_in} is no other layer's c_out: grouped? (checked as groups=1)")
        elif index > 0 and c_in == 1 and outputs[index - 1] > 1:
            row.notes.insert(0, f"FLAG: c_in 1 after a layer with {outputs[index - 1]} outputs: depthwise? "
                                "(checked as groups=1)")


def check_state_dict(prefix: str, state: dict, size: tuple[int, ...], tol: float | None, named: bool = True,
                     device=None, bar=None) -> tuple[list[WeightRow], list[str]]:
    """Rows for every orthoconv layer and every weight in ``state``; the names of the tensors not checked."""
    rows, channels, skipped = [], [], []
    layers, used = orthoconv_layers(state)
    join = (lambda key: f"{prefix}/{key}") if prefix else (lambda key: key)
    pending = {key: entry for key, *entry in layers}
    for key, tensor in state.items():
        owner = next((p for p in pending if key.startswith(p)), None)
        if owner is not None:
            config, layer, notes, stored = pending.pop(owner)
            name = join(owner.rstrip(".") or config["type"])
            if isinstance(layer, Exception):
                rows.append(WeightRow(name, str(config["type"]), (), "", verdict="error",
                                      notes=["cannot rebuild: " + " ".join(str(layer).split())]))
                continue
            row = check_layer(name, layer.to(device) if device else layer, size, tol, notes, stored)
            if hasattr(layer, "in_channels"):
                channels.append((row, layer.in_channels, layer.out_channels, False))
        elif key in used or not isinstance(tensor, Tensor):
            continue
        else:
            kind = weight_kind(key, tensor, named)
            if kind is None:
                if tensor.is_floating_point() and tensor.dim() >= 2:
                    skipped.append(join(key))
                continue
            row = check_weight(join(key), tensor.to(device) if device else tensor, kind, size, tol)
            if kind != "linear":
                c_in, c_out = (tensor.shape[0], tensor.shape[1]) if kind == "conv_transpose" else tensor.shape[1::-1]
                channels.append((row, c_in, c_out, True))
        rows.append(row)
        if bar is not None:
            bar.update(1)
    _flag_unmatched_inputs(channels)
    return rows, skipped
