"""Square roots of nonnegative combinations of squares: L2-norm pooling, L2-norm residuals.

``y = sqrt(P(t_1^2, ..., t_j^2) + c)`` with ``P`` linear with nonnegative entries (average pooling, sums,
means, reshapes, constant multiplications ``>= 0``, divisions by constants ``> 0``, sums of such) and
``c >= 0`` constant: each output entry is a weighted 2-norm ``y_w = ||(sqrt(p_w) * t, sqrt(c_w))||``, so by
the reverse triangle inequality ``|y_w - y'_w|^2 <= sum_{i,l} p_{w,l,i} (t_{l,i} - t'_{l,i})^2`` and

``||y - y'||^2 <= sum_l (max_i sum_w p_{w,l,i}) ||t_l - t'_l||^2``,

``L(y) = sqrt(sum_l colmax(P_l) L(t_l)^2)``, the column sums ``P_l^T 1`` computed in float64 by
differentiating ``sum(P(u))`` (``P`` is linear in ``u``). deel-torchlip's ``ScaledL2NormPool2d`` and
``torch.nn.LPPool2d(2)`` (``sqrt(area * avg_pool(x^2))``, through ``sign(q) relu(|q|) = q``): the window's
2-norm, ``sqrt(max windows a pixel is in)`` (1 for non-overlapping windows, exact); orthogonium's
``L2NormResidual`` (``sqrt(x^2 / 2 + f(x)^2 / 2 + eps)``): ``sqrt((1 + L(f)^2) / 2)``, 1 for 1-Lipschitz ``f``.
Anything else under the root: ``None`` (the caller refuses).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, fx

from .operators import OperatorBound
from .tracing import arg, op_name

TERM_OPS = {"pow", "square", "mul", "div", "add", "sign", "abs", "relu", "avg_pool1d", "avg_pool2d", "avg_pool3d",
            "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "sum",
            "mean", "view", "reshape", "_unsafe_view", "flatten", "squeeze", "unsqueeze", "clone", "contiguous"}
_POOLS = {"avg_pool1d": 1, "avg_pool2d": 2, "avg_pool3d": 3, "adaptive_avg_pool1d": 1, "adaptive_avg_pool2d": 2,
          "adaptive_avg_pool3d": 3, "_adaptive_avg_pool2d": 2}
_SHAPES = {"view", "reshape", "_unsafe_view", "flatten", "squeeze", "unsqueeze", "clone", "contiguous"}


def _name(node) -> str:
    return op_name(node) if isinstance(node, fx.Node) else ""


def _square_of(node):
    """``t`` when ``node`` is ``t ** 2`` / ``t * t`` / ``square(t)``."""
    name = _name(node)
    if name == "pow" and len(node.args) > 1 and not isinstance(node.args[1], fx.Node) and node.args[1] == 2:
        return node.args[0]
    if name == "square" or (name == "mul" and node.args[0] is node.args[1]):
        return node.args[0]
    return None


def _nonnegative(c, value, strict: bool = False) -> bool:
    t = torch.as_tensor(c.value(value))
    return bool((t > 0).all()) if strict else bool((t >= 0).all())


class _Sum:
    """Walks ``P(t^2) + c`` down from the root's argument, checks it, and evaluates ``P`` alone."""

    def __init__(self, c):
        self.c, self.terms = c, {}

    def check(self, node) -> bool:
        c = self.c
        if not isinstance(node, fx.Node) or c.lip(node) == 0:
            return _nonnegative(c, node)
        t = _square_of(node)
        if t is not None:
            if not isinstance(t, fx.Node) or t in c.pending or t in c.steps or not math.isfinite(c.lip(t)):
                return False
            self.terms.setdefault(t, []).append(node)
            return True
        name = _name(node)
        inner = self._identity(node)
        if inner is not None:
            return self.check(inner)
        if name not in TERM_OPS or name in ("pow", "square", "sign"):
            return False
        a = node.args[0]
        if name == "add":
            return float(node.kwargs.get("alpha", arg(node, 2, "alpha", 1))) >= 0 and all(
                self.check(x) for x in node.args[:2])
        if name in ("mul", "div"):
            if arg(node, 2, "rounding_mode") is not None:
                return False
            varying = [x for x in node.args[:2] if isinstance(x, fx.Node) and c.lip(x) > 0]
            const = [x for x in node.args[:2] if x not in varying]
            if len(varying) != 1 or (name == "div" and node.args[0] is not varying[0]):
                return False
            return _nonnegative(c, const[0], strict=name == "div") and self.check(varying[0])
        shape = c.shape(a)
        if name in _POOLS:
            c.within_samples(node, shape, len(shape) - _POOLS[name], "pools across")
        elif name in ("sum", "mean"):
            dims = arg(node, 1, "dim")
            dims = list(range(len(shape))) if dims in (None, [], ()) else (
                dims if isinstance(dims, (list, tuple)) else [dims])
            c.within_samples(node, shape, min(int(d) % len(shape) for d in dims), "reduces across")
        return all(not (isinstance(x, fx.Node) and c.lip(x) > 0) for x in node.args[1:]) and self.check(a)

    def _identity(self, node):
        """``q`` for ``sign(q) * relu(|q|)``, ``sign(q) * |q|``, ``relu(q)``, ``|q|`` (``q >= 0`` here)."""
        name = _name(node)
        if name in ("relu", "abs"):
            return node.args[0]
        if name == "mul" and len(node.args) == 2:
            a, b = node.args
            for s, m in ((a, b), (b, a)):
                if _name(s) == "sign":
                    inner = m.args[0] if _name(m) == "relu" else m
                    if _name(inner) == "abs" and inner.args[0] is s.args[0]:
                        return s.args[0]
        return None

    def evaluate(self, node, u: dict) -> Tensor | None:
        """``P`` applied to ``u`` (float64), constants dropped."""
        c = self.c
        if not isinstance(node, fx.Node) or c.lip(node) == 0:
            return None
        if node in u:
            return u[node]
        inner = self._identity(node)
        if inner is not None:
            return self.evaluate(inner, u)
        name = _name(node)
        if name == "add":
            a, b = (self.evaluate(x, u) for x in node.args[:2])
            alpha = float(node.kwargs.get("alpha", arg(node, 2, "alpha", 1)))
            return a if b is None else b * alpha if a is None else a + alpha * b
        if name in ("mul", "div"):
            varying = next(x for x in node.args[:2] if isinstance(x, fx.Node) and c.lip(x) > 0)
            const = next(x for x in node.args[:2] if x is not varying)
            k = torch.as_tensor(c.value(const), dtype=torch.float64)
            inner = self.evaluate(varying, u)
            return inner / k if name == "div" else inner * k
        return node.target(self.evaluate(node.args[0], u), *node.args[1:], **node.kwargs)


