"""A zoo of networks built with orthogonium and deel-torchlip (the ``peers`` extra) as their users build them:
other layer mixes, shapes, strides, groups, residual blocks, activations, poolings and ``vanilla_export()``.

``ZOO[name] = (factory, input shape of one sample, 1-Lipschitz by construction)``; ``REFUSED[name] =
(factory, input shape, what the refusal must say: the ATen operation and where)`` for models without a global Lipschitz bound.
"""

import torch
from torch import nn


def _orthogonium():
    import orthogonium.layers as ol
    from orthogonium.layers.conv.AOL.aol import AOLConv2D
    from orthogonium.layers.conv.SLL.sll_layer import SDPBasedLipschitzDense, SDPBasedLipschitzResBlock
    from orthogonium.layers.residual import AdditiveResidual, ConcatResidual, L2NormResidual, PrescaledAdditiveResidual

    return ol, AOLConv2D, SDPBasedLipschitzDense, SDPBasedLipschitzResBlock, AdditiveResidual, ConcatResidual, \
        L2NormResidual, PrescaledAdditiveResidual


def aoc_strided_grouped():
    ol = _orthogonium()[0]
    return nn.Sequential(ol.AdaptiveOrthoConv2d(4, 8, 3, padding=1, groups=2), ol.HouseHolder(8),
                         ol.AdaptiveOrthoConv2d(8, 8, 2, stride=2, padding=0, groups=4), ol.MaxMin(),
                         ol.AdaptiveOrthoConv2d(8, 8, 3, padding=1), ol.Abs(), nn.Flatten(),
                         ol.OrthoLinear(8 * 3 * 3, 10))


def aoc_transpose_householder():
    ol = _orthogonium()[0]
    return nn.Sequential(ol.AdaptiveOrthoConv2d(4, 8, 3, stride=2, padding=1), ol.HouseHolder(8),
                         ol.AdaptiveOrthoConvTranspose2d(8, 4, 2, stride=2), ol.MaxMin(),
                         ol.LayerCentering2D(4), nn.Flatten(), ol.UnitNormLinear(4 * 6 * 6, 5))


def aol_channel_shuffle():
    ol, AOLConv2D = _orthogonium()[:2]
    return nn.Sequential(AOLConv2D(4, 8, 3, padding=1), ol.ChannelShuffle(2, 4), ol.MaxMin(),
                         AOLConv2D(8, 8, 1), ol.HouseHolder(8), nn.AvgPool2d(2), nn.Flatten(),
                         ol.OrthoLinear(8 * 3 * 3, 3))


def sll_dense_head():
    ol, _, Dense, Block = _orthogonium()[:4]
    return nn.Sequential(Block(4, 3, kernel_size=5), Block(4, 1, groups=2), nn.Flatten(),
                         Dense(4 * 6 * 6, 4 * 6 * 6, 32), ol.OrthoLinear(4 * 6 * 6, 10))


def aoc_lipschitz_res_blocks():
    from orthogonium.layers import OrthoLinear
    from orthogonium.layers.conv.SLL.sll_layer import AOCLipschitzResBlock

    return nn.Sequential(AOCLipschitzResBlock(4, 2, 3), AOCLipschitzResBlock(4, 1, 3, padding_mode="zeros"),
                         nn.Flatten(), OrthoLinear(4 * 6 * 6, 10))


def orthogonium_residuals():
    ol, _, _, _, Additive, Concat, L2Norm, Prescaled = _orthogonium()
    return nn.Sequential(L2Norm(ol.AdaptiveOrthoConv2d(4, 4, 3, padding=1)),
                         Prescaled(nn.Sequential(ol.AdaptiveOrthoConv2d(4, 4, 3, padding=1), ol.MaxMin())),
                         Concat(ol.AdaptiveOrthoConv2d(2, 2, 3, padding=1)), ol.BatchCentering2D(4),
                         Additive(nn.Sequential(ol.AdaptiveOrthoConv2d(4, 4, 3, padding=1), ol.HouseHolder(4))))


def _torchlip():
    from deel import torchlip

    return torchlip


