"""Certificates of 1-Lipschitz structures that composition along the graph would overestimate.

**Residual blocks** (CPL, Meunier et al. 2022; SLL, Araujo et al. 2023; orthogonium's and orthoconv's
variants): ``y = x - a K^T Lambda s(K x + b)`` where the same constant ``K`` (compared by value) is applied
by a convolution and by its exact adjoint (``conv_transpose`` with the same stride, padding, dilation and
groups whose output has the input's shape; or a matrix and its transpose), ``a >= 0`` a scalar,
``Lambda >= 0`` diagonal over the inner channels (constant multiplications on either side of ``s``), and
``s`` elementwise with slope in ``[0, 1]`` (``relu``; ``leaky_relu`` with slope in ``[0, 1]``). With ``D``
the activation's diagonal Jacobian (entries in ``[0, 1]``, commuting with ``Lambda``) and
``M = (a Lambda)^(1/2) K``, the Jacobian is ``J = I - M^T D M``: symmetric, eigenvalues in
``[1 - ||M||^2, 1]``, so ``||J|| <= max(1, ||M||^2 - 1)``. ``||M||`` is measured exactly (or a certified
upper bound) by the code that measures every convolution; ``a ||K||^2 <= 2`` certifies 1, not ``1 + a ||K||^2``.

**Centering** ``x - mean(x, dims, keepdim=True)``: the orthogonal projection ``I - 1 1^T / n``, norm 1.

**Disjoint pieces** (MaxMin, orthogonium's ``ConcatResidual``, channel splits): a concatenation whose parts
depend on the input only through disjoint slices of one value ``s``, part ``i`` with relative bound
``r_i``: ``||cat||^2 <= sum_i r_i^2 ||piece_i||^2 <= max_i r_i^2 L(s)^2``. The pair
``(max(a, b), min(a, b))`` is one part: sorting two numbers is 1-Lipschitz in ``(a, b)``.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import Tensor, nn

from .measured import conv_module
from .operators import OperatorBound, conv_bound
from .tracing import op_name

_SCALES = ("mul", "mul_", "div", "div_")


def _name(node) -> str:
    return op_name(node) if isinstance(node, torch.fx.Node) else ""


def _strip_scales(c, node, scales: list) -> object:
    """Follow constant multiplications down to their input-dependent operand, collecting the constants."""
    while _name(node) in _SCALES:
        a, b = node.args[0], node.args[1]
        if c.lip(a) > 0 and c.lip(b) == 0:
            value = torch.as_tensor(c.value(b), dtype=torch.float64)
            scales.append(1 / value if _name(node).startswith("div") else value)
            node = a
        elif c.lip(b) > 0 and c.lip(a) == 0 and not _name(node).startswith("div"):
            scales.append(torch.as_tensor(c.value(a), dtype=torch.float64))
            node = b
        else:
            return None
    return node


def _channel_scale(scales: list, rank: int, channels: int, channel_dim: int) -> Tensor | None:
    """The product of ``scales`` as one nonnegative value per channel (``channel_dim``), or None."""
    total = torch.ones(channels, dtype=torch.float64)
    for s in scales:
        s = s.cpu()
        if s.dim() > rank or bool((s < 0).any()):
            return None
        full = s.reshape((1,) * (rank - s.dim()) + tuple(s.shape))
        if any(n != 1 for i, n in enumerate(full.shape) if i != channel_dim) or full.shape[channel_dim] not in (
                1, channels):
            return None
        total = total * full.reshape(-1).expand(channels)
    return total


def _unpadded(node):
    """``node`` without a padding of width 0 (orthogonium pads circularly by ``kernel_size // 2``, 0 for
    its unpadded blocks)."""
    while _name(node) in ("pad", "constant_pad_nd") and not any(node.args[1]):
        node = node.args[0]
    return node


def _slope_in_unit_interval(c, node) -> bool:
    name = _name(node)
    if name == "module":
        module = c.trace.modules[node.args[1]][1]
        return type(module) is nn.ReLU or type(module) is nn.LeakyReLU and 0 <= module.negative_slope <= 1
    if name in ("relu", "relu_"):
        return True
    if name in ("leaky_relu", "leaky_relu_"):
        slope = node.args[1] if len(node.args) > 1 else 0.01
        return 0 <= slope <= 1
    return False


def _forward_matrix(c, node) -> Tensor | None:
    """``W`` (out x in) of ``linear``/``matmul`` acting on the last dimension."""
    name = _name(node)
    if name == "linear":
        return c.value(node.args[1])
    if name in ("matmul", "mm") and c.lip(node.args[1]) == 0:
        return c.value(node.args[1]).mT
    return None


def residual_block(c, node, skip, branch) -> tuple[float, str] | None:
    """``(||J|| bound, method)`` when ``node = skip - branch`` is a block of the module docstring."""
    outer: list = []
    adjoint = _strip_scales(c, branch, outer)
    if adjoint is None or any(s.numel() != 1 for s in outer):
        return None
    inner: list = []
    act = _strip_scales(c, _unpadded(adjoint.args[0]), inner) if _name(adjoint) else None
    if act is None or not isinstance(act, torch.fx.Node):
        return None
    if act is None or not _slope_in_unit_interval(c, act):
        return None
    pre = _strip_scales(c, act.args[0], inner)
    if pre is None:
        return None
    if _name(pre) in ("add", "add_") and c.lip(pre.args[1]) == 0:
        pre = pre.args[0]
    adjoint_name, pre_name = _name(adjoint), _name(pre)
    if pre_name in ("conv1d", "conv2d", "conv3d", "convolution") and adjoint_name.startswith(
            ("conv_transpose", "convolution")):
        forward, source = conv_module(c, pre, pre_name)
        backward, _ = conv_module(c, adjoint, adjoint_name)
        same = (isinstance(backward, nn.modules.conv._ConvTransposeNd) and forward.padding_mode == "zeros"
                and not isinstance(forward, nn.modules.conv._ConvTransposeNd)
                and all(getattr(forward, k) == getattr(backward, k) for k in ("stride", "padding", "dilation", "groups"))
                and torch.equal(forward.weight, backward.weight) and c.shape(adjoint) == c.shape(skip))
        if source is not skip or not same:
            return None
        scale = _channel_scale(outer + inner, len(c.shape(pre)), forward.weight.shape[0], 1)
        if scale is None:
            return None
        with torch.no_grad():
            forward.weight.mul_(scale.sqrt().to(forward.weight).view(-1, *(1,) * (forward.weight.dim() - 1)))
        shape = c.shape(skip)
        sigma = conv_bound(forward, tuple(shape[1:]), tuple(c.shape(pre)[1:])).sigma_max
    else:
        W, T = _forward_matrix(c, pre), _forward_matrix(c, adjoint)
        if W is None or T is None or pre.args[0] is not skip or W.shape != T.mT.shape or not torch.equal(W, T.mT):
            return None
        scale = _channel_scale(outer + inner, len(c.shape(pre)), W.shape[0], len(c.shape(pre)) - 1)
        if scale is None:
            return None
        sigma = float(torch.linalg.matrix_norm(scale.sqrt().to(W.device)[:, None] * W.to(torch.float64), ord=2))
    return max(1.0, sigma * sigma - 1), f"I - M^T D M, ||M|| = {sigma:.6g}"


def sum_certificate(c, node, name: str) -> float | None:
    """The certified ``L(node)`` of a residual block or a centering, or None (the triangle inequality then)."""
    if name not in ("sub", "sub_") or len(node.args) < 2 or node.kwargs.get("alpha", 1) != 1:
        return None
    skip, other = node.args[0], node.args[1]
    if not isinstance(other, torch.fx.Node) or c.lip(skip) == 0 or c.lip(other) == 0:
        return None
    if _name(other) == "mean" and other.args[0] is skip and (other.kwargs.get("keepdim") or (
            len(other.args) > 2 and other.args[2])):
        c.within_samples(node, c.shape(skip), min(int(d) % len(c.shape(skip)) for d in other.args[1]),
                         "centers across")
        return c.lip(skip)
    found = residual_block(c, node, skip, other)
    if found is None:
        return None
    lipschitz, method = found
    shape = c.shape(skip)
    c.record(f"{c.owner(node)}:residual", "ResidualCertificate", shape, shape,
             OperatorBound(lipschitz, False, False, method))
    return lipschitz * c.lip(skip)


def _piece(c, node):
    """``(source, dim, start, stop)`` of a slice, narrow, or split/chunk part, else None."""
    name = _name(node)
    if name not in ("slice", "narrow", "getitem"):
        return None
    source = node.args[0] if name != "getitem" else node.args[0].args[0] if isinstance(node.args[0], torch.fx.Node) \
        else None
    shape = c.shape(source) if isinstance(source, torch.fx.Node) else None
    if not shape:
        return None
    if name == "slice" and (len(node.args) < 5 or node.args[4] == 1):
        dim = node.args[1] % len(shape) if len(node.args) > 1 else 0
        start, stop, _ = slice(node.args[2] if len(node.args) > 2 else None,
                               node.args[3] if len(node.args) > 3 else None).indices(shape[dim])
        return source, dim, start, stop
    if name == "narrow":
        dim = node.args[1] % len(shape)
        start = node.args[2] % shape[dim]
        return source, dim, start, start + node.args[3]
    parent = node.args[0]
    kind = _name(parent)
    if kind not in ("split", "chunk", "split_with_sizes"):
        return None
    dim = (parent.args[2] if len(parent.args) > 2 else parent.kwargs.get("dim", 0)) % len(shape)
    n, index = shape[dim], node.args[1]
    if kind == "split_with_sizes":
        sizes = list(parent.args[1])
    else:
        size = parent.args[1] if kind == "split" else -(-n // parent.args[1])
        sizes = [min(size, n - k) for k in range(0, n, size)]
    return source, dim, sum(sizes[:index]), sum(sizes[:index + 1])


def _frontier(c, part, source, limit: int = 400) -> list | None:
    """The pieces of ``source`` through which ``part`` depends on the input (None if a path avoids them)."""
    found, stack, seen = [], [part], set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        piece = _piece(c, node)
        if piece is not None and piece[0] is source and c.lip(node) > 0:
            found.append(node)
        elif node.op == "placeholder" or node is source or len(seen) > limit:
            return None
        else:
            stack.extend(a for a in node.all_input_nodes if c.lip(a) > 0)
    return found


def _sources(c, part, limit: int = 400) -> list:
    """The values that ``part``'s input-dependent ancestry slices, nearest first."""
    sources, stack, seen = [], [part], set()
    while stack and len(seen) <= limit:
        node = stack.pop(0)
        if node in seen:
            continue
        seen.add(node)
        piece = _piece(c, node)
        if piece is not None and piece[0] not in sources:
            sources.append(piece[0])
        stack.extend(a for a in node.all_input_nodes if c.lip(a) > 0)
    return sources


