"""The certified Lipschitz rule of every input-dependent ATen operation of a traced model.

:func:`bound` returns ``L(node)`` from the bounds ``L(a)`` of its arguments (the composition of
:mod:`orthoconv.verify.graph`); every rule is exact or a certified upper bound:

- convolutions (``aten.conv1d/2d/3d``, ``conv_transpose*``, ``convolution``; any stride, groups,
  dilation, padding; a ``circular``/``reflect``/``replicate`` ``aten.pad`` feeding only the convolution is
  its padding mode) with constant weights: a ``torch.nn`` module with those weights measured by
  :func:`orthoconv.verify.operators.module_bound`, the code path of every module (``orthoconv.math.spectral``);
- ``linear``/``matmul``/``mm``/``addmm`` with one constant matrix ``W``: the SVD of ``W``;
- reshapes, permutations, slices, flips, rolls, sorting, max/min over a dimension, 1-Lipschitz activations
  (``relu``, ``clamp``, ``hardtanh``, ``tanh``, ``abs``): 1; ``prelu`` with constant slopes ``w``:
  ``max(1, max |w|)``; other activations: ``sup |f'|`` of the module
  with the same arguments; pooling: :mod:`orthoconv.verify.pooling`; padding: copy counts;
- upsampling (nearest, bilinear, bicubic, ...): the operator is ``A_1 (x) ... (x) A_d`` (separable, rows of
  each ``A_i`` sum to 1), each ``A_i`` read by applying the op to constant-along-the-other-axes basis images:
  exact extreme singular values;
- ``softmax``: 1/2 (its Jacobian ``diag(p) - p p^T`` is symmetric, positive semidefinite, with Gershgorin
  rows ``2 p_i (1 - p_i) <= 1/2``); ``log_softmax`` over ``n`` entries: ``sqrt(n)`` (``I - 1 p^T`` is a
  projection of norm ``||1|| ||p|| <= sqrt(n)``); vector ``p``-norms over groups of ``n``: 1 for ``p >= 2``,
  ``n^(1/p - 1/2)`` for ``1 <= p < 2``; a mean over ``n`` entries ``1/sqrt(n)``, a sum ``sqrt(n)``;
- sums with the triangle inequality (a broadcast operand repeated ``m`` times: ``sqrt(m)``), products and
  quotients by constants ``max |c|`` / ``1 / min |c|``, ``maximum``/``minimum`` ``sqrt(L_a^2 + L_b^2)``,
  concatenation ``sqrt(sum L_i^2)``; the certificates of :mod:`orthoconv.verify.residual` where they apply.

Per sample: the batch of ``N`` must stay the leading factor of every input-dependent value (its row-major
entries are ``N`` contiguous blocks, one per sample); an operation that mixes entries along dimensions
``d, d+1, ...`` needs ``d >= 1`` and ``prod(shape[:d])`` divisible by ``N``, else ``TypeError``.
Anything else raises ``TypeError`` naming the operation and the user's source line.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import measured, piecewise, residual
from .operators import activation_lipschitz, module_bound, pad_bound
from .tracing import arg, op_name

_PASS = {"view", "_unsafe_view", "reshape", "flatten", "unflatten", "contiguous", "clone", "alias", "detach",
         "lift_fresh_copy", "squeeze", "unsqueeze", "view_as", "reshape_as", "relu", "relu_", "hardtanh",
         "hardtanh_", "clamp", "clamp_", "clamp_min", "clamp_max", "tanh", "tanh_", "abs", "neg", "_to_copy", "to",
         "type_as", "positive", "dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "softsign"}
_SHAPE_ONLY = {"ones_like", "zeros_like", "empty_like", "full_like", "new_zeros", "new_ones", "new_empty",
               "new_full", "sym_size", "sym_numel", "size", "dim", "numel"}  # read the shape, not the values
_MIXING = {"flip": 1, "roll": 2, "slice": 1, "select": 1, "narrow": 1, "split": 2, "split_with_sizes": 2,
           "chunk": 2, "unbind": 1, "tensor_split": 2, "sort": 1, "topk": 2, "max": 1, "min": 1, "amax": 1,
           "amin": 1, "cummax": 1, "cummin": 1, "pixel_shuffle": None, "pixel_unshuffle": None,
           "channel_shuffle": None, "native_channel_shuffle": None}
_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU,
                "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid, "softplus": nn.Softplus, "celu": nn.CELU,
                "selu": nn.SELU, "log_sigmoid": nn.LogSigmoid, "relu6": nn.ReLU6}
_CONV = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "convolution",
         "_convolution"}


def _dims(value, rank: int) -> list[int]:
    if value is None:
        return list(range(rank))
    values = value if isinstance(value, (list, tuple)) else [value]
    return sorted({int(v) % rank for v in values}) if values else list(range(rank))


def bound(c, node, value) -> float:
    """``L(node)`` (module docstring); ``c`` is the running composer of :mod:`orthoconv.verify.graph`."""
    name = op_name(node)
    x = node.args[0] if node.args else None
    shape = c.shape(x)
    if name == "module":
        return _module(c, node, value)
    if name in _SHAPE_ONLY:
        return 0.0
    if name in _PASS:
        if name in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout") and arg(node, 2, "train"):
            raise c.error(node, "drops units (train=True): not a fixed map")
        return c.only_first(node)
    if name == "getitem":
        return c.only_first(node)
    if name in _MIXING:
        return _mixing(c, node, name, shape)
    if name in ("permute", "transpose", "t", "movedim", "swapaxes", "swapdims", "numpy_T", "mT", "adjoint"):
        moved = _permuted(node, name, len(shape))
        c.within_samples(node, shape, moved, "permutes")
        return c.only_first(node)
    if name in ("expand", "expand_as", "repeat", "broadcast_to"):
        out = tuple(value.shape)
        first = next((i for i, (a, b) in enumerate(zip((1,) * (len(out) - len(shape)) + tuple(shape), out)) if a != b),
                     len(out))
        c.within_samples(node, out, first, "repeats entries")
        return c.only_first(node) * math.sqrt(math.prod(out) / math.prod(shape))
    if name == "index":
        return _gather(c, node, shape)
    if name in _ACTIVATIONS:
        return _activation(c, node, name)
    if name in ("prelu", "_prelu_kernel"):  # slope 1 above 0, the constant w_c below: max(1, |w|), attained
        slopes = c.constant(node, node.args[1], "slope").abs()
        return max(1.0, float(slopes.max()) if slopes.numel() else 1.0) * c.only_first(node)
    if name in _CONV:
        return measured.convolution(c, node, value)
    if name in ("linear", "matmul", "mm", "addmm"):
        return measured.matrix(c, node, name, value)
    if name in measured.PADS:
        pads, mode = list(arg(node, 1, "pad")), measured.PADS[name] or arg(node, 2, "mode", "constant")
        c.within_samples(node, shape, len(shape) - len(pads) // 2, "pads")
        result = pad_bound(pads, mode, tuple(shape[1:]), tuple(value.shape[1:]))
        return result.lipschitz * c.only_first(node)
    if name in measured.POOLS:
        return measured.pool(c, node, name, value)
    if name.startswith(("upsample_", "_upsample_")):
        return measured.upsample(c, node, value)
    if name in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
        dim = int(arg(node, 1, "dim")) % len(shape)
        c.within_samples(node, shape, dim, "normalizes")
        factor = 0.5 if "log" not in name else math.sqrt(shape[dim])
        return factor * c.only_first(node)
    if name in ("sum", "mean", "nansum"):
        return _reduction(c, node, name, shape)
    if name in ("linalg_vector_norm", "norm", "frobenius_norm"):
        return _norm(c, node, name, shape)
    if name in ("add", "add_", "sub", "sub_", "rsub"):
        certified = residual.sum_certificate(c, node, name)
        return certified if certified is not None else _sum(c, node, name, value)
    if name in ("mul", "mul_", "div", "div_"):
        return _scaled(c, node, name, value)
    if name in ("maximum", "minimum", "fmax", "fmin"):
        a, b = node.args[0], node.args[1]
        for operand in (a, b):
            if c.lip(operand) > 0:
                c.broadcast_within_samples(node, operand, tuple(value.shape))
        return math.hypot(c.lip(a) * c.spread(a, value), c.lip(b) * c.spread(b, value))
    if name in ("cat", "concat", "concatenate", "stack"):
        return _cat(c, node, name, value)
    if name in ("item", "_local_scalar_dense", "is_nonzero", "equal", "tolist"):
        raise c.error(node, "reads input values into Python (a branch on input values, .item(), a comparison): "
                      "the traced map holds for this input only, no Lipschitz bound")
    if name in ("layer_norm", "native_layer_norm", "group_norm", "instance_norm", "rms_norm", "batch_norm",
                "_native_batch_norm_legit", "local_response_norm"):
        if name == "batch_norm" and not arg(node, 5, "training", True):
            return _batch_norm(c, node)
        raise c.error(node, "divides by the input's own statistics: it has no global Lipschitz bound")
    if name in ("scaled_dot_product_attention", "bmm", "baddbmm", "einsum", "_native_multi_head_attention"):
        raise c.error(node, "multiplies input-dependent values (attention, a bilinear map): no global Lipschitz "
                      "bound")
    raise c.error(node, "has no certified Lipschitz rule")


def _gather(c, node, shape) -> float:
    """``x[..., idx, ...]`` with constant indices selects entries: ``||S|| = sqrt(max copies of an entry)``,
    the copies counted by indexing the entries' own positions."""
    indices = list(node.args[1])
    if any(c.lip(i) > 0 for i in indices):
        raise c.error(node, "indexes with input-dependent indices: a step function")
    first = next((i for i, t in enumerate(indices) if t is not None), len(shape))
    c.within_samples(node, shape, first, "indexes across")
    x = c.value(node.args[0])
    ids = torch.arange(x.numel(), device=x.device).view(x.shape)
    picked = node.target(ids, [c.value(i) for i in indices])
    copies = torch.bincount(picked.reshape(-1), minlength=x.numel())
    return math.sqrt(float(copies.max())) * c.only_first(node)


