"""Critics for the Kantorovich-Rubinstein dual: networks built only from 1-Lipschitz pieces.

The convolutional critic follows the design of Li et al. 2019 (Sec. 6 and the networks of Sec. 5):
no residual connections, no batch norm, circular padding, strided layers as an invertible
downsampling (a permutation) followed by a stride-1 convolution, MaxMin / GroupSort activations
(Anil et al. 2019) and orthogonal linear layers ending in a single output. Every convolution comes from
:func:`orthoconv.networks.conv_layer` by name, so the same critic compares ``bcop``, ``rko``, ``ossn``,
``svcm``, ``cayley``, ``soc``, ``rkl2ne``, ``lot``, ``bro`` and the spectrally normalized ``conv``.

Whether a critic really is 1-Lipschitz is never assumed here: the estimator divides by the bound that
:func:`orthoconv.wasserstein.critic_lipschitz` certifies for the trained weights. For ``conv`` that
bound exceeds 1 in general (its normalization bounds the reshaped matrix, not the convolution).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..math.checks import image_size, non_negative_int, positive_int
from ..networks import conv_layer, strided_conv_layer
from ..nn import GroupSort, OrthogonalLinear

CRITIC_LAYERS = ("bcop", "rko", "ossn", "svcm", "cayley", "soc", "conv")
CRITIC_LAYERS += ("lot", "bro")
"""The convolutions the Wasserstein experiment compares (any name of ``orthoconv.networks.CONV_LAYERS`` works)."""


def _widths(values, name: str) -> tuple[int, ...]:
    if isinstance(values, int) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, got {values!r}")
    return tuple(positive_int(v, name) for v in values)


def _check_group(widths: Sequence[int], group_size: int, name: str) -> None:
    for width in widths:
        if width % group_size:
            raise ValueError(f"every entry of {name} must be a multiple of group_size={group_size}, got {width}")


def conv_critic(
    layer: str,
    in_channels: int,
    input_size,
    channels: int = 16,
    depth: int = 2,
    kernel_size: int = 3,
    stride: int = 4,
    hidden: int = 256,
    group_size: int = 2,
    **options,
) -> nn.Sequential:
    """A convolutional critic ``(N, in_channels, H, W) -> (N, 1)`` built from the convolution ``layer``.

    A stride-``stride`` convolution ``in_channels -> channels`` of kernel ``stride``
    (:func:`orthoconv.networks.strided_conv_layer`: invertible downsampling, then a 1 x 1 layer), GroupSort;
    ``depth`` times a stride-1 ``kernel_size`` convolution ``channels -> channels`` and GroupSort; then
    Flatten, ``OrthogonalLinear(channels H W / stride^2 -> hidden)``, GroupSort and
    ``OrthogonalLinear(hidden -> 1)`` (a unit row: the orthogonal head). With the default
    ``channels = in_channels stride^2`` every convolution is square, so an orthogonal layer keeps the
    whole image (a 1 x 28 x 28 digit becomes 16 x 7 x 7: 784 numbers at every stage).

    ``group_size`` 2 is MaxMin. ``options`` go to every convolution (e.g. ``padding_mode``). ``H`` and
    ``W`` must be divisible by ``stride``; ``channels`` and ``hidden`` must be multiples of
    ``group_size``. Raises ``ValueError`` naming the argument otherwise.
    """
    H, W = image_size(input_size)
    positive_int(in_channels, "in_channels")
    channels, hidden = positive_int(channels, "channels"), positive_int(hidden, "hidden")
    depth, stride = non_negative_int(depth, "depth"), positive_int(stride, "stride")
    positive_int(group_size, "group_size")
    _check_group([channels, hidden], group_size, "channels and hidden")
    if H % stride or W % stride:
        raise ValueError(f"input_size {(H, W)} must be divisible by stride = {stride}")
    size = (H // stride, W // stride)
    modules: list[nn.Module] = [strided_conv_layer(layer, in_channels, channels, stride, stride, (H, W), **options),
                                GroupSort(group_size)]
    for _ in range(depth):
        modules += [conv_layer(layer, channels, channels, kernel_size, size, **options), GroupSort(group_size)]
    features = channels * size[0] * size[1]
    modules += [nn.Flatten(), OrthogonalLinear(features, hidden), GroupSort(group_size), OrthogonalLinear(hidden, 1)]
    return nn.Sequential(*modules)


def mlp_critic(in_features: int, widths: Sequence[int] = (512, 512), group_size: int = 2) -> nn.Sequential:
    """An MLP critic ``(N, *shape) -> (N, 1)`` with ``prod(shape) = in_features``: Flatten, then for each
    width ``OrthogonalLinear`` and GroupSort, then ``OrthogonalLinear(widths[-1] -> 1)``.

    Every weight is orthogonal (an isometry or a co-isometry) and GroupSort is a permutation on each
    input, so the critic is 1-Lipschitz in the Euclidean norm of the flattened sample (Anil et al. 2019).
    """
    features = positive_int(in_features, "in_features")
    widths = _widths(widths, "widths")
    positive_int(group_size, "group_size")
    _check_group(widths, group_size, "widths")
    modules: list[nn.Module] = [nn.Flatten()]
    for width in widths:
        modules += [OrthogonalLinear(features, width), GroupSort(group_size)]
        features = width
    modules.append(OrthogonalLinear(features, 1))
    return nn.Sequential(*modules)
