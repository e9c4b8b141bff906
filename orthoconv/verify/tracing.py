"""What a model computes on one example input: the graph of the ATen operations that really run.

The model is traced with ``torch.fx.experimental.proxy_tensor.make_fx`` in **real** mode with
``pre_dispatch=True``. Why this tracer:

- real mode runs the model on the example's real values: Python control flow on *weights* (Björck or
  power-iteration loops that stop at a tolerance, AOL rescalings, parametrizations, caches) runs as the
  model runs it and leaves its operations in the graph, where :mod:`orthoconv.verify.graph` folds them
  into constants; ``torch.export`` traces with fake tensors and cannot decide such branches;
- what the graph records is what executes: replaced ``forward`` methods, forward hooks and
  parametrizations are traced like any other code, so they need no refusal; Python branches on *shapes*
  are resolved for the example's shape (the bound then holds for inputs of that shape);
- pre-dispatch ATen ops (``aten.conv2d``, ``aten.linear``, ``aten.pad`` with its mode,
  ``aten.softmax``, ``aten.upsample_nearest2d``) keep the operators whole, so each gets an exact rule;
- a branch on *input* values calls ``aten.item``/``aten._local_scalar_dense`` on an input-dependent
  tensor: recorded (``_error_on_data_dependent_ops=False``) and refused by name.

Modules of ``torch.nn`` and ``orthoconv.nn`` that have an exact module rule
(:func:`orthoconv.verify.operators.module_bound`: orthoconv layers through ``kernel()``, convolutions
with their padding mode, SOC measured from its forward, the nonlinear CPL/SLL/Sandwich through their own
certified ``lipschitz_bound``) are kept whole as one ``orthoconv_verify::module``
node, provided their class is the library's own, unparametrized, with nothing replaced on the instance.
Every node is tagged with the path of the module that created it and the user's source line.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.fx.experimental.proxy_tensor import get_proxy_mode, make_fx
from torch.nn.modules import module as module_globals
from torch.nn.utils import parametrize

from ..nn import (
    OSSN,
    SOC,
    BCOPTranspose,
    CayleyConv,
    FirstChannels,
    FourierConv2d,
    GlobalMaxPool,
    GroupSort,
    InvertibleDownsampling,
    KernelConv2d,
    Normalize,
    OrthogonalLinear,
    StridedBCOP,
    ZeroChannelPad,
)
from .operators import (
    _AVG_POOL,
    _BATCH_NORM,
    _MAX_POOL,
    _ONE_LIPSCHITZ,
    _PAD,
    _PERMUTATION,
    CONV_TYPES,
)

_LEAF_TYPES = (*CONV_TYPES, nn.Linear, OrthogonalLinear, *_BATCH_NORM, *_AVG_POOL, *_MAX_POOL, *_PAD,
               *_PERMUTATION, *_ONE_LIPSCHITZ, Normalize, ZeroChannelPad, FirstChannels, GlobalMaxPool, GroupSort,
               nn.LeakyReLU, nn.PReLU, nn.ELU, nn.Softplus, nn.CELU, nn.SELU, nn.Sigmoid, nn.Hardsigmoid,
               nn.Hardswish, nn.GELU, nn.SiLU)
_ORTHOCONV_FORWARDS = (KernelConv2d, CayleyConv, OSSN, SOC, StridedBCOP, OrthogonalLinear, FirstChannels,
                       GlobalMaxPool, GroupSort, InvertibleDownsampling, Normalize, ZeroChannelPad, BCOPTranspose,
                       FourierConv2d)
_REGISTRY: dict[int, nn.Module] = {}
_KEYS = itertools.count()


@torch.library.custom_op("orthoconv_verify::module", mutates_args=())
def module_call(x: Tensor, key: int) -> Tensor:
    """One call of a kept-whole module (registered under ``key`` while a trace runs)."""
    module = _REGISTRY[key]
    y = type(module).forward(module, x)
    return y.clone() if y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() else y


@dataclass
class Trace:
    """The traced graph, the kept-whole modules by key (name, module), and per node the module path
    that created it."""

    graph_module: torch.fx.GraphModule
    modules: dict[int, tuple[str, nn.Module]] = field(default_factory=dict)
    owners: dict[torch.fx.Node, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)


def kept_whole(module: nn.Module) -> bool:
    """Whether ``module`` is one node of the trace (module docstring): the class that defines its
    ``forward`` must itself be one with a module rule (a subclass with its own forward, such as a residual
    layer built on a convolution, is traced through)."""
    cls = type(module)
    owner = next((k for k in cls.__mro__ if "forward" in vars(k)), None)
    own_certificate = getattr(module, "nonlinear", False) is True and getattr(owner, "__module__", "").startswith(
        "orthoconv.nn.")  # CPL, SLL, Sandwich: module_bound reads their lipschitz_bound
    trusted = (owner in _ORTHOCONV_FORWARDS or own_certificate
               or getattr(owner, "__module__", "").startswith("torch.nn.modules")) and \
        getattr(cls.forward, "__module__", "").startswith(("torch.nn.modules", "orthoconv.nn"))
    return (cls.__module__.startswith(("torch.nn.modules", "orthoconv.nn")) and isinstance(module, _LEAF_TYPES)
            and trusted and not parametrize.is_parametrized(module) and not any(callable(v) for v in vars(module).values()))


def source_line(node: torch.fx.Node) -> str:
    """The innermost frame of the user's code (not torch's, not orthoconv.verify's) that made ``node``."""
    trace = node.meta.get("stack_trace") or ""
    lines = trace.strip().splitlines()
    frames = [(lines[i].strip(), lines[i + 1].strip() if i + 1 < len(lines) else "")
              for i in range(len(lines)) if lines[i].strip().startswith("File ")]
    user = [f for f in frames if "/torch/" not in f[0] and "orthoconv/verify/" not in f[0]]
    chosen = (user or frames or [("", "")])[-1]
    if not chosen[0]:
        return "unknown source"
    location = chosen[0].replace("File ", "").replace('"', "")
    return f"{location}: {chosen[1]}" if chosen[1] else location


