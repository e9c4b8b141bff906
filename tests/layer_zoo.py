"""Every orthoconv layer, small, with an input it accepts: the fixtures of the cross-layer tests."""

import torch

import orthoconv as oc

SIZE = (5, 4)

# name -> (build(**factory), input shape without the batch)
LAYERS = {
    "BCOP": (lambda **f: oc.BCOP(3, 4, 3, **f), (3, *SIZE)),
    "RKO": (lambda **f: oc.RKO(3, 4, 2, **f), (3, *SIZE)),
    "OSSN": (lambda **f: oc.OSSN(3, 4, 3, input_size=SIZE, **f), (3, *SIZE)),
    "SVCM": (lambda **f: oc.SVCM(3, 4, 3, input_size=SIZE, **f), (3, *SIZE)),
    "RKL2NE": (lambda **f: oc.RKL2NE(3, 4, 3, **f), (3, *SIZE)),
    "CayleyConv": (lambda **f: oc.CayleyConv(3, 4, 3, input_size=SIZE, **f), (3, *SIZE)),
    "SOC": (lambda **f: oc.SOC(3, 4, 3, **f), (3, *SIZE)),
    "StridedBCOP": (lambda **f: oc.StridedBCOP(2, 8, 3, 2, **f), (2, 4, 6)),
    "OrthogonalLinear": (lambda **f: oc.OrthogonalLinear(5, 3, **f), (5,)),
    "LOT": (lambda **f: oc.LOT(3, 4, 3, **f), (3, *SIZE)),
    "BRO": (lambda **f: oc.BRO(4, 3, 3, **f), (4, *SIZE)),
    "BCOPTranspose": (lambda **f: oc.BCOPTranspose(6, 2, 3, 2, **f), (6, 3, 2)),
    "AOL": (lambda **f: oc.AOL(3, 4, 3, **f), (3, *SIZE)),
    "CPL": (lambda **f: oc.CPL(3, 3, 3, inner_channels=4, **f), (3, *SIZE)),
    "SLL": (lambda **f: oc.SLL(3, 3, 2, padding_mode="zeros", **f), (3, *SIZE)),
}
NONLINEAR = ("CPL", "SLL")  # 1-Lipschitz residual layers: kernel() is their inner kernel; Sandwich has none
PARAMETERLESS = {
    "InvertibleDownsampling": (lambda **f: oc.InvertibleDownsampling(2), (3, 4, 6)),
    "GroupSort": (lambda **f: oc.GroupSort(2), (4, 3, 3)),
    "MaxMin": (lambda **f: oc.MaxMin(), (4, 3, 3)),
}
CONV_LAYERS = [name for name in LAYERS if name != "OrthogonalLinear" and name not in NONLINEAR]
SIZED = ("LOT", "BRO")  # their operator (and kernel) depends on the input's size


def kernel_of(layer, name):
    """``layer.kernel()``, on the zoo's input size for the layers whose kernel depends on it."""
    return layer.kernel(LAYERS[name][1][1:]) if name in SIZED else layer.kernel()


def build(name, seed=0, **factory):
    torch.manual_seed(seed)
    return {**LAYERS, **PARAMETERLESS}[name][0](**factory)


def example_input(name, batch=2, seed=1, **factory):
    shape = {**LAYERS, **PARAMETERLESS}[name][1]
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed)).to(**factory)


def rebuilt(layer):
    """An independent copy: rebuilt from ``layer.config()`` and loaded from its ``state_dict``."""
    first = next(layer.parameters())
    bias = getattr(layer, "bias", getattr(getattr(layer, "conv", None), "bias", None))
    copy = oc.nn.from_config(layer.config(), bias=bias is not None, device=first.device, dtype=first.dtype)
    copy.load_state_dict(layer.state_dict())
    return copy.train(layer.training)
