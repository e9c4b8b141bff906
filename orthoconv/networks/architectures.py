"""Lipschitz classifiers by name: the BCOP paper's Small and Large, and Prach et al.'s ConvNets.

``build(arch, layer, in_channels, image_size, num_classes)`` returns a :class:`LipschitzNetwork`, an
``nn.Sequential`` that records how it was built (``network.spec``, plain JSON), so a checkpoint can
rebuild it (:func:`orthoconv.networks.load`). Every architecture starts with :class:`Normalize` (the
input normalization belongs to the model and counts in its Lipschitz constant; the default subtracts
the mean only, Lipschitz 1), uses the convolution ``layer`` by name (:func:`conv_layer`: ``bcop``,
``rko``, ``ossn``, ``svcm``, ``rkl2ne``, ``cayley``, ``soc`` or ``conv``), strided convolutions as an
invertible downsampling followed by a stride-1 layer (:func:`strided_conv_layer`), a
gradient-norm-preserving activation (MaxMin by default) and orthogonal linear layers
(:class:`orthoconv.OrthogonalLinear`) whatever ``layer`` is, so that architectures differ in their
convolutions only.

- ``small`` (Wong et al. 2018; Li et al. 2019): conv 4x4/2 (16), conv 4x4/2 (32), fc 100, fc classes.
- ``large``: conv 3x3 (32), conv 4x4/2 (32), conv 3x3 (64), conv 4x4/2 (64), fc 512, fc 512, fc classes.
  Both need ``H`` and ``W`` divisible by 4.
- ``convnet-xs / -s / -m / -l`` (Prach, Brau, Buttazzo, Lampert, "1-Lipschitz Layers Compared",
  CVPR 2024; width ``w`` = 16 / 32 / 64 / 128): the input padded with zero channels to ``w``, a 1x1
  layer, then blocks of five 3x3 layers (1x1 once the image is smaller than 3), each block ending by
  keeping the first half of its channels and an invertible downsampling by 2 (so the width doubles
  and the image halves); one block per halving of the (square) image, at most five (32 x 32: five
  blocks, as in the paper; 28 x 28: two, down to 7 x 7); then a global max pool, an orthogonal
  ``(w 2^b) x (w 2^b)`` linear layer and its first ``num_classes`` outputs.
"""

from __future__ import annotations

from torch import nn

from ..math.checks import image_size as check_image_size
from ..math.checks import positive_int
from ..nn import GroupSort, InvertibleDownsampling, MaxMin, OrthogonalLinear
from ..nn.fixed import FirstChannels, GlobalMaxPool, Normalize, ZeroChannelPad
from .layers import CONV_LAYERS, conv_layer, strided_conv_layer

CONVNET_WIDTHS = {"convnet-xs": 16, "convnet-s": 32, "convnet-m": 64, "convnet-l": 128}
ARCHITECTURES = ("small", "large", *CONVNET_WIDTHS)
ACTIVATIONS = ("maxmin", "groupsort4", "relu")
CONVNET_DEPTH = 5  # layers per block (Prach et al.)
CONVNET_MAX_BLOCKS = 5


class LipschitzNetwork(nn.Sequential):
    """An ``nn.Sequential`` classifier that keeps ``spec``: the keyword arguments of :func:`build`."""

    def __init__(self, layers: list[nn.Module], spec: dict) -> None:
        super().__init__(*layers)
        self.spec = spec


def _activation(name: str) -> nn.Module:
    if name == "maxmin":
        return MaxMin()
    if name == "groupsort4":
        return GroupSort(4)
    return nn.ReLU()


def _per_channel(values, channels: int, name: str) -> list:
    """One value per channel: a number (or a one-element sequence) is repeated."""
    values = [values] if isinstance(values, (int, float)) and not isinstance(values, bool) else list(values)
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ValueError(f"{name} needs 1 or in_channels = {channels} values, got {len(values)}")
    return values


def _check_divisible(size: tuple[int, int], factor: int, arch: str) -> None:
    if size[0] % factor or size[1] % factor:
        raise ValueError(f"{arch} needs image_size divisible by {factor}, got {size}")


