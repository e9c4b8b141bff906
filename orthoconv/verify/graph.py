"""A certified Lipschitz bound of a whole network, composed along its ``torch.fx`` graph.

Every value ``v`` the forward computes is a function ``v(x)`` of the model's input; its bound ``L(v)``
satisfies ``||v(x) - v(y)|| <= L(v) ||x - y||`` (one sample, 2-norms). The input has ``L = 1``; values
that do not depend on it (parameters, constants, shapes) have ``L = 0``. Then, node by node:

- a module or a 1-Lipschitz function applied to ``a``: ``L = Lip(op) L(a)``, with ``Lip(op)`` from
  :func:`orthoconv.verify.operators.module_bound` on the input size the node really receives;
- a sum or difference ``a +- b``: ``L(a) + L(b)`` (the triangle inequality; it holds whether or not
  the paths share their input, as in a residual ``x + f(x)``: ``1 + L(f)``); a broadcast operand copies
  each entry ``m`` times and contributes ``sqrt(m) L``;
- a concatenation or stack: ``sqrt(sum L_i^2)``, since ``||(a(x) - a(y), b(x) - b(y))||^2`` is the sum of
  the squares; a multiplication or division by a constant ``c``: ``max |c|`` (``1 / min |c|``);
- a mean over ``n`` entries ``1 / sqrt(n)``, a sum ``sqrt(n)``; views, reshapes, permutations, basic
  slicing and dtype/device casts 1.

An in-place operation (``y.mul_(c)``, ``x += f(x)``, ``nn.ReLU(inplace=True)``, ``out=``; seen by the
version counters of its arguments) also changes every value that shares the mutated storage: the value
it returns gets the new bound, any other view of that storage ``L(old) + L(new)`` (its entries are old
ones and new ones). Every input-dependent value must keep the input's batch size in its first dimension
(a per-sample map; broadcasting over samples or flattening them together is refused) and a floating
dtype (a cast to integers or bool is a step function). Any other operation on an input-dependent value
raises ``TypeError`` naming it. A model that ``torch.fx``
cannot trace is composed child by child where that is provably its forward (a plain ``nn.Sequential``),
and refused otherwise.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from .operators import OperatorBound, module_bound


@dataclass
class LayerCall:
    """One module call: its name (module path, ``#k`` for the k-th call of a reused module), the shapes
    of one sample in and out, and what :func:`module_bound` certified."""

    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    bound: OperatorBound


@dataclass
class Composition:
    lipschitz: float
    layers: list[LayerCall] = field(default_factory=list)
    output: object = None
    method: str = "fx"


class _Tracer(fx.Tracer):
    """Leaves: torch.nn and orthoconv.nn modules (bounded as a whole); plain ``nn.Sequential`` is traced."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if type(m).forward is nn.Sequential.forward:
            return False
        return m.__module__.startswith(("torch.nn", "torch.ao.nn", "orthoconv.nn.")) or super().is_leaf_module(m, qualname)


_PASS = {torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.squeeze, torch.unsqueeze, torch.movedim,
         torch.swapaxes, torch.swapdims, torch.t, F.pixel_shuffle, F.pixel_unshuffle, torch.narrow, torch.clone,
         torch.detach, operator.getitem, torch.chunk, torch.split, torch.unbind, torch.abs, torch.clamp, F.hardtanh,
         torch.relu, F.relu, F.relu6, torch.tanh, F.tanh, F.softsign, F.logsigmoid}
_PASS_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze", "t",
                 "view_as", "reshape_as", "float", "double", "half", "bfloat16", "to", "type", "type_as", "clone",
                 "detach", "chunk", "split", "unbind", "narrow", "movedim", "abs", "clamp", "clip", "relu", "relu_",
                 "tanh", "tanh_", "clamp_", "swapaxes"}
