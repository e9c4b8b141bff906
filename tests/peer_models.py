"""Networks built as users of orthogonium and deel-torchlip build them (the ``peers`` extra), and the
dense truth of a model's Lipschitz constant at a point: the float64 Jacobian of a float64 copy."""

import copy

import torch
from torch import nn


def dense_jacobian_norm(model: nn.Module, x: torch.Tensor) -> float:
    """``||J(x)||_2`` of one sample, autograd through the model's own forward in float64."""
    model = copy.deepcopy(model).double().eval()
    sample = x[:1].double()
    jac = torch.autograd.functional.jacobian(lambda t: model(t).reshape(-1), sample)
    return float(torch.linalg.svdvals(jac.reshape(jac.shape[0], -1))[0])


def orthogonium_aoc(c=4):
    from orthogonium.layers import AdaptiveOrthoConv2d, MaxMin, OrthoLinear

    return nn.Sequential(AdaptiveOrthoConv2d(c, 8, 3, padding=1), MaxMin(), AdaptiveOrthoConv2d(8, 8, 2, stride=2, padding=0),
                         MaxMin(), nn.Flatten(), OrthoLinear(8 * 4 * 4, 10))


def orthogonium_aol(c=3):
    from orthogonium.layers import MaxMin, OrthoLinear
    from orthogonium.layers.conv.AOL.aol import AOLConv2D

    return nn.Sequential(AOLConv2D(c, 8, 3, padding=1), MaxMin(), AOLConv2D(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Flatten(), OrthoLinear(8 * 8 * 8, 10))


def orthogonium_sll(c=4, depth=3):
    from orthogonium.layers import OrthoLinear
    from orthogonium.layers.conv.SLL.sll_layer import SDPBasedLipschitzResBlock

    return nn.Sequential(*[SDPBasedLipschitzResBlock(c, 2) for _ in range(depth)], nn.Flatten(),
                         OrthoLinear(c * 8 * 8, 10))


def torchlip_net(c=3):
    from deel import torchlip

    return torchlip.Sequential(torchlip.SpectralConv2d(c, 8, 3, padding=1), torchlip.GroupSort2(),
                               torchlip.SpectralConv2d(8, 8, 3, padding=1), torchlip.GroupSort2(), nn.Flatten(),
                               torchlip.SpectralLinear(8 * 8 * 8, 10))


def folded_jacobian_norm(model: nn.Module, x: torch.Tensor) -> float:
    """``||J(x)||_2`` of one sample for models that refuse float64 (orthogonium): the model's own trace,
    its input-independent values folded in their dtype, then copied to float64, the rest run in float64."""
    from torch import fx

    from orthoconv.verify import tracing

    trace = tracing.trace_model(model.eval(), x[:1])
    try:
        for key, (_, module) in trace.modules.items():
            tracing._REGISTRY[key] = copy.deepcopy(module).double()

        def double(value):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return value.double()
            return type(value)(double(v) for v in value) if isinstance(value, (list, tuple)) else value

        class Folded(fx.Interpreter):
            def run_node(self, node):
                if node.target is torch._C._set_grad_enabled:  # the trace ran under no_grad: keep autograd on
                    return None
                if node.op != "placeholder" and not any(a in dependent for a in node.all_input_nodes):
                    return super().run_node(node)
                dependent.add(node)
                if node.target is torch.ops.orthoconv_verify.module.default:
                    return tracing._REGISTRY[node.args[1]](double(self.env[node.args[0]]))
                saved = {a: self.env[a] for a in node.all_input_nodes if a not in dependent}
                self.env.update({a: double(v) for a, v in saved.items()})
                try:
                    return super().run_node(node)
                finally:
                    self.env.update(saved)

        def run(t):
            dependent.clear()
            return Folded(trace.graph_module).run(t).reshape(-1)

        dependent = set()
        jac = torch.autograd.functional.jacobian(run, x[:1].double())
    finally:
        tracing.release(trace)
    return float(torch.linalg.svdvals(jac.reshape(jac.shape[0], -1))[0])


class TorchlipResidual(nn.Module):
    """deel-torchlip's ``LipResidual`` around a spectral convolution: ``alpha x + (1 - alpha) f(x)``."""

    def __init__(self, c=4):
        super().__init__()
        from deel import torchlip

        self.f = torchlip.SpectralConv2d(c, c, 3, padding=1)
        self.mix = torchlip.LipResidual()
        with torch.no_grad():
            self.mix.alpha.fill_(0.7)

    def forward(self, x):
        return self.mix(x, self.f(x))


def orthogonium_wrappers(c=4):
    """orthogonium's residual wrappers and centering layers around AOC convolutions and MaxMin."""
    from orthogonium.layers import AdaptiveOrthoConv2d, BatchCentering2D, LayerCentering2D, MaxMin
    from orthogonium.layers.residual import AdditiveResidual, ConcatResidual

    return nn.Sequential(ConcatResidual(nn.Sequential(AdaptiveOrthoConv2d(c // 2, c // 2, 3, padding=1), MaxMin())),
                         LayerCentering2D(c), AdditiveResidual(AdaptiveOrthoConv2d(c, c, 3, padding=1)),
                         BatchCentering2D(c), MaxMin())