def _permuted(node, name: str, rank: int) -> int:
    """The first dimension a permutation moves."""
    if name == "permute":
        order = [int(d) % rank for d in arg(node, 1, "dims")]
    elif name in ("transpose", "swapaxes", "swapdims"):
        a, b = int(node.args[1]) % rank, int(node.args[2]) % rank
        order = list(range(rank))
        order[a], order[b] = order[b], order[a]
    elif name == "movedim":
        return min(_dims(node.args[1], rank) + _dims(node.args[2], rank))
    else:
        order = list(range(rank - 2)) + [rank - 1, rank - 2] if rank >= 2 else [0]
    return next((i for i, d in enumerate(order) if d != i), rank)


def _mixing(c, node, name: str, shape) -> float:
    position = _MIXING[name]
    rank = len(shape)
    if position is None:
        first = 1
    elif name in ("max", "min", "amax", "amin") and arg(node, 1, "dim") in (None, [], ()):
        first = 0  # over every entry, the batch included
    elif name == "roll" and arg(node, 2, "dims") in (None, [], ()):
        first = 0
    else:
        first = min(_dims(arg(node, position, "dim", 0 if name in ("unbind", "slice", "select") else -1), rank))
    c.within_samples(node, shape, first, "acts across")
    return c.only_first(node)