_ADD = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub, torch.subtract}
_ADD_METHODS = {"add", "add_", "sub", "sub_"}
_MUL = {operator.mul, operator.imul, torch.mul, torch.multiply}
_DIV = {operator.truediv, operator.itruediv, torch.div, torch.true_divide}
_CAT = {torch.cat, torch.concat, torch.concatenate, torch.stack}
_SHAPE_METHODS = {"size", "dim", "numel"}
_FUNCTIONAL_MODULES = {
    F.avg_pool1d: nn.AvgPool1d, F.avg_pool2d: nn.AvgPool2d, F.avg_pool3d: nn.AvgPool3d,
    F.adaptive_avg_pool1d: nn.AdaptiveAvgPool1d, F.adaptive_avg_pool2d: nn.AdaptiveAvgPool2d,
    F.adaptive_avg_pool3d: nn.AdaptiveAvgPool3d, F.max_pool1d: nn.MaxPool1d, F.max_pool2d: nn.MaxPool2d,
    F.max_pool3d: nn.MaxPool3d, F.adaptive_max_pool2d: nn.AdaptiveMaxPool2d, torch.sigmoid: nn.Sigmoid,
    F.sigmoid: nn.Sigmoid, F.leaky_relu: nn.LeakyReLU, F.elu: nn.ELU, F.gelu: nn.GELU, F.silu: nn.SiLU,
    F.hardswish: nn.Hardswish, F.hardsigmoid: nn.Hardsigmoid, F.softplus: nn.Softplus, F.celu: nn.CELU,
    F.dropout: None, F.dropout2d: None,
}
_METHOD_MODULES = {"sigmoid": nn.Sigmoid, "sigmoid_": nn.Sigmoid}
_UNKNOWN = object()


def _op_name(node: fx.Node) -> str:
    target = node.target
    label = target if isinstance(target, str) else getattr(target, "__qualname__", getattr(target, "__name__", target))
    stack = node.meta.get("nn_module_stack")
    where = f" in {list(stack)[-1]}" if stack else ""
    return f"{node.op} {label!s} (node {node.name}{where})"


def _numel_per_sample(shape) -> int:
    return math.prod(shape[1:]) if len(shape) > 1 else 1


def _holds_tensor(value) -> bool:
    if isinstance(value, Tensor):
        return True
    return isinstance(value, (tuple, list)) and not isinstance(value, torch.Size) and any(
        _holds_tensor(v) for v in value)


def _dim_arg(node: fx.Node, default):
    return node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else default)


