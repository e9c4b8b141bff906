"""Continuous piecewise-linear maps split by one hyperplane: HouseHolder activations, masked ReLUs, kinks.

A traced forward that multiplies by comparison masks (``x * (s <= 0) + R x * (s > 0)``) or picks with
``where(s > r, u, w)`` (``r`` constant) computes, at every position ``p`` of its inputs ``v = (v_1, ..., v_k)``
(values of one shape), an affine map on each side of the hyperplane ``s_p(v) - r_p = <n_p, v_p> + t_p = 0``: ``A_p`` where
``s < 0``, ``Z_p`` on it, ``B_p`` where ``s > 0``. The coefficients are read from the graph (constant
multiplications, sums, differences, masks, ``where``; ``relu(u)``, ``leaky_relu(u)``, ``|u|`` of forms ``u``
that are multiples of the selector, as in deel-torchlip's ``MaxMin`` ``cat(relu(x), relu(-x))``), never from a
class name. When the three pieces agree
on the hyperplane (``(A - Z) w = (B - Z) w = 0`` for ``w`` orthogonal to ``n``, offsets equal on it: the
map is continuous), a segment from ``v`` to ``v'`` splits where it crosses the hyperplane, so

``||F_p(v) - F_p(v')|| <= max(||A_p||, ||B_p||) ||v - v'||``,

exact (the Jacobian is ``A_p`` or ``B_p`` on open half-spaces). Positions are disjoint coordinates of the
inputs and of the output, so the map's constant is the largest over ``p``, times ``L(source)`` when the
``v_i`` are disjoint slices of one value (the halves of HouseHolder's ``split``), ``sqrt(sum L(v_i)^2)``
otherwise. HouseHolder (Singla et al. 2021; orthogonium's, with its ``1/sqrt(2)``, and deel-torchlip's):
``B = I - 2 u u^T`` with ``u`` the unit normal of the mask, ``A = I``: certified at 1. The pieces must agree
to ``64 eps`` of the inputs' dtype (the rounding of ``sin``/``cos`` of the stored angle); the gap found is
stated. A mask on another hyperplane, two hyperplanes, or pieces that jump: ``None`` (the caller refuses).
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import Tensor, fx

from .operators import OperatorBound
from .residual import _piece
from .tracing import arg, op_name

ONE = "1"
FORM_OPS = {"mul", "div", "add", "sub", "rsub", "neg", "where", "_to_copy", "to", "type_as", "clone", "alias",
            "contiguous", "positive", "logical_not", "bitwise_not"}
KINKS = {"relu", "leaky_relu", "abs"}
_MASKS = {"le": (1.0, 1.0, 0.0), "lt": (1.0, 0.0, 0.0), "ge": (0.0, 1.0, 1.0), "gt": (0.0, 0.0, 1.0),
          "eq": (0.0, 1.0, 0.0), "ne": (1.0, 0.0, 1.0)}
_MIRROR = {"le": "ge", "lt": "gt", "ge": "le", "gt": "lt", "eq": "eq", "ne": "ne"}
_DEPTH = 24


class _Forms:
    """Affine forms ``{leaf or ONE: coefficient}`` of graph nodes; a coefficient has shape ``(3, *s)``
    (the regions ``s < 0``, ``s = 0``, ``s > 0``) with ``s`` broadcastable to the inputs' shape."""

    def __init__(self, c, rank: int):
        self.c, self.rank, self.selector, self.label, self.masks_allowed = c, rank, None, "", True
        self.leaves: list[fx.Node] = []

    def canonical(self, node: fx.Node) -> fx.Node:
        """The first leaf seen that computes the same value as ``node`` (the same deterministic operation
        on the same arguments, as ``x.flip(1)`` written twice), else ``node``."""
        found = next((leaf for leaf in self.leaves if _same(leaf, node)), None)
        if found is None:
            self.leaves.append(node)
        return found or node

    def const(self, value) -> Tensor | None:
        t = torch.as_tensor(value, dtype=torch.float64).cpu()
        if t.dim() > self.rank:
            return None
        return t.reshape((1,) * (1 + self.rank - t.dim()) + tuple(t.shape))

    def constant(self, value) -> dict | None:
        k = self.const(value)
        return None if k is None else {ONE: k}

    def only_constant(self, form):
        return form[ONE] if form is not None and set(form) == {ONE} else None

    def form(self, node, depth: int = _DEPTH) -> dict | None:
        c = self.c
        if not isinstance(node, fx.Node):
            return self.constant(node) if isinstance(node, (int, float, bool)) else None
        if node in c.steps:
            return self.mask(node, depth)
        if c.lip(node) == 0:
            value = c.value(node)
            return self.constant(value) if isinstance(value, (Tensor, int, float, bool)) else None
        name = op_name(node)
        if name in KINKS and depth > 0 and self.masks_allowed:
            return self.kink(node, depth)
        if name not in FORM_OPS or depth == 0:
            if node in c.pending or not math.isfinite(c.lip(node)):
                return None
            return {self.canonical(node): torch.ones((1,) * (self.rank + 1), dtype=torch.float64)}
        args = [self.form(a, depth - 1) if i < 2 else None for i, a in enumerate(node.args[:2])]
        first, second = (args + [None, None])[:2]
        if name in ("mul", "div"):
            if arg(node, 2, "rounding_mode") is not None:
                return None
            k = self.only_constant(second)
            if name == "div":
                return _scale(first, 1 / k) if k is not None and bool((k != 0).all()) else None
            if k is not None:
                return _scale(first, k)
            k = self.only_constant(first)
            return _scale(second, k) if k is not None else None
        if name in ("add", "sub", "rsub"):
            alpha = float(node.kwargs.get("alpha", arg(node, 2, "alpha", 1)))
            if name == "rsub":
                return _combine(second, first, -alpha)
            return _combine(first, second, alpha if name == "add" else -alpha)
        if name == "neg":
            return _scale(first, torch.tensor(-1.0, dtype=torch.float64))
        if name == "where":
            m = self.only_constant(first)
            u, w = self.form(node.args[1], depth - 1), self.form(node.args[2], depth - 1)
            if m is None or not bool(((m == 0) | (m == 1)).all()):
                return None
            return _combine(_scale(u, m), _scale(w, 1 - m), 1.0)
        if name in ("logical_not", "bitwise_not"):
            m = self.only_constant(first)
            return {ONE: 1 - m} if m is not None and bool(((m == 0) | (m == 1)).all()) else None
        value = c.value(node)
        if isinstance(value, Tensor) and not (value.is_floating_point() or value.dtype == torch.bool):
            return None
        return first

    def mask(self, node, depth: int) -> dict | None:
        """A comparison of one input-dependent value with a constant ``r``: 0/1 per region of ``s = v - r``."""
        c, name = self.c, op_name(node)
        if not self.masks_allowed:
            return None
        if name in ("_to_copy", "to", "clone", "alias", "contiguous"):
            return self.form(node.args[0], depth - 1) if node.args[0] in c.steps else None
        if name in ("logical_not", "bitwise_not"):
            inner = self.mask(node.args[0], depth - 1) if node.args[0] in c.steps else None
            return {ONE: 1 - inner[ONE]} if inner is not None else None
        if name not in _MASKS or len(node.args) < 2:
            return None
        a, b = node.args[0], node.args[1]
        if c.lip(a) > 0 and c.lip(b) == 0:
            s, threshold = a, b
        elif c.lip(b) > 0 and c.lip(a) == 0:
            s, threshold, name = b, a, _MIRROR[name]
        else:
            return None
        orientation = self.orient(_combine(self.linear(s, depth), self.constant(c.value(threshold)), -1.0), s)
        if orientation is None:
            return None
        vector = torch.tensor(_MASKS[name], dtype=torch.float64).reshape((3,) + (1,) * self.rank)
        return {ONE: torch.where(orientation > 0, vector, vector.flip(0))}

    def kink(self, node, depth: int) -> dict | None:
        """``relu(u)``, ``leaky_relu(u, a)``, ``|u|`` of a form ``u`` whose sign is the selector's."""
        name, u = op_name(node), node.args[0]
        form = self.linear(u, depth)
        orientation = self.orient(form, u)
        if orientation is None:
            return None
        below = {"relu": 0.0, "leaky_relu": float(arg(node, 1, "negative_slope", 0.01)), "abs": -1.0}[name]
        vector = torch.tensor([below, 1.0, 1.0], dtype=torch.float64).reshape((3,) + (1,) * self.rank)
        return _scale(form, torch.where(orientation > 0, vector, vector.flip(0)))

    def linear(self, node, depth: int) -> dict | None:
        """The form of ``node``, the same in every region (no masks below it)."""
        allowed, self.masks_allowed = self.masks_allowed, False
        try:
            form = self.form(node, depth - 1) if allowed else None
        finally:
            self.masks_allowed = allowed
        if form is None or any(not (torch.equal(v[0], v[-1]) and torch.equal(v[0], v[len(v) // 2])) for v in (
                t.expand(3, *t.shape[1:]) for t in form.values())):
            return None
        return {k: v[:1] for k, v in form.items()}

    def orient(self, form, node) -> Tensor | None:
        """``+1`` / ``-1`` per position where ``form`` is a positive / negative multiple of the selector (the
        first form compared, which becomes the selector); None if it is not a multiple of it."""
        if form is None:
            return None
        if self.selector is None:
            self.selector, self.label = form, node.name
            return torch.ones((1,) * (self.rank + 1), dtype=torch.float64)
        keys = set(form) | set(self.selector)
        zero = torch.zeros((1,) * (self.rank + 1), dtype=torch.float64)
        a = [form.get(k, zero) for k in keys]
        b = [self.selector.get(k, zero) for k in keys]
        dot = sum(x * y for x, y in zip(a, b))
        norm2 = sum(y * y for y in b)
        ratio = dot / norm2.clamp_min(1e-300)
        scale = sum(x.abs() + y.abs() for x, y in zip(a, b))
        if any(bool(((x - ratio * y).abs() > 1e-12 * scale).any()) for x, y in zip(a, b)) or bool(
                ((ratio == 0) & (norm2 > 0)).any()):
            return None
        return torch.where(ratio < 0, -1.0, 1.0)


def _same(a, b, depth: int = 6) -> bool:
    if a is b:
        return True
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
        return not isinstance(a, (fx.Node, Tensor)) and not isinstance(b, (fx.Node, Tensor)) and type(a) is type(
            b) and a == b
    if depth == 0 or a.op != "call_function" or a.target is not b.target or len(a.args) != len(b.args) or set(
            a.kwargs) != set(b.kwargs) or torch.Tag.nondeterministic_seeded in getattr(a.target, "tags", ()):
        return False
    pairs = list(zip(a.args, b.args)) + [(a.kwargs[k], b.kwargs[k]) for k in a.kwargs]
    return all(_same_arg(x, y, depth - 1) for x, y in pairs)


def _same_arg(x, y, depth: int) -> bool:
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same_arg(u, v, depth) for u, v in zip(x, y))
    return _same(x, y, depth)


def _scale(form, k):
    if form is None or k is None:
        return None
    return {key: v * k for key, v in form.items()}


def _combine(a, b, alpha: float):
    if a is None or b is None:
        return None
    out = dict(a)
    for key, v in b.items():
        out[key] = out[key] + alpha * v if key in out else alpha * v
    return out


def _stack(forms: list[dict], keys: list, shape) -> Tensor | None:
    """``(3, *shape, len(forms), len(keys))`` coefficients."""
    try:
        rows = [torch.stack([f.get(k, torch.zeros(())).expand(3, *shape) for k in keys], -1) for f in forms]
    except RuntimeError:
        return None
    return torch.stack(rows, -2)


def _source(c, leaves: list) -> float:
    """``L`` of the stacked leaves: ``L(source)`` for disjoint slices of one value, else ``sqrt(sum L_i^2)``."""
    pieces = [_piece(c, leaf) for leaf in leaves]
    if len(leaves) > 1 and all(p is not None for p in pieces) and len({(p[0], p[1]) for p in pieces}) == 1:
        spans = sorted((p[2], p[3]) for p in pieces)
        if all(a[1] <= b[0] for a, b in pairwise(spans)) and math.isfinite(c.lip(pieces[0][0])):
            return c.lip(pieces[0][0])
    return math.sqrt(sum(c.lip(leaf) ** 2 for leaf in leaves))


def certify(c, node, value) -> float | None:
    """``L(node)`` for a continuous piecewise-linear map over one hyperplane (module docstring), or None."""
    is_cat = op_name(node) in ("cat", "concat", "concatenate")
    if not isinstance(value, Tensor) or not value.is_floating_point():
        return None
    parts = list(node.args[0]) if is_cat else [node]
    rank = value.dim()
    forms = _Forms(c, rank)
    found = [forms.form(p) for p in parts]
    if forms.selector is None or any(f is None for f in found):
        return None
    selector = {k: v.expand(3, *v.shape[1:]) for k, v in forms.selector.items()}
    leaves = list(dict.fromkeys(k for f in found + [selector] for k in f if k is not ONE))
    shapes = {c.shape(leaf) for leaf in leaves} | {c.shape(p) for p in parts if isinstance(p, fx.Node)}
    if not leaves or len(shapes) != 1:
        return None
    shape = next(iter(shapes))
    coefficients = [t for f in found + [selector] for t in f.values()]
    try:
        common = torch.broadcast_shapes(*(t.shape[1:] for t in coefficients))
        if torch.broadcast_shapes(common, shape) != tuple(shape):
            return None
    except RuntimeError:
        return None
    if is_cat:
        c.within_samples(node, tuple(value.shape), int(arg(node, 1, "dim", 0)) % rank, "joins across")
    M = _stack(found, leaves, common)
    offsets = _stack(found, [ONE], common)[..., 0]
    n = _stack([selector], leaves, common)[0, ..., 0, :]
    t = _stack([selector], [ONE], common)[0, ..., 0, 0]
    A, Z, B = M
    a0, z0, b0 = offsets
    norm2 = (n * n).sum(-1)
    flat = norm2 > 0
    unit = n / norm2.clamp_min(1e-300).sqrt()[..., None]
    projector = torch.eye(len(leaves), dtype=torch.float64) - unit[..., :, None] * unit[..., None, :]
    anchor = -t[..., None] * n / norm2.clamp_min(1e-300)[..., None]
    scale = torch.stack([torch.linalg.matrix_norm(P, ord=2) for P in (A, Z, B)]).amax(0).clamp_min(1)
    gaps = [torch.linalg.matrix_norm((P - Z) @ projector, ord=2) + (
        ((P - Z) @ anchor[..., None])[..., 0] + o - z0).norm(dim=-1) for P, o in ((A, a0), (B, b0))]
    gap = torch.where(flat, torch.maximum(*gaps) / scale, torch.zeros(()))
    eps = torch.finfo(c.value(leaves[0]).dtype).eps
    if float(gap.max()) > 64 * eps:
        return None
    on_sides = torch.maximum(torch.linalg.matrix_norm(A, ord=2), torch.linalg.matrix_norm(B, ord=2))
    constant = torch.where(t < 0, torch.linalg.matrix_norm(A, ord=2), torch.where(
        t > 0, torch.linalg.matrix_norm(B, ord=2), torch.linalg.matrix_norm(Z, ord=2)))
    lipschitz = float(torch.where(flat, on_sides, constant).max())
    c.record(f"{c.owner(node)}:piecewise", "PiecewiseLinearCertificate", value.shape, value.shape,
             OperatorBound(lipschitz, False, True, f"max(||A||, ||B||) over {len(leaves)} inputs, pieces continuous "
                           f"across the sign of {forms.label} (gap {float(gap.max()):.1e})"))
    return lipschitz * _source(c, leaves)