def _small(layer, c_in, size, classes, act, linear, options) -> list[nn.Module]:
    H, W = size
    return [
        strided_conv_layer(layer, c_in, 16, 4, 2, (H, W), **options), act(),
        strided_conv_layer(layer, 16, 32, 4, 2, (H // 2, W // 2), **options), act(),
        nn.Flatten(),
        linear(32 * (H // 4) * (W // 4), 100), act(),
        linear(100, classes),
    ]


def _large(layer, c_in, size, classes, act, linear, options) -> list[nn.Module]:
    H, W = size
    half = (H // 2, W // 2)
    return [
        conv_layer(layer, c_in, 32, 3, (H, W), **options), act(),
        strided_conv_layer(layer, 32, 32, 4, 2, (H, W), **options), act(),
        conv_layer(layer, 32, 64, 3, half, **options), act(),
        strided_conv_layer(layer, 64, 64, 4, 2, half, **options), act(),
        nn.Flatten(),
        linear(64 * (H // 4) * (W // 4), 512), act(),
        linear(512, 512), act(),
        linear(512, classes),
    ]


def convnet_blocks(side: int) -> int:
    """The number of blocks of a ConvNet on ``side x side`` images: halvings of ``side``, at most 5."""
    blocks = 0
    while side % 2 == 0 and blocks < CONVNET_MAX_BLOCKS:
        side //= 2
        blocks += 1
    return blocks


def _convnet(width, layer, c_in, size, classes, act, linear, options) -> list[nn.Module]:
    H, W = size
    if H != W:
        raise ValueError(f"ConvNets need square images, got image_size {size}")
    if c_in > width:
        raise ValueError(f"a ConvNet of width {width} takes at most {width} input channels, got {c_in}")
    blocks = convnet_blocks(H)
    if blocks == 0:
        raise ValueError(f"ConvNets halve the image at least once: image_size must be even, got {size}")
    if width * 2**blocks < classes:
        raise ValueError(f"a ConvNet of width {width} on {size} images has {width * 2**blocks} outputs, "
                         f"fewer than num_classes = {classes}")
    layers: list[nn.Module] = [ZeroChannelPad(width), conv_layer(layer, width, width, 1, size, **options), act()]
    side, channels = H, width
    for _ in range(blocks):
        k = 3 if side >= 3 else 1
        for _ in range(CONVNET_DEPTH):
            layers += [conv_layer(layer, channels, channels, k, (side, side), **options), act()]
        layers += [FirstChannels(channels // 2), InvertibleDownsampling(2)]
        side, channels = side // 2, channels * 2
    if side > 1:
        layers.append(GlobalMaxPool())
    layers += [nn.Flatten(), linear(channels, channels), FirstChannels(classes)]
    return layers


def build(arch: str = "small", layer: str = "bcop", in_channels: int = 1, image_size=28, num_classes: int = 10, *,
          mean=0.0, std=1.0, activation: str = "maxmin", linear_method: str = "qr",
          layer_options: dict | None = None) -> LipschitzNetwork:
    """The classifier ``arch`` (one of :data:`ARCHITECTURES`) built from the convolution ``layer``.

    Input ``(N, in_channels, H, W)`` images in the units the certificate is about (e.g. ``[0, 1]``
    pixels), output ``(N, num_classes)`` logits. ``mean`` and ``std`` (one value or one per channel)
    set the leading :class:`Normalize`; ``activation`` is ``"maxmin"`` (default), ``"groupsort4"``
    or ``"relu"`` (not gradient norm preserving; for contrast); ``linear_method`` the
    orthogonalization of the linear layers (``"qr"``, ``"expm"`` or ``"bjorck"``);
    ``layer_options`` go to every convolution's constructor (e.g. ``{"padding_mode": "zeros"}``).
    Raises ``ValueError`` for an unknown name or an image size the architecture cannot take.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    if layer not in CONV_LAYERS:
        raise ValueError(f"layer must be one of {CONV_LAYERS}, got {layer!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    c_in = positive_int(in_channels, "in_channels")
    classes = positive_int(num_classes, "num_classes")
    if classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {classes}")
    size = check_image_size(image_size, "image_size")
    options = dict(layer_options or {})
    normalize = Normalize(_per_channel(mean, c_in, "mean"), _per_channel(std, c_in, "std"))

    def act() -> nn.Module:
        return _activation(activation)

    def linear(n_in: int, n_out: int) -> nn.Module:
        return OrthogonalLinear(n_in, n_out, method=linear_method)

    if arch in ("small", "large"):
        _check_divisible(size, 4, arch)
        body = (_small if arch == "small" else _large)(layer, c_in, size, classes, act, linear, options)
    else:
        body = _convnet(CONVNET_WIDTHS[arch], layer, c_in, size, classes, act, linear, options)
    spec = {"arch": arch, "layer": layer, "in_channels": c_in, "image_size": list(size), "num_classes": classes,
            "mean": normalize.mean.flatten().tolist(), "std": normalize.std.flatten().tolist(),
            "activation": activation, "linear_method": linear_method, "layer_options": options}
    return LipschitzNetwork([normalize, *body], spec)