def _pair_sort(c, parts: list) -> float | None:
    """``cat(min(v, d), max(v, d))`` over a dimension ``d`` of size 2 sorts each pair of ``v``: ``L(v)``."""
    if len(parts) != 2 or not all(_name(p) == "getitem" and p.args[1] == 0 for p in parts):
        return None
    a, b = (p.args[0] for p in parts)
    if {_name(a), _name(b)} != {"max", "min"} or a.args[0] is not b.args[0] or a.args[1:2] != b.args[1:2]:
        return None
    shape = c.shape(a.args[0])
    return c.lip(a.args[0]) if shape and len(a.args) > 1 and shape[a.args[1]] == 2 else None


def disjoint_pieces_bound(c, node, parts: list, dim: int) -> float | None:
    """``max_i r_i L(s)`` (module docstring), or None where the parts do not split one value."""
    paired = _pair_sort(c, parts)
    if paired is not None:
        return paired
    varying = [p for p in parts if isinstance(p, torch.fx.Node) and c.lip(p) > 0]
    if len(varying) < 2:
        return None
    for source in _sources(c, varying[0])[:8]:
        found = _split_groups(c, parts, source)
        if found is not None:
            return found
    return None


def _split_groups(c, parts: list, source) -> float | None:
    """``L(source) max_i r_i`` when every input-dependent part reads disjoint pieces of ``source``."""
    groups, used = [], set()
    for i, part in enumerate(parts):
        if i in used or not isinstance(part, torch.fx.Node) or c.lip(part) == 0:
            continue
        if _name(part) in ("maximum", "minimum"):
            twin = next((j for j, q in enumerate(parts) if j != i and isinstance(q, torch.fx.Node) and
                         _name(q) in ("maximum", "minimum") and _name(q) != _name(part) and
                         set(q.args[:2]) == set(part.args[:2])), None)
            if twin is None or any((_piece(c, a) or (None,))[0] is not source for a in part.args[:2]):
                return None
            used.add(twin)
            groups.append((list(part.args[:2]), 1.0))
            continue
        frontier = _frontier(c, part, source)
        if not frontier or len(frontier) != 1:
            return None
        groups.append((frontier, c.lip(part) / c.lip(frontier[0])))
    pieces = [_piece(c, p) for nodes, _ in groups for p in nodes]
    if len({p[1] for p in pieces}) != 1:
        return None
    spans = sorted((p[2], p[3]) for p in pieces)
    if any(a[1] > b[0] for a, b in pairwise(spans)):
        return None
    return c.lip(pieces[0][0]) * max(r for _, r in groups)
