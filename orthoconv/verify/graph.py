"""A certified Lipschitz bound of a whole network, composed along the graph of what it runs.

The model is traced on the example input (:mod:`orthoconv.verify.tracing`) and the graph is run once
node by node. Every value ``v`` has a bound ``L(v)`` with ``||v(x) - v(y)|| <= L(v) ||x - y||`` (one
sample, 2-norms): the input has ``L = 1``; a node none of whose arguments depends on the input (by
dataflow from the input) is a constant, ``L = 0``, evaluated once: parametrizations, weight
normalizations, AOL rescalings, Björck or power iterations, constants. Every input-dependent node gets
its rule from :mod:`orthoconv.verify.rules` (and :mod:`orthoconv.verify.residual`), or a ``TypeError``
naming the operation, the module that ran it and the user's source line: never a skipped node.

Soundness guards: an in-place write (``y.mul_(c)``, ``x += f(x)``, ``relu_``; seen by the version
counters of its arguments) also changes every live value that shares the mutated storage: the value it
returns gets the new bound, any other view ``L(old) + L(new)``. An input-dependent integer or bool
value (a cast, a comparison, indices) is a step function: any use of it is refused. Random draws in the
forward (``torch.Tag.nondeterministic_seeded``) are refused: the bound would hold for one draw. The
batch stays the leading factor of every input-dependent value (:mod:`orthoconv.verify.rules`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, fx, nn

from . import l2norm, piecewise
from .operators import OperatorBound
from .rules import bound
from .tracing import Trace, arg, op_name, release, source_line, trace_model


@dataclass
class LayerCall:
    """One measured operation: its name (module path, or ``path:op`` for an operation the module's code
    ran; ``#k`` for the k-th call), the module (or a type label), the shapes of one sample in and out,
    and what was certified."""

    name: str
    module: nn.Module | str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    bound: OperatorBound


@dataclass
class Composition:
    lipschitz: float
    layers: list[LayerCall] = field(default_factory=list)
    output: object = None
    method: str = "make_fx"


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


class Composer(fx.Interpreter):
    """Runs the traced graph once, recording shapes and bounds node by node (module docstring)."""

    def __init__(self, trace: Trace, batch: int, bar=None):
        super().__init__(trace.graph_module, garbage_collect_values=False)  # rules read earlier constants
        self.extra_traceback = False
        self.trace, self.batch, self.bar = trace, batch, bar
        self.L: dict[fx.Node, float] = {}
        self.steps: dict[fx.Node, str] = {}
        self.pending: dict[fx.Node, TypeError] = {}
        self.layers: list[LayerCall] = []
        self.calls: dict[str, int] = {}
        self.first_input = True

    # the interface of the rules
    def lip(self, arg) -> float:
        return self.L.get(arg, 0.0) if isinstance(arg, fx.Node) else 0.0

    def value(self, arg):
        return self.env[arg] if isinstance(arg, fx.Node) else arg

    def shape(self, arg) -> tuple[int, ...] | None:
        value = self.env.get(arg) if isinstance(arg, fx.Node) else None
        return tuple(value.shape) if isinstance(value, Tensor) else None

    def owner(self, node: fx.Node) -> str:
        return self.trace.owners.get(node, "") or "model"

    def error(self, node: fx.Node, message: str) -> TypeError:
        module = self.trace.owners.get(node, "")
        where = f" in module {module!r} ({self.trace.types.get(module, '?')})" if module else ""
        return TypeError(f"aten.{op_name(node)} (node {node.name}){where} at {source_line(node)}: {message}")

    def constant(self, node: fx.Node, arg, label: str) -> Tensor:
        if self.lip(arg) > 0:
            raise self.error(node, f"has an input-dependent {label}: a product of input-dependent values")
        return self.value(arg).detach()

    def only_first(self, node: fx.Node) -> float:
        first = node.args[0] if node.args else None
        varying = [a for a in node.all_input_nodes if self.lip(a) > 0]
        if any(a is not first for a in varying):
            raise self.error(node, "depends on the input through an argument other than its first: no rule")
        return self.lip(first)

    def within_samples(self, node: fx.Node, shape, first: int, verb: str) -> None:
        """``node`` mixes entries along dimensions ``first, first+1, ...`` of a value of ``shape``."""
        if shape is None:
            return
        if first < 1 or math.prod(shape[:first]) % self.batch:
            raise self.error(node, f"{verb} dimension {first} of a {tuple(shape)} value from a batch of "
                             f"{self.batch}: the batch must stay the leading factor (a per-sample map), samples "
                             "would mix or repeat")

    def broadcast_within_samples(self, node: fx.Node, operand, out: tuple[int, ...]) -> None:
        shape = self.shape(operand)
        if shape is None or tuple(shape) == tuple(out):
            return
        padded = (1,) * (len(out) - len(shape)) + tuple(shape)
        first = next(i for i, (a, b) in enumerate(zip(padded, out)) if a != b)
        self.within_samples(node, out, first, "broadcasts an input-dependent value along")

    def spread(self, arg, value) -> float:
        """``sqrt(m)``: each entry of a broadcast operand appears ``m`` times in the output."""
        shape = self.shape(arg)
        if shape is None or not isinstance(value, Tensor):
            return 1.0
        return math.sqrt(value.numel() / max(1, math.prod(shape)))

    def record(self, name: str, module, in_shape, out_shape, result: OperatorBound) -> None:
        count = self.calls[name] = self.calls.get(name, 0) + 1
        label = name if count == 1 else f"{name}#{count}"
        self.layers.append(LayerCall(label, module, tuple(in_shape[1:]), tuple(out_shape[1:]), result))
        if self.bar is not None:
            self.bar.update(1)

    # the run
    def run_node(self, node: fx.Node):
        if node.op == "call_function" and torch.Tag.nondeterministic_seeded in getattr(node.target, "tags", ()) \
                and not (op_name(node).endswith("dropout") and not arg(node, 2, "train", True)):
            raise self.error(node, "draws random numbers in the forward: the verified map would be one draw")
        arguments = [t for n in node.all_input_nodes for t in tensor_leaves(self.env.get(n))]
        versions = [_version(t) for t in arguments]
        value = super().run_node(node)
        if node.op == "placeholder":
            self.L[node] = 1.0 if self.first_input else 0.0
            self.first_input = False
            return value
        inputs = node.all_input_nodes
        blocked = [a for a in inputs if a in self.steps or a in self.pending]
        if blocked and node.op != "output":
            self._blocked(node, value, blocked[0])
        elif node.op == "output":
            self.L[node] = self._output(node.args[0])
        elif not any(self.lip(a) > 0 for a in inputs):
            self.L[node] = 0.0
        elif isinstance(value, Tensor) and not (value.is_floating_point() or value.is_complex()):
            self.steps[node] = (f"the {value.dtype} value of aten.{op_name(node)} (node {node.name}) at "
                                f"{source_line(node)}, an input-dependent step function (a cast, a comparison, "
                                "indices): no rule bounds what is built from it")
            self.L[node] = math.inf
        else:
            try:
                self.L[node] = bound(self, node, value)
            except TypeError as err:
                if not self._defers(node):
                    raise
                self.pending[node], self.L[node] = err, math.inf
        mutated = [t for t, v in zip(arguments, versions) if v is not None and _version(t) != v]
        if mutated:
            self._mutation(node, value, mutated)
        return value

    def _defers(self, node: fx.Node) -> bool:
        """Whether a node without a rule of its own may still be part of a certified structure
        (:mod:`orthoconv.verify.piecewise`, :mod:`orthoconv.verify.l2norm`): its users are such parts or
        the nodes that certify them (``cat``, ``sqrt``); the refusal is kept and raised if none does."""
        parts = piecewise.FORM_OPS | l2norm.TERM_OPS
        return node.op == "call_function" and op_name(node) in parts and not l2norm.is_root(node) and all(
            u.op == "call_function" and op_name(u) in parts | {"cat", "sqrt"} for u in node.users)

    def _blocked(self, node: fx.Node, value, first: fx.Node) -> None:
        """``node`` reads a step value (a mask) or a deferred node: certified as a whole, deferred, or refused."""
        self.env[node], self.L[node] = value, math.inf  # the certificates read the node itself
        if l2norm.is_root(node):
            found = l2norm.certify(self, node, value)
        else:
            found = None if self._defers(node) else piecewise.certify(self, node, value)
        if found is not None:
            self.L[node] = found
            return
        refusal = self.pending.get(first) or self.error(node, f"uses {self.steps.get(first)}")
        if not self._defers(node):
            raise refusal
        self.pending[node], self.L[node] = refusal, math.inf

    def _mutation(self, node: fx.Node, value, mutated: list[Tensor]) -> None:
        """``node`` wrote into ``mutated`` in place: every live value sharing their storage changes."""
        storages = {_storage(t) for t in mutated}
        new = self.L[node]
        results = list(tensor_leaves(value))
        for other, held in self.env.items():
            if other is node or not any(_storage(t) in storages for t in tensor_leaves(held)):
                continue
            whole = isinstance(held, Tensor) and any(_same_view(held, r) for r in results)
            self.L[other] = new if whole else self.lip(other) + new

    def _output(self, result) -> float:
        leaves = []
        fx.node.map_arg(result, lambda n: leaves.append(n))
        for n in leaves:
            if n in self.steps:
                raise TypeError(f"the model returns {self.steps[n]}")
            if n in self.pending:
                raise self.pending[n]
            shape = self.shape(n)
            if self.lip(n) > 0 and (not shape or shape[0] != self.batch):
                raise TypeError(f"the output {n.name} has shape {shape} from a batch of {self.batch}: its first "
                                "dimension must stay the batch (a per-sample map)")
        return math.sqrt(sum(self.lip(n) ** 2 for n in leaves))


def compose(model: nn.Module, x: Tensor, bar=None) -> Composition:
    """Trace ``model`` on ``x`` and compose the certified bound along what runs (module docstring)."""
    trace = trace_model(model, x.clone())
    try:
        composer = Composer(trace, x.shape[0], bar)
        with torch.no_grad():
            output = composer.run(x)
    finally:
        release(trace)
    out_node = next(n for n in reversed(trace.graph_module.graph.nodes) if n.op == "output")
    return Composition(composer.L[out_node], composer.layers, output, "make_fx")