def _activation(c, node, name: str) -> float:
    L = c.only_first(node)
    extra = list(node.args[1:])
    if name == "leaky_relu":
        module = nn.LeakyReLU(*extra[:1])
    elif name == "elu":  # scale * x above 0, scale * alpha * (exp(input_scale * x) - 1) below
        alpha, scale, input_scale = (extra + [1.0, 1.0, 1.0][len(extra):])[:3]
        return max(abs(scale), abs(scale * alpha * input_scale)) * L
    elif name == "gelu":
        module = nn.GELU(approximate=node.kwargs.get("approximate", extra[0] if extra else "none"))
    elif name == "softplus":
        module = nn.Softplus(*extra[:2])
    elif name == "celu":
        module = nn.CELU(*extra[:1])
    else:
        module = _ACTIVATIONS[name]()
    found = activation_lipschitz(module)
    if found is None:
        raise c.error(node, f"activation {module} has no certified slope")
    return found[0] * L


def _module(c, node, value) -> float:
    key = node.args[1]
    name, module = c.trace.modules[key]
    shape = c.shape(node.args[0])
    linear = isinstance(module, nn.Linear) or type(module).__name__ == "OrthogonalLinear"
    c.within_samples(node, shape, len(shape) - 1 if linear else 1, "acts across")
    result = module_bound(module, tuple(shape[1:]), tuple(value.shape[1:]))
    c.record(name or type(module).__name__, module, shape, value.shape, result)
    return result.lipschitz * c.only_first(node)


