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