def is_root(node) -> bool:
    """``sqrt(q)`` or ``q ** 0.5``."""
    name = _name(node)
    return name == "sqrt" or name == "pow" and len(node.args) > 1 and not isinstance(node.args[1], fx.Node) \
        and node.args[1] == 0.5


def certify(c, node, value) -> float | None:
    """``L(node)`` for ``sqrt`` / ``** 0.5`` of a nonnegative combination of squares, or None."""
    if not is_root(node):
        return None
    walk = _Sum(c)
    if not walk.check(node.args[0]) or not walk.terms:
        return None
    u = {}
    for t, squares in walk.terms.items():
        ones = torch.ones(c.shape(squares[0]), dtype=torch.float64, device=c.value(t).device, requires_grad=True)
        u.update({s: ones for s in squares})
    leaves = list(dict.fromkeys(u.values()))
    with torch.enable_grad():
        total = walk.evaluate(node.args[0], u)
        sums = torch.autograd.grad(total.sum(), leaves, allow_unused=True)
    colmax = [0.0 if s is None else float(s.max()) for s in sums]
    if any(m < 0 for m in colmax):
        return None
    lipschitz = math.sqrt(sum(m * c.lip(t) ** 2 for m, t in zip(colmax, walk.terms)))
    shape = c.shape(next(iter(walk.terms)))
    c.record(f"{c.owner(node)}:l2norm", "L2NormCertificate", shape, value.shape,
             OperatorBound(math.sqrt(max(colmax)), False, False, "sqrt(P(t^2) + c): "
                           f"sqrt(max column sum of P) over {len(colmax)} squared input(s)"))
    return lipschitz