def _reduction(c, node, name: str, shape) -> float:
    dims = _dims(arg(node, 1, "dim"), len(shape))
    c.within_samples(node, shape, dims[0] if dims else 0, "reduces across")
    n = math.prod(shape[d] for d in dims)
    return c.only_first(node) * (1 / math.sqrt(n) if name == "mean" else math.sqrt(n))


def _norm(c, node, name: str, shape) -> float:
    order = 2.0 if name == "frobenius_norm" else arg(node, 1, "ord" if name.startswith("linalg") else "p", 2)
    order = 2.0 if order in (None, "fro") else order
    if not isinstance(order, (int, float)):
        raise c.error(node, f"is a {order!r} norm: only vector p-norms are bounded")
    order = float(order)
    dims = _dims(arg(node, 2, "dim") if name != "frobenius_norm" else arg(node, 1, "dim"), len(shape))
    c.within_samples(node, shape, dims[0] if dims else 0, "takes a norm across")
    n = math.prod(shape[d] for d in dims)
    if order < 1:
        raise c.error(node, f"is a {order}-norm: not Lipschitz for p < 1")
    return c.only_first(node) * (1.0 if order >= 2 else n ** (1 / order - 0.5))


def _sum(c, node, name: str, value) -> float:
    a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
    alpha = abs(float(node.kwargs.get("alpha", arg(node, 2, "alpha", 1))))
    out = tuple(value.shape)
    for operand in (a, b):
        if c.lip(operand) > 0:
            c.broadcast_within_samples(node, operand, out)
    scale_a, scale_b = (alpha, 1.0) if name == "rsub" else (1.0, alpha)  # rsub(a, b, alpha) = b - alpha a
    return scale_a * c.lip(a) * c.spread(a, value) + scale_b * c.lip(b) * c.spread(b, value)


def _scaled(c, node, name: str, value) -> float:
    a, b = node.args[0], node.args[1]
    divide = name.startswith("div")
    if c.lip(a) > 0 and c.lip(b) > 0:
        raise c.error(node, "a product of two input-dependent values has no global Lipschitz bound")
    if divide and c.lip(b) > 0:
        raise c.error(node, "divides by an input-dependent value: no global Lipschitz bound")
    if arg(node, 2, "rounding_mode") is not None:
        raise c.error(node, "rounds: a step function")
    var, const = (a, b) if c.lip(a) > 0 else (b, a)
    c.broadcast_within_samples(node, var, tuple(value.shape))
    factor = torch.as_tensor(c.value(const), dtype=torch.float64).abs()
    scale = float(1 / factor.min()) if divide else float(factor.max())
    return scale * c.lip(var) * c.spread(var, value)


def _cat(c, node, name: str, value) -> float:
    parts = list(node.args[0])
    dim = int(arg(node, 1, "dim", 0))
    rank = value.dim()
    first = dim % rank
    c.within_samples(node, tuple(value.shape), first, "joins across")
    plain = math.sqrt(sum(c.lip(p) ** 2 for p in parts))
    pieces = residual.disjoint_pieces_bound(c, node, parts, first)
    if pieces is None and any(op_name(p) in piecewise.KINKS for p in parts if isinstance(p, torch.fx.Node)):
        pieces = piecewise.certify(c, node, value)  # cat(relu(v), relu(-v)): one kink, not sqrt(2)
    return min(plain, pieces) if pieces is not None else plain


def _batch_norm(c, node) -> float:
    weight, var, eps = c.value(node.args[1]), c.value(node.args[4]), float(arg(node, 7, "eps", 1e-5))
    if var is None:
        raise c.error(node, "normalizes by the batch's own statistics: no fixed map")
    scale = (var.to(torch.float64) + eps).rsqrt()
    if isinstance(weight, Tensor):
        scale = scale * weight.to(torch.float64).abs()
    c.within_samples(node, c.shape(node.args[0]), 1, "acts across")
    return float(scale.max()) * c.only_first(node)
