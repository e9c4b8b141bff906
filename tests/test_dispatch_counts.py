"""What a training step asks of the device, counted below autograd on the CPU (the same operations run on CUDA):
no host synchronization in any layer's forward and backward, and the aten operations (each at least one kernel
launch on a GPU) within budgets. The budgets are this code's counts (torch 2.13) rounded up: the code of issue 21's
first round dispatched 0 synchronizations and 227 to 1349 operations per Small network
(bcop/rko/ossn/svcm/soc/cayley/rkl2ne/conv/lot/bro/aol/cpl/sll/sandwich:
425/319/529/227/976/784/429/271/814/840/325/1349/511/772), and the code before it 4 to 8 synchronizations and
(bcop/rko/ossn/svcm/soc/cayley/rkl2ne/conv) 670/382/564/258/1007/827/463/302; a BCOP(32, 32, 3) kernel 254, then
135."""

import pytest
import torch

import orthoconv as oc
from orthoconv.math.conv import pad
from orthoconv.networks import CONV_LAYERS
from orthoconv.nn._precision import in_forward
from orthoconv.nn.dispatch import count_dispatch

from layer_zoo import LAYERS, build, example_input

SMALL_BUDGET = {"bcop": 375, "rko": 270, "ossn": 375, "svcm": 185, "soc": 575, "cayley": 400, "rkl2ne": 385,
                "conv": 230, "lot": 550, "bro": 595, "aol": 285, "cpl": 1000, "sll": 430, "sandwich": 580}


def counted_step(model, x):
    """Counts of one forward and backward (after a first one: lazy initializations are not the steady state)."""
    model(x).square().mean().backward()
    model.zero_grad(set_to_none=True)
    with count_dispatch() as count:
        model(x).square().mean().backward()
    return count


@pytest.mark.parametrize("layer", CONV_LAYERS)
def test_the_small_network_never_synchronizes_and_keeps_its_operation_budget(layer):
    torch.manual_seed(0)
    count = counted_step(oc.networks.build("small", layer, 3, 32, 10), torch.randn(16, 3, 32, 32))
    assert count.syncs == 0, dict(count.sync_names)
    assert count.ops <= SMALL_BUDGET[layer]


@pytest.mark.parametrize("layer", CONV_LAYERS)
def test_the_large_network_never_synchronizes(layer):
    torch.manual_seed(0)
    count = counted_step(oc.networks.build("large", layer, 1, 8, 3), torch.randn(2, 1, 8, 8))
    assert count.syncs == 0, dict(count.sync_names)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_never_synchronizes(name):
    """Held-out shapes: the layer zoo's small layers (odd channels, rectangular images, strides, isometries)."""
    count = counted_step(build(name).train(), example_input(name))
    assert count.syncs == 0, dict(count.sync_names)


@pytest.mark.parametrize("k, c_in, c_out", [(3, 32, 32), (5, 6, 4), (4, 3, 7), (1, 5, 5)])
def test_a_bcop_kernel_is_built_in_few_operations(k, c_in, c_out):
    """BCOP(32, 32, 3): at most 135 operations forward and backward (254, then 135 before); other shapes: no sync."""
    layer = oc.BCOP(c_in, c_out, k)
    with in_forward():  # as inside the layer's forward: the finite check defers
        layer.kernel().sum().backward()
        layer.zero_grad(set_to_none=True)
        with count_dispatch() as count:
            layer.kernel().sum().backward()
    assert count.syncs == 0, dict(count.sync_names)
    if (k, c_in, c_out) == (3, 32, 32):
        assert count.ops <= 135


def test_kernel_called_by_the_user_checks_at_once():
    """Outside a forward the host is about to read the kernel: its check reads the device, once."""
    layer = oc.BCOP(4, 4, 3)
    with count_dispatch() as count:
        layer.kernel()
    assert count.syncs == 1


@pytest.mark.parametrize("pads, budget", [((1, 1, 1, 1), 23), ((0, 1, 0, 1), 15), ((3, 4, 9, 2), 8)])
def test_a_circular_pad_takes_few_operations(pads, budget):
    """Forward and backward of a circular pad (F.pad: 35 operations): within the image a cat per padded dimension
    and its fold back (two-sided 23, one-sided 15, views and the leaf's gradient included); beyond it, which wraps
    more than once, two gathers and two scatter-adds."""
    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    pad(x, pads, "circular")  # the indices of a pad beyond the image are built once per size
    padded = pad(x, pads, "circular")
    grad = torch.ones_like(padded)
    with count_dispatch() as count:
        pad(x, pads, "circular").backward(grad)
    assert count.syncs == 0
    assert count.ops <= budget, dict(count.names)


def test_maxmin_backward_is_one_gather():
    x = torch.randn(2, 6, 5, 4, requires_grad=True)
    grad = torch.ones_like(x)
    with count_dispatch() as count:
        oc.MaxMin()(x).backward(grad)
    assert count.ops <= 7, dict(count.names)