def torchlip_pooling_net():
    tl = _torchlip()
    return tl.Sequential(tl.SpectralConv2d(3, 8, 3, padding=1), tl.GroupSort(4), tl.ScaledL2NormPool2d(2),
                         tl.SpectralConv2d(8, 8, 3, padding=1), tl.FullSort(), tl.ScaledAdaptativeL2NormPool2d(
                             (1, 1)), nn.Flatten(), tl.FrobeniusLinear(8, 1))


def torchlip_householder_export():
    tl = _torchlip()
    return tl.Sequential(tl.SpectralConv2d(3, 8, 3, padding=1, padding_mode="circular"), tl.HouseHolder(8),
                         tl.ScaledAvgPool2d(2), tl.SpectralConv2d(8, 8, 3, padding=1), tl.MaxMin(),
                         tl.InvertibleDownSampling(3), nn.Flatten(), tl.SpectralLinear(16 * 9, 10)).vanilla_export()


def torchlip_centering_residual():
    tl = _torchlip()

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = tl.SpectralConv2d(4, 4, 3, padding=1), tl.GroupSort2()
            self.mix, self.center = tl.LipResidual(), tl.LayerCentering(4)

        def forward(self, x):
            return self.center(self.mix(x, self.act(self.conv(x))))

    return tl.Sequential(Block(), tl.BatchCentering(4), tl.LPReLU(4), Block(), tl.ScaledAvgPool2d(2), nn.Flatten(),
                         tl.SpectralLinear(4 * 3 * 3, 4))


def torchlip_1d_transpose():
    tl = _torchlip()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = tl.SpectralConv1d(3, 6, 3, padding=1), tl.SpectralConvTranspose2d(6, 3, 3, padding=1)
            self.act = tl.GroupSort2()

        def forward(self, x):
            h = self.act(self.a(x.flatten(2)))
            return self.b(h.view(x.shape[0], 6, x.shape[2], x.shape[3]))

    return Net()


ZOO = {
    "orthogonium AOC stride 2 groups 2/4, HouseHolder, MaxMin, Abs": (aoc_strided_grouped, (4, 6, 6), True),
    "orthogonium AOC transpose, HouseHolder, LayerCentering2D, UnitNormLinear": (aoc_transpose_householder,
                                                                              (4, 6, 6), True),
    "orthogonium AOL, ChannelShuffle, HouseHolder, AvgPool": (aol_channel_shuffle, (4, 6, 6), False),
    "orthogonium SLL blocks (kernel 5, groups 2), SLL dense": (sll_dense_head, (4, 6, 6), True),
    "orthogonium AOCLipschitzResBlock (circular and zeros)": (aoc_lipschitz_res_blocks, (4, 6, 6), True),
    "orthogonium L2Norm/Prescaled/Concat/Additive residuals": (orthogonium_residuals, (4, 6, 6), True),
    "torchlip GroupSort(4), FullSort, L2-norm pools, Frobenius": (torchlip_pooling_net, (3, 6, 6), True),
    "torchlip HouseHolder, circular, invertible downsampling, export": (torchlip_householder_export, (3, 6, 6),
                                                                        False),
    "torchlip LipResidual, centering, LPReLU": (torchlip_centering_residual, (4, 6, 6), False),
    "torchlip Conv1d and ConvTranspose2d": (torchlip_1d_transpose, (3, 4, 4), False),
}


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        seq = x.flatten(2).transpose(1, 2)
        return self.attn(seq, seq, seq)[0]


class _Square(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        h = self.conv(x)
        return h * h


class _Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        h = self.conv(x)
        return h if h.sum() > 0 else -h


def layer_norm_net():
    tl = _torchlip()
    return nn.Sequential(tl.SpectralConv2d(8, 8, 3, padding=1), nn.LayerNorm([8, 4, 4]))


REFUSED = {
    "attention": (_Attention, (8, 4, 4), r"^aten\.\w+ .*in module 'attn' \(MultiheadAttention\)"),
    "LayerNorm": (layer_norm_net, (8, 4, 4), r"^aten\.layer_norm .*input's own statistics"),
    "x * x": (_Square, (8, 4, 4), r"^aten\.mul .*product of two input-dependent values"),
    "branch on input values": (_Branch, (8, 4, 4), r"^aten\.\w+ .*peer_zoo\.py, line \d+, in forward"),
}


def one_sample(shape, seed=0):
    return torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))
