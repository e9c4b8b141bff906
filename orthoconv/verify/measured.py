"""Rules that measure an operator of a traced model exactly: convolutions and matrices with constant
weights (through :func:`orthoconv.verify.operators.module_bound`, the code path of every module and of
``orthoconv.math.spectral``), pooling, and separable upsampling. See :mod:`orthoconv.verify.rules`."""

from __future__ import annotations

import torch
from torch import nn

from .operators import conv_bound, module_bound
from .tracing import arg, op_name

POOLS = {"avg_pool1d": nn.AvgPool1d, "avg_pool2d": nn.AvgPool2d, "avg_pool3d": nn.AvgPool3d,
          "adaptive_avg_pool1d": nn.AdaptiveAvgPool1d, "adaptive_avg_pool2d": nn.AdaptiveAvgPool2d,
          "adaptive_avg_pool3d": nn.AdaptiveAvgPool3d, "max_pool1d": nn.MaxPool1d, "max_pool2d": nn.MaxPool2d,
          "max_pool3d": nn.MaxPool3d, "max_pool2d_with_indices": nn.MaxPool2d,
          "max_pool3d_with_indices": nn.MaxPool3d, "adaptive_max_pool1d": nn.AdaptiveMaxPool1d,
          "adaptive_max_pool2d": nn.AdaptiveMaxPool2d, "adaptive_max_pool3d": nn.AdaptiveMaxPool3d}
PADS = {"pad": None, "constant_pad_nd": "constant", "reflection_pad1d": "reflect", "reflection_pad2d": "reflect",
         "reflection_pad3d": "reflect", "replication_pad1d": "replicate", "replication_pad2d": "replicate",
         "replication_pad3d": "replicate", "_pad_circular": "circular"}
FUSABLE_PAD = {"pad", "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
                "replication_pad1d", "replication_pad2d", "replication_pad3d", "_pad_circular"}