def tensor_leaves(value):
    """Every tensor in ``value`` (a tensor, or tuples, lists and dicts of them), depth first."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from tensor_leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensor_leaves(v)


def _version(tensor: Tensor) -> int | None:
    try:
        return tensor._version
    except RuntimeError:  # an inference-mode tensor keeps no version counter
        return None


def _storage(tensor: Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def _same_view(a: Tensor, b: Tensor) -> bool:
    return (a.data_ptr(), a.shape, a.stride(), a.dtype) == (b.data_ptr(), b.shape, b.stride(), b.dtype)


def _basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


class _Composer(fx.Interpreter):
    """Runs the traced graph once on the example input, recording shapes and bounds node by node."""

    def __init__(self, gm: fx.GraphModule, prefix: str, bar=None):
        super().__init__(gm)
        self.prefix = prefix
        self.bar = bar
        self.L: dict[fx.Node, float] = {}
        self.shapes: dict[fx.Node, object] = {}
        self.layers: list[LayerCall] = []
        self.calls: dict[str, int] = {}
        self.first_input = True
        self.batch: int | None = None

    def lip(self, arg) -> float:
        return self.L.get(arg, 0.0) if isinstance(arg, fx.Node) else 0.0

    def run_node(self, node: fx.Node):
        arguments = [t for n in node.all_input_nodes for t in tensor_leaves(self.env.get(n))]
        versions = [_version(t) for t in arguments]
        with torch.no_grad():
            value = super().run_node(node)
        self.shapes[node] = value.shape if isinstance(value, Tensor) else None
        if node.op == "placeholder":
            self.L[node] = 1.0 if self.first_input else 0.0
            if self.first_input:
                self.batch = value.shape[0]
            self.first_input = False
            return value
        inputs = node.all_input_nodes
        if node.op in ("get_attr", "output") or not any(self.lip(a) > 0 for a in inputs):
            if node.op == "output":
                self.L[node] = self._output(node.args[0])
            else:
                self.L[node] = 0.0
        else:
            self.L[node] = self._bound(node, value)
            self._check_per_sample(node, value)
        mutated = [t for t, v in zip(arguments, versions) if v is not None and _version(t) != v]
        if mutated:
            self._mutation(node, value, mutated)
        return value

    def _check_per_sample(self, node: fx.Node, value) -> None:
        for t in tensor_leaves(value):
            if t.dim() == 0 or t.shape[0] != self.batch:
                raise TypeError(f"{_op_name(node)} gives shape {tuple(t.shape)} from a batch of {self.batch}: the "
                                "first dimension must stay the batch (a per-sample map), samples would mix or repeat")
            if not (t.is_floating_point() or t.is_complex()):
                raise TypeError(f"{_op_name(node)} casts an input-dependent value to {t.dtype}: a step function, "
                                "not Lipschitz")

    def _mutation(self, node: fx.Node, value, mutated: list[Tensor]) -> None:
        """``node`` wrote into ``mutated`` in place: every live value sharing their storage changes."""
        storages = {_storage(t) for t in mutated}
        new = self.L[node]
        results = list(tensor_leaves(value))
        for other, held in self.env.items():
            if other is node:
                continue
            tensors = list(tensor_leaves(held))
            if not any(_storage(t) in storages for t in tensors):
                continue
            whole = isinstance(held, Tensor) and any(_same_view(held, r) for r in results)
            self.L[other] = new if whole else self.lip(other) + new

    def _output(self, result) -> float:
        leaves = []
        fx.node.map_arg(result, lambda n: leaves.append(self.lip(n)))
        return math.sqrt(sum(v * v for v in leaves))

    def _only_first_varies(self, node: fx.Node) -> float:
        varying = [a for a in node.all_input_nodes if self.lip(a) > 0]
        first = node.args[0] if node.args else None
        if varying != [first]:
            raise TypeError(f"{_op_name(node)}: only its first argument may depend on the input")
        return self.lip(first)

    def _spread(self, arg, out_shape) -> float:
        """``sqrt(m)``: each entry of a broadcast operand appears ``m`` times in the output."""
        shape = self.shapes.get(arg)
        return math.sqrt(_numel_per_sample(out_shape) / _numel_per_sample(shape)) if shape is not None else 1.0

    def _bound(self, node: fx.Node, value) -> float:
        if node.op == "call_module":
            return self._module(node, value)
        target = node.target
        out_shape = value.shape if isinstance(value, Tensor) else None
        if node.op == "call_method" and target in ("item", "tolist"):
            raise TypeError(f"{_op_name(node)} reads input values: no Lipschitz bound")
        if node.op == "call_method" and target in _SHAPE_METHODS or not _holds_tensor(value):
            return 0.0
        if target is operator.getitem and not isinstance(self.shapes.get(node.args[0]), type(None)):
            if not _basic_index(node.args[1]):
                raise TypeError(f"{_op_name(node)}: advanced indexing may repeat entries; only basic slicing is bounded")
        if target in _PASS or (node.op == "call_method" and target in _PASS_METHODS):
            return self._only_first_varies(node)
        if target in _ADD or (node.op == "call_method" and target in _ADD_METHODS):
            alpha = abs(node.kwargs.get("alpha", 1))
            a, b = node.args[0], node.args[1]
            return self.lip(a) * self._spread(a, out_shape) + alpha * self.lip(b) * self._spread(b, out_shape)
        if target is operator.neg or target is torch.neg or (node.op == "call_method" and target == "neg"):
            return self._only_first_varies(node)
        if target in _MUL or (node.op == "call_method" and target in ("mul", "mul_")):
            return self._scaled(node, out_shape, divide=False)
        if target in _DIV or (node.op == "call_method" and target in ("div", "div_")):
            return self._scaled(node, out_shape, divide=True)
        if target in _CAT:
            parts = node.args[0]
            rank = len(self.shapes[next(p for p in parts if self.lip(p) > 0)])
            if _dim_arg(node, 0) % (rank + (target is torch.stack)) == 0:
                raise TypeError(f"{_op_name(node)} joins along the batch dimension: samples would mix")
            return math.sqrt(sum(self.lip(p) ** 2 for p in parts))
        if target in (torch.mean, torch.sum) or (node.op == "call_method" and target in ("mean", "sum")):
            return self._reduction(node, out_shape, mean=target in (torch.mean, "mean"))
        table = _METHOD_MODULES if node.op == "call_method" else _FUNCTIONAL_MODULES
        module_type = table.get(target, _UNKNOWN) if isinstance(target, str) == (node.op == "call_method") else _UNKNOWN
        if module_type is None:
            if node.kwargs.get("training", node.args[2] if len(node.args) > 2 else True):
                raise TypeError(f"{_op_name(node)} drops units (training=True): not a fixed map")
            return self._only_first_varies(node)
        if module_type is not _UNKNOWN:
            module = _functional_module(module_type, node)
            shape = self.shapes[node.args[0]]
            return module_bound(module, tuple(shape[1:]), tuple(out_shape[1:])).lipschitz * self._only_first_varies(node)
        raise TypeError(f"no certified Lipschitz bound for {_op_name(node)}")

    def _scaled(self, node: fx.Node, out_shape, divide: bool) -> float:
        a, b = node.args[0], node.args[1]
        if self.lip(a) > 0 and self.lip(b) > 0:
            raise TypeError(f"{_op_name(node)}: a product of two input-dependent values has no global Lipschitz bound")
        if divide and self.lip(b) > 0:
            raise TypeError(f"{_op_name(node)}: dividing by an input-dependent value has no global Lipschitz bound")
        var, const = (a, b) if self.lip(a) > 0 else (b, a)
        c = self.env[const] if isinstance(const, fx.Node) else const
        c = torch.as_tensor(c, dtype=torch.float64).abs()
        factor = float(1 / c.min()) if divide else float(c.max())
        return factor * self.lip(var) * self._spread(var, out_shape)

    def _reduction(self, node: fx.Node, out_shape, mean: bool) -> float:
        L = self._only_first_varies(node)
        shape = self.shapes[node.args[0]]
        n = _numel_per_sample(shape) / max(1, _numel_per_sample(out_shape) if out_shape is not None else 1)
        dims = _dim_arg(node, None)
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if dims in ((None,), ()) or any(d % len(shape) == 0 for d in dims):
            raise TypeError(f"{_op_name(node)} reduces over the batch dimension: samples would mix")
        return L * (1 / math.sqrt(n) if mean else math.sqrt(n))

    def _module(self, node: fx.Node, value) -> float:
        module = self.fetch_attr(node.target)
        L_in = self._only_first_varies(node)
        in_shape = self.shapes[node.args[0]]
        name = self.prefix + node.target
        count = self.calls[name] = self.calls.get(name, 0) + 1
        if count > 1:
            name = f"{name}#{count}"
        bound = module_bound(module, tuple(in_shape[1:]), tuple(value.shape[1:]))
        if self.bar is not None:
            self.bar.update(1)
        self.layers.append(LayerCall(name, module, tuple(in_shape[1:]), tuple(value.shape[1:]), bound))
        return bound.lipschitz * L_in


def _functional_module(module_type: type, node: fx.Node) -> nn.Module:
    args, kwargs = node.args[1:], dict(node.kwargs)
    if module_type in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d):
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
        kwargs.update(zip(names, args))
        if kwargs.pop("return_indices", False):
            raise TypeError(f"{_op_name(node)} returns indices: not bounded")
        return module_type(**kwargs)
    kwargs.pop("inplace", None)
    return module_type(*args, **kwargs)


def _plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def compose(module: nn.Module, x: Tensor, prefix: str = "", bar=None) -> Composition:
    """Run ``module`` once on ``x`` and compose the certified bound along its graph (module docstring);
    ``bar`` (a tqdm bar) advances by one per module call. A torch.nn or orthoconv.nn module is one layer."""
    if _Tracer().is_leaf_module(module, ""):
        return _compose_sequential(nn.Sequential(module), x, prefix.rstrip(".") or type(module).__name__, bar, root=True)
    try:
        gm = fx.GraphModule(module, _Tracer().trace(module))
    except Exception as err:  # torch.fx raises many types for untraceable code
        if not _plain_sequential(module):
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise TypeError(f"{prefix.rstrip('.') or type(module).__name__}: torch.fx cannot trace it ({first}) and it "
                            "is not a plain nn.Sequential, so no composition is provably its forward") from None
        return _compose_sequential(module, x, prefix, bar)
    composer = _Composer(gm, prefix, bar)
    output = composer.run(x)
    out_node = next(n for n in reversed(gm.graph.nodes) if n.op == "output")
    return Composition(composer.L[out_node], composer.layers, output, "fx")


def _compose_sequential(module: nn.Sequential, x: Tensor, prefix: str, bar=None, root: bool = False) -> Composition:
    total, layers = 1.0, []
    for name, child in module.named_children():
        name = "" if root else name
        if child.__module__.startswith(("torch.nn", "orthoconv.nn.")) and not _plain_sequential(child):
            with torch.no_grad():
                y = child(x)
            bound = module_bound(child, tuple(x.shape[1:]), tuple(y.shape[1:]))
            if bar is not None:
                bar.update(1)
            layers.append(LayerCall(prefix + name, child, tuple(x.shape[1:]), tuple(y.shape[1:]), bound))
            lipschitz = bound.lipschitz
        else:
            sub = compose(child, x, f"{prefix}{name}.", bar)
            layers.extend(sub.layers)
            lipschitz, y = sub.lipschitz, sub.output
        total *= lipschitz
        x = y
    return Composition(total, layers, x, "sequential")
