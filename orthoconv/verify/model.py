"""``check_model``: every layer of a model measured on the input it really receives, and a certified
Lipschitz enclosure ``[lower, upper]`` of the whole network.

What runs is traced on ``example_input`` (:mod:`orthoconv.verify.tracing`: ``make_fx`` in real mode, in
eval mode; the modules' modes are restored afterwards): input-independent computations fold into
constants, every input-dependent operation gets an exact or certified rule with its real input size and
configuration (:mod:`orthoconv.verify.rules`, :mod:`orthoconv.verify.residual`), and the bounds compose
along the graph (:mod:`orthoconv.verify.graph`). The traced graph's output must equal the model's own
output, so the bound is of the model's forward and nothing else; Python branches on shapes are resolved
for the example's shape, and the bound holds for inputs of that shape. The lower end is empirical
(:mod:`orthoconv.verify.empirical`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ..io import format_table, progress
from .empirical import lipschitz_lower_bound
from .graph import Composition, LayerCall, compose, tensor_leaves
from .orthogonality import orthogonality_verdict

TABLE_COLUMNS = ["name", "type", "input", "config", "sigma_min", "sigma_max", "exact", "tol", "verdict"]


@dataclass(frozen=True)
class LayerReport:
    """One module call. Linear maps: ``sigma_min``/``sigma_max`` are the extreme singular values when
    ``exact``, else a certified lower end of the smallest and upper end of the largest (``method`` names
    the enclosure); the verdict is the orthogonality verdict at tolerance ``tol``. Nonlinear maps:
    ``sigma_min`` is None and ``sigma_max`` is the Lipschitz bound."""

    name: str
    type: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    config: dict
    sigma_min: float | None
    sigma_max: float
    sigma_max_lower: float | None
    exact: bool
    method: str
    linear: bool
    kind: str
    tol: float | None
    verdict: str
    assumptions: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.verdict == self.kind if self.linear else self.sigma_max <= 1 + (self.tol or 0.0)

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class ModelReport:
    """``layers`` in call order; ``lipschitz_upper`` certified, ``lipschitz_lower`` empirical (None if not
    searched); ``method`` is ``"make_fx"`` (composed along the traced ATen graph); ``example_shape`` the
    batch shape the trace resolved its shape-dependent branches for."""

    layers: tuple[LayerReport, ...]
    lipschitz_lower: float | None
    lipschitz_upper: float
    input_shape: tuple[int, ...]
    method: str
    example_shape: tuple[int, ...] = ()

    def as_dict(self) -> dict:
        return {"input_shape": list(self.input_shape), "example_shape": list(self.example_shape), "lipschitz_lower": self.lipschitz_lower,
                "lipschitz_upper": self.lipschitz_upper, "method": self.method,
                "layers": [layer.as_dict() for layer in self.layers]}

    def rows(self) -> list[dict]:
        return [{"name": r.name, "type": r.type, "input": r.input_shape, "config": format_config(r.config),
                 "sigma_min": "-" if r.sigma_min is None else r.sigma_min, "sigma_max": r.sigma_max,
                 "exact": "exact" if r.exact else "enclosure", "tol": "-" if r.tol is None or not r.linear else r.tol,
                 "verdict": r.verdict} for r in self.layers]

    def table(self) -> str:
        lower = "not searched" if self.lipschitz_lower is None else f"{self.lipschitz_lower:.6g}"
        return (f"{format_table(self.rows(), TABLE_COLUMNS)}\nLipschitz constant on {shape_text(self.input_shape)} "
                f"inputs: [{lower} (empirical), {self.lipschitz_upper:.6g} (certified)], composed along the traced "
                f"graph of what runs (make_fx, ATen ops); holds for inputs of shape {shape_text(self.example_shape)}")


def shape_text(shape) -> str:
    return "x".join(str(s) for s in shape)


def format_config(config: dict) -> str:
    def text(value):
        if isinstance(value, (tuple, list)):
            return value[0] if len(set(value)) == 1 else "x".join(str(v) for v in value)
        return value

    return " ".join(f"{k}={text(v)}" for k, v in config.items() if k not in ("eps",))


def _layer_report(call: LayerCall, tol: float | None) -> LayerReport:
    b = call.bound
    layer_tol = b.tol if tol is None else float(tol)
    if b.linear:
        verdict = orthogonality_verdict(b.kind, b.sigma_min, b.sigma_max, layer_tol, b.exact, b.sigma_max_lower)
    elif not math.isfinite(b.lipschitz):
        verdict = "non-finite"
    else:
        verdict = "1-Lipschitz" if b.lipschitz <= 1 else f"{b.lipschitz:.4g}-Lipschitz"
    label = call.module if isinstance(call.module, str) else type(call.module).__name__
    return LayerReport(call.name, label, call.input_shape, call.output_shape, dict(b.config),
                       b.sigma_min, b.sigma_max if b.linear else b.lipschitz, b.sigma_max_lower, b.exact, b.method,
                       b.linear, b.kind, layer_tol, verdict, tuple(b.assumptions))


def _check_finite(model: nn.Module) -> None:
    bad = [name for name, t in [*model.named_parameters(), *model.named_buffers()]
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"non-finite (nan or inf) values in {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")


def _same_output(traced, direct) -> bool:
    a = list(tensor_leaves(traced))
    b = list(tensor_leaves(direct))
    if len(a) != len(b):
        return False
    for p, q in zip(a, b):
        if p.shape != q.shape:
            return False
        scale = float(q.detach().abs().max()) if q.numel() else 0.0
        if not torch.allclose(p, q, rtol=1e-5, atol=1e-5 * scale):
            return False
    return True


def check_model(model: nn.Module, example_input: Tensor, tol: float | None = None, lower_steps: int = 10,
                show_progress: bool | None = None) -> ModelReport:
    """Verify ``model`` on inputs shaped like ``example_input`` (a batch ``(N, *sample_shape)``).

    Returns a :class:`ModelReport`: per module call its input size, configuration, extreme singular
    values (exact or a certified enclosure), the verdict at ``tol`` (default: each layer's own
    :func:`orthoconv.verify.default_tolerance`), and the Lipschitz enclosure of the whole network on one
    sample: ``lipschitz_upper`` certified by composition along the traced graph of what runs, ``lipschitz_lower``
    empirical (``lower_steps`` power-iteration and secant-ascent steps at ``example_input``; 0 skips it).

    Raises ``TypeError`` naming any operation that has no certified bound (never skipped), and
    ``ValueError`` for non-finite parameters or a traced graph that does not reproduce the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, Tensor) or example_input.dim() < 2 or not example_input.is_floating_point():
        raise ValueError("example_input must be a floating batch (N, *sample_shape), got "
                         f"{getattr(example_input, 'shape', type(example_input).__name__)}")
    if tol is not None and not float(tol) > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if isinstance(lower_steps, bool) or not isinstance(lower_steps, int) or lower_steps < 0:
        raise ValueError(f"lower_steps must be a non-negative integer, got {lower_steps!r}")
    _check_finite(model)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.inference_mode(False):  # fresh copies: version counters for in-place ops, the input unchanged
            with progress(total=None, label="check_model", enabled=show_progress) as bar:
                composition: Composition = compose(model, example_input.clone(), bar=bar)
            with torch.no_grad():
                direct = model(example_input.clone())
        if not _same_output(composition.output, direct):
            raise ValueError("the traced graph does not reproduce the model's output (its forward depends on "
                             "state the trace does not record): no certified composition")
        lower = lipschitz_lower_bound(model, example_input, lower_steps) if lower_steps else None
    finally:
        for module, mode in modes.items():
            module.training = mode
    layers = tuple(_layer_report(call, tol) for call in composition.layers)
    return ModelReport(layers, lower, composition.lipschitz, tuple(example_input.shape[1:]), composition.method,
                       tuple(example_input.shape))