def conv_module(c, node, name: str) -> tuple[nn.Module, object]:
    """The ``torch.nn`` convolution that computes ``node``, and the node whose value it reads (a padding
    node feeding only this convolution becomes the module's padding and mode)."""
    x, weight = node.args[0], c.constant(node, node.args[1], "weight")
    if name in ("convolution", "_convolution"):
        stride, padding, dilation, transposed, output_padding, groups = node.args[3:9]
    elif name.startswith("conv_transpose"):
        stride, padding, output_padding = arg(node, 3, "stride", 1), arg(node, 4, "padding", 0), arg(
            node, 5, "output_padding", 0)
        groups, dilation, transposed = arg(node, 6, "groups", 1), arg(node, 7, "dilation", 1), True
    else:
        stride, padding, dilation, groups = (arg(node, 3, "stride", 1), arg(node, 4, "padding", 0),
                                             arg(node, 5, "dilation", 1), arg(node, 6, "groups", 1))
        transposed, output_padding = False, 0
    dims = weight.dim() - 2
    mode, source = "zeros", x
    if not transposed and isinstance(x, torch.fx.Node) and op_name(x) in FUSABLE_PAD and len(x.users) == 1 \
            and padding in (0, [0] * dims, (0,) * dims, "valid"):
        pads = list(arg(x, 1, "pad"))
        pad_mode = PADS[op_name(x)] or arg(x, 2, "mode", "constant")
        pairs = [pads[2 * i: 2 * i + 2] for i in range(len(pads) // 2)][::-1]
        if len(pairs) == dims and all(p[0] == p[1] >= 0 for p in pairs):
            mode = {"constant": "zeros", "reflect": "reflect", "replicate": "replicate",
                    "circular": "circular"}[pad_mode] if any(p[0] for p in pairs) else "zeros"  # no padding
            padding, source = [p[0] for p in pairs], x.args[0]
    kind = {1: (nn.Conv1d, nn.ConvTranspose1d), 2: (nn.Conv2d, nn.ConvTranspose2d),
            3: (nn.Conv3d, nn.ConvTranspose3d)}[dims][int(bool(transposed))]
    k = tuple(weight.shape[2:])
    if transposed:
        module = kind(weight.shape[0], weight.shape[1] * groups, k, stride, padding, output_padding, groups,
                      bias=False, dilation=dilation, dtype=weight.dtype, device=weight.device)
    else:
        module = kind(weight.shape[1] * groups, weight.shape[0], k, stride, padding, dilation, groups, bias=False,
                      padding_mode=mode, dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        module.weight.copy_(weight)
    return module, source


def convolution(c, node, value) -> float:
    module, source = conv_module(c, node, op_name(node))
    if c.lip(node.args[1]) > 0:
        raise c.error(node, "convolves with an input-dependent kernel: a product of input-dependent values")
    shape = c.shape(source)
    c.within_samples(node, shape, 1, "acts across")
    result = conv_bound(module, tuple(shape[1:]), tuple(value.shape[1:]))
    c.record(f"{c.owner(node)}:{op_name(node)}", module, shape, value.shape, result)
    return result.lipschitz * c.lip(source)


def matrix(c, node, name: str, value) -> float:
    a, b = (node.args[1], node.args[2]) if name == "addmm" else (node.args[0], node.args[1])
    if name == "linear":
        varying, weight, right = a, c.constant(node, b, "weight").mT, True
    elif c.lip(a) > 0 and c.lip(b) > 0:
        raise c.error(node, "a product of two input-dependent values has no global Lipschitz bound")
    elif c.lip(a) > 0:
        varying, weight, right = a, c.constant(node, b, "matrix"), True
    else:
        varying, weight, right = b, c.constant(node, a, "matrix"), False
    if name == "addmm" and c.lip(node.args[0]) > 0:
        raise c.error(node, "its added term depends on the input: write it as a sum")
    if weight.dim() != 2:
        raise c.error(node, f"multiplies by a constant of shape {tuple(weight.shape)}: only matrices are bounded")
    shape = c.shape(varying)
    c.within_samples(node, shape, len(shape) - (1 if right else 2), "acts across")
    module = nn.Linear(weight.shape[0], weight.shape[1], bias=False, dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        module.weight.copy_(weight.mT if right else weight)
    result = module_bound(module, (weight.shape[0],), (weight.shape[1],))
    c.record(f"{c.owner(node)}:{name}", module, shape, value.shape, result)
    return result.lipschitz * c.lip(varying)


def pool(c, node, name: str, value) -> float:
    module_type = POOLS[name]
    args = list(node.args[1:])
    if module_type in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d):
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
        module = module_type(**dict(zip(names, args)))
    elif module_type in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d):
        names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
        module = module_type(**{k: v for k, v in zip(names, args) if not (k == "stride" and v in ([], None))})
    else:
        module = module_type(*args[:1])
    shape = c.shape(node.args[0])
    spatial = int(name[-2]) if name[-2].isdigit() else int(name.split("pool")[1][0])
    c.within_samples(node, shape, len(shape) - spatial, "pools across")
    out = value[0] if isinstance(value, (tuple, list)) else value
    result = module_bound(module, tuple(shape[1:]), tuple(out.shape[1:]))
    return result.lipschitz * c.only_first(node)


def upsample(c, node, value) -> float:
    """Exact norm of a separable interpolation (module docstring): ``prod_i sigma_max(A_i)``."""
    x = c.env[node.args[0]]
    spatial = x.dim() - 2
    c.within_samples(node, tuple(x.shape), 2, "interpolates across")
    norm = 1.0
    for axis in range(spatial):
        n = x.shape[2 + axis]
        basis = torch.zeros(n, 1, *x.shape[2:], dtype=torch.float64, device=x.device)
        index = [slice(None)] * basis.dim()
        for k in range(n):
            index[0], index[2 + axis] = k, k
            basis[tuple(index)] = 1.0
        out = node.target(basis, *node.args[1:], **node.kwargs)
        columns = out.movedim(2 + axis, -1).reshape(n, -1, out.shape[2 + axis])
        if not torch.allclose(columns, columns[:, :1], atol=1e-12):
            raise c.error(node, "is not separable along its axes: no exact rule")
        norm *= float(torch.linalg.matrix_norm(columns[:, 0].T, ord=2))
    return norm * c.only_first(node)