def _caller(key: int):
    return lambda inp: module_call(inp, key)


def trace_model(model: nn.Module, x: Tensor) -> Trace:
    """Trace ``model(x)`` (module docstring); the model and its instance attributes are left as they were."""
    names = {id(m): n for n, m in model.named_modules()}
    result = Trace(None, types={n: type(m).__name__ for n, m in model.named_modules()})
    stack: list[str] = []
    seen = [None]

    def tag():
        mode = get_proxy_mode()
        if mode is None:
            return
        nodes = mode.tracer.graph.nodes
        owner = stack[-1] if stack else ""
        for node in reversed(nodes):
            if node is seen[0]:
                break
            result.owners[node] = owner
        seen[0] = next(iter(reversed(nodes)), None)

    def pre(module, args):
        tag()
        stack.append(names.get(id(module), stack[-1] if stack else ""))

    def post(module, args, out):
        tag()
        if stack:
            stack.pop()

    wrapped = []
    for name, module in model.named_modules():
        if kept_whole(module) and "forward" not in vars(module):
            key = next(_KEYS)
            _REGISTRY[key] = module
            result.modules[key] = (name, module)
            module.forward = _caller(key)
            wrapped.append(module)
    hooks = [module_globals.register_module_forward_pre_hook(pre),
             module_globals.register_module_forward_hook(post)]
    try:
        with torch.no_grad():
            result.graph_module = make_fx(lambda inp: model(inp), pre_dispatch=True, record_stack_traces=True,
                                          _error_on_data_dependent_ops=False)(x)
    except ValueError:  # the model's own refusal of this input (a layer built for another size): its words
        release(result)
        raise
    except Exception as err:  # the tracer's errors, of many types
        release(result)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TypeError(f"tracing {type(model).__name__} on an input of shape {tuple(x.shape)} failed "
                        f"({type(err).__name__}: {first}): no graph of what it runs") from err
    finally:
        for hook in hooks:
            hook.remove()
        for module in wrapped:
            del module.forward
    for node in result.graph_module.graph.nodes:
        result.owners.setdefault(node, "")
    return result


def release(trace: Trace) -> None:
    """Forget the kept-whole modules of a finished trace."""
    for key in trace.modules:
        _REGISTRY.pop(key, None)


def op_name(node) -> str:
    """The ATen operator's name (``max.other`` / ``min.other`` are ``maximum`` / ``minimum``)."""
    target = node.target
    packet = getattr(target, "overloadpacket", None)
    if packet is None:
        return getattr(target, "__name__", str(target))
    if packet.__name__ in ("max", "min") and target._overloadname == "other":
        return {"max": "maximum", "min": "minimum"}[packet.__name__]
    return packet.__name__


def arg(node, index: int, name: str, default=None):
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)
