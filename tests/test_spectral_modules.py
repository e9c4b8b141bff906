"""module_spectrum / module_singular_values against the dense operator built from the MODULE'S OWN FORWARD.

The reference is independent of the library: each module (float64) is run on the basis vectors and
on zero, and the differences are the columns of its linear map; its singular values come from numpy.
Every configuration torch offers is drawn: 1-D/2-D/3-D, stride, dilation, groups, padding amounts
(ints, "same", "valid"), the four padding modes, transposed convolutions with output_padding.
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import orthoconv as oc
from orthoconv.spectral import module_operator, module_singular_values, module_spectrum, operator_matrix

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def forward_matrix(module, input_shape):
    """Columns ``module(e_j) - module(0)``: the linear map of an affine module, from its forward alone."""
    n = math.prod(input_shape)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *input_shape)
    with torch.no_grad():
        out = module(torch.cat([basis, torch.zeros(1, *input_shape, dtype=torch.float64)]))
    return (out[:-1] - out[-1:]).reshape(n, -1).T.numpy()


def truth(module, input_shape):
    return np.linalg.svd(forward_matrix(module, input_shape), compute_uv=False)


def seeded(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


KINDS = ["zeros", "reflect", "replicate", "circular", "circular-grid", "transposed"]


@st.composite
def conv_modules(draw, dims, kind):
    """``(module, input_size)``: a float64 ``dims``-D convolution module of the ``kind`` (a padding mode;
    "circular-grid": circular with outputs on the whole polyphase grid, the FFT case; "transposed") with
    random channels, groups, kernel size, stride, dilation, padding, and an input size it runs on."""
    side = {1: 12, 2: 6, 3: 4}[dims]
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = tuple(draw(st.integers(1, {1: 6, 2: 4, 3: 2}[dims])) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    extent = tuple(d * (kk - 1) + 1 for d, kk in zip(dilation, k))
    seed = draw(st.integers(0, 2**16))
    if kind == "transposed":
        padding = tuple(draw(st.integers(0, (e - 1) // 2)) for e in extent)
        output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        size = tuple(draw(st.integers(1, side)) for _ in range(dims))
        module = TRANSPOSED[dims](c_in, c_out, k, stride, padding, output_padding, groups, True, dilation,
                                  dtype=torch.float64)
        return seeded(module, seed), size
    mode = "circular" if kind == "circular-grid" else kind
    if kind == "circular-grid":  # L = N / s: e - s <= 2 p < e, or "same" when that is empty (stride 1)
        options = [[p for p in range(e) if e - s <= 2 * p < e] for e, s in zip(extent, stride)]
        if all(options):
            padding = tuple(draw(st.sampled_from(o)) for o in options)
        else:
            stride, padding = (1,) * dims, "same"
        lows = [max(1, -(-e // s)) for e, s in zip(extent, stride)]
        size = tuple(s * draw(st.integers(lo, max(lo, side // s))) for s, lo in zip(stride, lows))
    else:
        if all(s == 1 for s in stride) and draw(st.booleans()):
            padding = draw(st.sampled_from(["same", "valid"]))
            pads = [(d * (kk - 1) // 2, d * (kk - 1) - d * (kk - 1) // 2) if padding == "same" else (0, 0)
                    for kk, d in zip(k, dilation)]
        else:
            padding = tuple(draw(st.integers(0, 3)) for _ in range(dims))
            pads = [(p, p) for p in padding]
        size = []
        for (b, a), e in zip(pads, extent):
            low = max(1, e - b - a, max(b, a) + (mode == "reflect") if mode in ("reflect", "circular") else 1)
            size.append(draw(st.integers(low, max(low, side))))
    module = CONV[dims](c_in, c_out, k, stride, padding, dilation, groups, True, mode, dtype=torch.float64)
    return seeded(module, seed), tuple(size)


def input_shape(module, size):
    return (module.in_channels, *size)


def assert_spectrum_close(measured, reference):
    measured = np.sort(np.asarray(measured))[::-1]
    assert measured.shape == reference.shape
    assert np.abs(measured - reference).max() <= 1e-10 * max(1.0, reference.max())


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=12)
@given(data=st.data())
def test_every_singular_value_of_every_configuration(dims, kind, data):
    module, size = data.draw(conv_modules(dims, kind))
    reference = truth(module, input_shape(module, size))
    assert_spectrum_close(module_singular_values(module, size).numpy(), reference)
    spectrum = module_spectrum(module, size)
    assert spectrum.exact
    if kind == "circular-grid":
        assert spectrum.method in ("fft", "polyphase-fft", "pointwise-svd")
    assert spectrum.sigma_max == pytest.approx(reference[0], rel=1e-10, abs=1e-12)
    assert spectrum.sigma_min == pytest.approx(reference[-1], rel=1e-9, abs=1e-10 * reference[0])
    assert spectrum.input_shape == input_shape(module, size)
    with torch.no_grad():
        out = module(torch.zeros(1, *input_shape(module, size), dtype=torch.float64))
    assert spectrum.output_shape == tuple(out.shape[1:])


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=8)
@given(data=st.data())
def test_index_arithmetic_matrix_is_the_modules_matrix(dims, kind, data):
    """Entry by entry (a circular shift or a permuted group keeps the singular values, not the matrix)."""
    module, size = data.draw(conv_modules(dims, kind))
    op, shape = module_operator(module, size)
    assert shape == input_shape(module, size) == op.input_shape
    assert np.abs(operator_matrix(op).numpy() - forward_matrix(module, shape)).max() <= 1e-12 * max(
        1.0, float(module.weight.abs().sum()))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=6)
@given(data=st.data())
def test_enclosure_contains_the_norm_of_every_configuration(dims, kind, data):
    """Forced off the dense path (``exact_limit=0``): exact by FFT where circular padding allows it,
    otherwise a certified enclosure of the true norm."""
    module, size = data.draw(conv_modules(dims, kind))
    reference = truth(module, input_shape(module, size))[0]
    spectrum = module_spectrum(module, size, exact_limit=0)
    if spectrum.exact:
        assert spectrum.method in ("fft", "polyphase-fft", "pointwise-svd")
        assert spectrum.sigma_max == pytest.approx(reference, rel=1e-10, abs=1e-12)
    else:
        assert spectrum.sigma_min == 0.0
        assert spectrum.sigma_max_lower <= reference * (1 + 1e-12) + 1e-300
        assert reference <= spectrum.sigma_max * (1 + 1e-12)
        with pytest.raises(ValueError, match="enclosure"):
            module_singular_values(module, size, exact_limit=0)


def issue_module(seed, **options):
    torch.manual_seed(seed)
    return nn.Conv2d(8, 8, 3, dtype=torch.float64, **options)


@pytest.mark.parametrize("options", [
    dict(groups=4, padding=1, padding_mode="circular"),
    dict(stride=2, padding=1),
    dict(stride=2, padding=1, padding_mode="circular"),
    dict(dilation=2, padding=2),
    dict(dilation=2, padding=2, padding_mode="circular"),
])
@pytest.mark.parametrize("seed", [0, 1])
def test_issue_table_configurations_on_8x8(options, seed):
    """The kinds of layers the issue measured wrong (grouped, strided, dilated; 8x8 images): exact, both ways."""
    module = issue_module(seed, **options)
    reference = truth(module, (8, 8, 8))
    spectrum = module_spectrum(module, (8, 8))
    assert spectrum.exact
    assert spectrum.sigma_max == pytest.approx(reference[0], rel=1e-12)
    assert spectrum.sigma_min == pytest.approx(reference[-1], rel=1e-9, abs=1e-12)
    assert_spectrum_close(module_singular_values(module, (8, 8)).numpy(), reference)
    if options.get("padding_mode") == "circular":
        assert spectrum.method in ("fft", "polyphase-fft", "pointwise-svd")
        grouped = options.get("groups", 1) > 1
        plain = spectral_norm_ignoring(module) if grouped else None
        if plain is not None:
            assert abs(plain - reference[0]) > 1e-3  # reading the weight as ungrouped is measurably wrong


def spectral_norm_ignoring(module):
    """The norm of a grouped weight misread as an ungrouped ``c_out x c_in/g`` convolution (the old verify)."""
    return oc.conv_spectral_norm(module.weight.detach(), (8, 8)).value


def test_transposed_convolution_maps_4_to_8_channels():
    torch.manual_seed(0)
    module = nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1, dtype=torch.float64)
    spectrum = module_spectrum(module, (4, 4))
    assert spectrum.input_shape == (4, 4, 4) and spectrum.output_shape == (8, 8, 8)
    reference = truth(module, (4, 4, 4))
    assert len(module_singular_values(module, (4, 4))) == 64 == len(reference)
    assert spectrum.sigma_max == pytest.approx(reference[0], rel=1e-12)


def test_bcop_with_zero_padding_is_not_orthogonal():
    layer = oc.BCOP(8, 8, 3, padding_mode="zeros", dtype=torch.float64)
    reference = truth(layer, (8, 6, 6))
    spectrum = module_spectrum(layer, (6, 6))
    assert spectrum.exact and spectrum.method == "dense"
    assert spectrum.sigma_min == pytest.approx(reference[-1], rel=1e-9)
    assert spectrum.sigma_min < 0.99


def test_soc_is_checked_through_its_kernel_not_its_raw_weight():
    layer = oc.SOC(8, 8, 3, terms=12, dtype=torch.float64)
    spectrum = module_spectrum(layer, (6, 6))
    assert spectrum.exact and spectrum.method == "fft"
    assert abs(spectrum.sigma_min - 1) < 1e-9 and abs(spectrum.sigma_max - 1) < 1e-9
    assert spectrum.sigma_max == pytest.approx(truth(layer, (8, 6, 6))[0], rel=1e-10)


def test_soc_with_zero_padding_is_measured_from_its_forward():
    layer = oc.SOC(2, 2, 3, terms=12, padding_mode="zeros", dtype=torch.float64)
    spectrum = module_spectrum(layer, (4, 4))
    assert spectrum.method == "dense (module forward)"
    assert_spectrum_close(module_singular_values(layer, (4, 4)).numpy(), truth(layer, (2, 4, 4)))
    with pytest.raises(ValueError, match="no single kernel"):
        module_spectrum(layer, (64, 64))


def test_strided_bcop_through_its_parts():
    layer = oc.StridedBCOP(2, 4, 3, stride=2, dtype=torch.float64)
    spectrum = module_spectrum(layer, (6, 6))
    assert spectrum.input_shape == (2, 6, 6) and spectrum.output_shape == (4, 3, 3)
    assert_spectrum_close(module_singular_values(layer, (6, 6)).numpy(), truth(layer, (2, 6, 6)))
    assert abs(spectrum.sigma_min - 1) < 1e-12 and abs(spectrum.sigma_max - 1) < 1e-12


def test_cayley_is_read_on_its_own_size_only():
    layer = oc.CayleyConv(3, 3, 3, input_size=(4, 4), dtype=torch.float64)
    assert_spectrum_close(module_singular_values(layer, (4, 4)).numpy(), truth(layer, (3, 4, 4)))
    with pytest.raises(ValueError, match="4, 4"):
        module_spectrum(layer, (5, 5))


def test_large_zero_padded_layer_gets_a_named_enclosure():
    torch.manual_seed(0)
    module = nn.Conv2d(16, 16, 3, padding=1, dtype=torch.float64)
    spectrum = module_spectrum(module, (32, 32))
    assert not spectrum.exact and spectrum.method == "enclosure"
    assert any("33x33" in note for note in spectrum.assumptions)
    assert spectrum.sigma_max_lower <= spectrum.sigma_max <= 1.1 * spectrum.sigma_max_lower
    assert spectrum.as_dict()["input_shape"] == [16, 32, 32]


@pytest.mark.parametrize("module, size, match", [
    (nn.Conv2d(1, 1, 5, padding=2, padding_mode="circular"), (1, 1), "wraps around"),
    (nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), (1, 4), "reflect"),
    (nn.Conv2d(1, 1, 5), (3, 3), "larger than the padded input"),
    (nn.Conv2d(1, 1, 3), (3, 3, 3), "2-D"),
])
def test_sizes_the_module_cannot_run_on_are_refused(module, size, match):
    with pytest.raises(ValueError, match=match):
        module_spectrum(module, size)


def test_other_modules_are_refused_by_type():
    with pytest.raises(TypeError, match="Linear"):
        module_spectrum(nn.Linear(3, 3), (3,))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("transposed", [False, True])
@settings(max_examples=10)
@given(data=st.data())
def test_pointwise_convolutions_take_one_small_svd_at_any_size(dims, transposed, data):
    """1x1 kernels without padding (ResNet's projections): the singular values of the weight's groups, once per
    output pixel, then zeros; exact at sizes far beyond the dense limit."""
    groups = data.draw(st.integers(1, 3))
    c_in, c_out = groups * data.draw(st.integers(1, 3)), groups * data.draw(st.integers(1, 3))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(dims))
    size = tuple(data.draw(st.integers(1, {1: 9, 2: 5, 3: 3}[dims])) for _ in range(dims))
    if transposed:
        output_padding = tuple(data.draw(st.integers(0, s - 1)) for s in stride)
        module = TRANSPOSED[dims](c_in, c_out, 1, stride, 0, output_padding, groups, dtype=torch.float64)
    else:
        module = CONV[dims](c_in, c_out, 1, stride, groups=groups, dtype=torch.float64)
    seeded(module, data.draw(st.integers(0, 2**16)))
    spectrum = module_spectrum(module, size, exact_limit=0)
    assert spectrum.exact and spectrum.method == "pointwise-svd"
    assert_spectrum_close(module_singular_values(module, size, exact_limit=0).numpy(),
                          truth(module, input_shape(module, size)))
