"""The 1-Lipschitz layers since 2021 (AOL, CPL, SLL, Sandwich; issue 19), each against independent references:
the dense Jacobian of the layer's own forward (float64 SVD) after a few Adam steps, brute-force loops for the
Gram row sums, dense operators for the convolutions, and ``check_model`` never below the dense truth."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import orthoconv as oc
from orthoconv.nn.cpl import cpl_norm_squared
from orthoconv.nn.residual import normalized
from orthoconv.spectral import dense_operator

F64 = torch.float64
NAMES = ["AOL", "CPL", "SLL", "Sandwich"]


def make(name, c_in, c_out, k, padding_mode, inner, dtype=F64):
    if name == "AOL":
        return oc.AOL(c_in, c_out, k, padding_mode=padding_mode, dtype=dtype)
    if name == "Sandwich":
        return oc.Sandwich(c_in, c_out, k, dtype=dtype)
    return getattr(oc, name)(c_in, c_in, k, padding_mode=padding_mode, inner_channels=inner, dtype=dtype)


def randomize(layer, seed):
    """Random biases / q / psi, then three Adam steps on a random quadratic loss (parameters off the init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name in ("bias", "log_q", "log_psi"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.randn(2, layer.in_channels, 4, 5, generator=g, dtype=F64)
        target = torch.randn(2, layer.out_channels, 4, 5, generator=g, dtype=F64)
        optimizer.zero_grad()
        (layer(x) - target).square().sum().backward()
        optimizer.step()
    return layer


def jacobian_norm(layer, x):
    """``||d layer / dx||_2`` at the single sample ``x`` (float64 SVD of the dense Jacobian)."""
    shape = x.shape
    J = torch.autograd.functional.jacobian(lambda v: layer(v.reshape(shape)).reshape(-1), x.reshape(-1))
    return float(torch.linalg.matrix_norm(J, ord=2))


@settings(max_examples=20, deadline=None)
@given(
    name=st.sampled_from(NAMES), c_in=st.integers(1, 3), c_out=st.integers(1, 3), inner=st.integers(1, 4),
    k=st.integers(1, 3), H=st.integers(1, 5), W=st.integers(1, 5), padding=st.sampled_from(["circular", "zeros"]),
    seed=st.integers(0, 2**16),
)
def test_dense_jacobian_is_at_most_one_and_within_the_certified_bounds(name, c_in, c_out, inner, k, H, W, padding,
                                                                       seed):
    torch.manual_seed(seed)
    layer = randomize(make(name, c_in, c_out, k, padding, inner), seed)
    size = (H, W)
    bound = layer.lipschitz_bound(size)
    report = oc.verify.check_model(layer, torch.zeros(1, layer.in_channels, H, W, dtype=F64))
    assert report.lipschitz_upper <= 1 + 1e-6
    assert bound <= 1 + 1e-6
    for point in range(2):
        x = 3 * torch.randn(1, layer.in_channels, H, W, generator=torch.Generator().manual_seed(seed + point),
                            dtype=F64)
        sigma = jacobian_norm(layer, x)
        assert sigma <= 1 + 1e-12
        assert sigma <= bound * (1 + 1e-12) and sigma <= report.lipschitz_upper * (1 + 1e-12)
    assert layer.lipschitz_bound() >= 1 - 1e-12 or name == "AOL"


def brute_row_sums(K, log_q=None):
    """``sum_{j, d} |sum_{o, p} K[o, i, p + d] K[o, j, p]| q_j / q_i`` by loops over taps (numpy)."""
    K = K.detach().numpy()
    c_out, c_in, kh, kw = K.shape
    q = np.ones(c_in) if log_q is None else np.exp(log_q.detach().numpy())
    sums = np.zeros(c_in)
    for i, j in itertools.product(range(c_in), repeat=2):
        for dh, dw in itertools.product(range(-kh + 1, kh), range(-kw + 1, kw)):
            total = 0.0
            for o, ph, pw in itertools.product(range(c_out), range(kh), range(kw)):
                if 0 <= ph + dh < kh and 0 <= pw + dw < kw:
                    total += K[o, i, ph + dh, pw + dw] * K[o, j, ph, pw]
            sums[i] += abs(total) * q[j] / q[i]
    return sums


@given(c_out=st.integers(1, 3), c_in=st.integers(1, 3), k=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_aol_kernel_is_the_parameter_rescaled_by_the_brute_force_row_sums(c_out, c_in, k, seed):
    torch.manual_seed(seed)
    layer = oc.AOL(c_in, c_out, k, dtype=F64)
    with torch.no_grad():
        layer.weight[:, 0] = 0  # a zero column: D_00 = 0, not nan
    P = layer.weight.detach()
    r = brute_row_sums(P)
    D = np.where(r > 0, 1 / np.sqrt(np.where(r > 0, r, 1)), 0)
    assert np.allclose(layer.kernel().detach().numpy(), P.numpy() * D[None, :, None, None], rtol=1e-12, atol=0)
    layer.kernel().sum().backward()
    assert bool(torch.isfinite(layer.weight.grad).all())


@pytest.mark.parametrize("padding", ["circular", "zeros"])
@pytest.mark.parametrize("inner", [2, 5])
def test_cpl_is_its_formula_with_a_certified_beta(padding, inner):
    """``x - 2 / beta^2 W^T relu(W x + b)`` against the dense operator ``W``; ``beta >= ||W||`` (dense SVD)."""
    torch.manual_seed(inner)
    layer = randomize(oc.CPL(3, 3, 3, padding_mode=padding, inner_channels=inner, dtype=F64), 1)
    H, W = 5, 4
    K = layer.kernel().detach()
    A = dense_operator(K, (H, W), padding)
    norm = float(torch.linalg.matrix_norm(A, ord=2))
    K_hat, scale = normalized(K)
    beta = math.sqrt(float(cpl_norm_squared(K_hat, (H, W), padding, layer.gram_steps))) * float(scale)
    assert norm <= beta <= norm * (1.5 if padding == "zeros" else 1.01)  # zeros: the enlarged circular grid
    x = torch.randn(2, 3, H, W, dtype=F64)
    b = layer.bias.detach().repeat_interleave(H * W)
    flat = x.reshape(2, -1)
    expected = flat - 2 / beta**2 * torch.relu(flat @ A.T + b) @ A
    assert torch.allclose(layer(x).detach().reshape(2, -1), expected, rtol=1e-10, atol=1e-12)


@given(c_out=st.integers(1, 4), c_in=st.integers(1, 4), k=st.integers(1, 5), H=st.integers(1, 6), W=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_cpl_beta_bounds_the_zero_padded_norm_on_the_smallest_circular_grid(c_out, c_in, k, H, W, seed):
    """Zero padding on ``H x W`` is a compression of the circular operator on ``(H + k // 2) x (W + k // 2)``."""
    K = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(seed), dtype=F64)
    norm = float(torch.linalg.matrix_norm(dense_operator(K, (H, W), "zeros"), ord=2))
    assert norm <= math.sqrt(float(cpl_norm_squared(K, (H, W), "zeros", 8))) * (1 + 1e-12)


@pytest.mark.parametrize("padding", ["circular", "zeros"])
def test_sll_is_its_formula_with_the_brute_force_t(padding):
    torch.manual_seed(3)
    layer = randomize(oc.SLL(3, 3, 3, padding_mode=padding, inner_channels=4, dtype=F64), 2)
    with torch.no_grad():
        layer.weight[1] = 0  # a zero row: t_1 = 0, the term vanishes
    H, W = 4, 5
    K = layer.kernel().detach()
    t = brute_row_sums(K.transpose(0, 1), layer.log_q)
    inverse_t = torch.tensor(np.where(t > 0, 1 / np.where(t > 0, t, 1), 0)).repeat_interleave(H * W)
    A_t = dense_operator(K, (H, W), padding)  # W^T
    x = torch.randn(2, 3, H, W, dtype=F64)
    flat = x.reshape(2, -1)
    b = layer.bias.detach().repeat_interleave(H * W)
    expected = flat - 2 * (torch.relu(flat @ A_t.T + b) * inverse_t) @ A_t
    assert torch.allclose(layer(x).detach().reshape(2, -1), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("c_in, c_out", [(3, 3), (2, 4), (4, 2)])
def test_sandwich_rows_are_orthonormal_at_every_frequency_and_psi_cannot_overflow(c_in, c_out):
    torch.manual_seed(c_in)
    layer = oc.Sandwich(c_in, c_out, 3, dtype=F64)
    for size in [(5, 4), (6, 6), (1, 3)]:
        Q = layer.transfer(size).detach()
        assert Q.shape == (size[0], size[1] // 2 + 1, c_in + c_out, c_out)
        eye = torch.eye(c_out, dtype=Q.dtype)
        assert float((Q.mH @ Q - eye).abs().max()) < 1e-13
    with torch.no_grad():
        layer.bias.fill_(1.0)
        layer.log_psi.fill_(1e4)  # e^d overflows float64; e^d * e^-d would be inf * 0
    x = torch.randn(2, c_in, 5, 4, dtype=F64, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(x.grad).all())
    with pytest.raises(TypeError, match="not a convolution"):
        layer.kernel()


SCALES = [0.0, 1e-30, 1.0, 1e30]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_finite_outputs_and_gradients_at_zero_rank_deficient_and_huge_parameters(name, dtype):
    for scale, kind in itertools.product(SCALES, ["full", "zero_column", "repeated_row"]):
        torch.manual_seed(0)
        layer = make(name, 3, 3, 3, "zeros" if name == "SLL" else "circular", 3, dtype)
        with torch.no_grad():
            layer.bias.normal_()
            for pname, p in layer.named_parameters():
                if pname == "bias":
                    continue
                if pname != "weight":
                    p.normal_()
                if kind == "zero_column" and p.dim() == 4:
                    p[:, 0] = 0
                elif kind == "repeated_row" and p.dim() == 4:
                    p[1] = p[0]
                p.mul_(scale)
        x = torch.randn(2, 3, 6, 5, dtype=dtype)
        y = layer(x)
        y.square().sum().backward()
        assert bool(torch.isfinite(y).all()), (scale, kind)
        for pname, p in layer.named_parameters():
            assert bool(torch.isfinite(p.grad).all()), (pname, scale, kind)


def test_verify_reads_their_checkpoints(tmp_path):
    """``orthoconv verify`` without a model: each layer rebuilt from its config; the nonlinear ones are rows of
    their certified Lipschitz bound (never the spectrum of their inner kernel)."""
    from orthoconv.verify.weights import check_state_dict

    torch.manual_seed(0)
    model = torch.nn.Sequential(oc.AOL(2, 3, 3), oc.CPL(3, 3, 3, inner_channels=5), oc.SLL(3, 3, 3),
                                oc.Sandwich(3, 2, 3))
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    (_, state), = oc.verify.checkpoint.load_state_dicts(path)[0]
    rows, skipped = check_state_dict("", state, (6, 6), None)
    assert [row.type for row in rows] == ["AOL", "CPL", "SLL", "Sandwich"] and not skipped
    for row, layer in zip(rows[1:], model[1:]):
        assert row.kind == row.verdict == "1-Lipschitz" and row.passed
        assert row.sigma_max == pytest.approx(layer.lipschitz_bound((6, 6)), rel=1e-12)
    assert rows[0].sigma_max <= 1 + 1e-6


def test_interface_config_and_checkpoints():
    model = torch.nn.Sequential(oc.AOL(2, 3, 3, dtype=F64), oc.CPL(3, 3, 3, inner_channels=5, dtype=F64),
                                oc.SLL(3, 3, 1, padding_mode="zeros", dtype=F64), oc.Sandwich(3, 2, 3, dtype=F64))
    x = torch.randn(2, 2, 5, 6, dtype=F64)
    for layer in model:
        copy = oc.nn.from_config(layer.config(), dtype=F64)
        copy.load_state_dict(layer.state_dict())
        assert copy.config() == layer.config()
        assert torch.equal(copy(x if layer is model[0] else model[0](x))[:0], layer(x[:0] if layer is model[0]
                                                                                     else model[0](x)[:0]))
    with pytest.raises(ValueError, match="in_channels must equal out_channels"):
        oc.CPL(3, 4, 3)
    with pytest.raises(ValueError, match="Sandwich supports padding_mode"):
        oc.Sandwich(3, 3, 3, padding_mode="zeros")
    with pytest.raises(ValueError, match="Sandwich: the image must have positive height"):
        model[3](torch.randn(1, 3, 0, 4, dtype=F64))
    report = oc.verify.check_model(model, x[:1])
    assert report.lipschitz_upper <= 1 + 1e-6


@pytest.mark.parametrize("layer", ["aol", "cpl", "sll", "sandwich"])
def test_every_network_builds_and_certifies(layer):
    assert layer in oc.networks.CONV_LAYERS
    torch.manual_seed(0)
    model = oc.networks.build("small", layer, 1, 8, 3).double()
    x = torch.randn(1, 1, 8, 8, dtype=F64)
    report = oc.verify.check_model(model, x)
    assert report.lipschitz_lower <= report.lipschitz_upper <= 1 + 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_float32_jacobian_and_half_precision(name):
    """float32: sigma_max <= 1 + 1e-5 (the float32 standard); half parameters run with the construction in float32."""
    torch.manual_seed(5)
    layer = make(name, 3, 3, 3, "circular", 4, torch.float32)
    with torch.no_grad():
        for pname, p in layer.named_parameters():
            if pname in ("bias", "log_q", "log_psi"):
                p.normal_()
    x = torch.randn(1, 3, 5, 6)
    shape = x.shape
    J = torch.autograd.functional.jacobian(lambda v: layer(v.reshape(shape)).reshape(-1), x.reshape(-1))
    assert float(torch.linalg.matrix_norm(J.double(), ord=2)) <= 1 + 1e-5
    for dtype in (torch.float16, torch.bfloat16):
        half = make(name, 3, 3, 3, "circular", 4, torch.float32)
        half.load_state_dict(layer.state_dict())
        half = half.to(dtype)
        y = half(x.to(dtype))
        assert y.dtype == dtype and bool(torch.isfinite(y).all())
        y.float().square().sum().backward()
        assert all(bool(torch.isfinite(p.grad).all()) for p in half.parameters())
        reference = layer(x).detach()
        assert torch.allclose(y.detach().float(), reference, atol=0.05 * float(reference.abs().max()))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer(x)
    assert torch.allclose(low.float(), reference, atol=0.05 * float(reference.abs().max()))


@pytest.mark.parametrize("name", ["Sandwich"])  # AOL, CPL, SLL: in the zoo of tests/test_compile.py
def test_compiled_forward_and_backward_match_eager(name):
    torch._dynamo.reset()
    torch.manual_seed(6)
    layer = make(name, 3, 3, 3, "zeros" if name == "SLL" else "circular", 4, torch.float32)
    x = torch.randn(2, 3, 5, 6)
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    y, expected = compiled(x), layer(x)
    assert torch.allclose(y, expected, atol=1e-5)
    grads = torch.autograd.grad(y.square().sum(), list(layer.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(layer.parameters()))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(grads, expected_grads))
    torch._dynamo.reset()


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_parameters_are_an_error_naming_the_layer(name):
    layer = make(name, 3, 3, 3, "circular", 4, torch.float32)
    with torch.no_grad():
        layer.weight[0, 0, 0, 0] = float("nan")
    y = layer(torch.randn(1, 3, 4, 4))  # inside a forward: poisoned, the named error at the next host read
    assert not torch.isfinite(y).all()
    with pytest.raises(ValueError, match=rf"^{name}: "):
        oc.nn.raise_failed_checks()
    with pytest.raises(ValueError, match=rf"^{name}: "), oc.nn.strict_checks():
        layer(torch.randn(1, 3, 4, 4))


def test_cpl_beta_is_above_the_norm_and_tight_where_the_spectrum_is_not_flat():
    """``orthoconv bench residual``'s tightness table on small shapes: ``beta / ||W|| >= 1`` always, within 1e-3
    at init after 6 steps (circular), and for an orthogonal kernel (the worst case) exactly ``c^(2^-8)``."""
    from orthoconv.analysis.bench.residual import tightness_rows

    rows = tightness_rows((4,), (5,), seed=0)
    assert all(row[f"t={t}"] >= 1 - 1e-12 for row in rows for t in (2, 4, 6, 8))
    init = next(r for r in rows if r["kernel"] == "init" and r["padding"] == "circular")
    assert init["t=6"] < 1 + 1e-3
    flat = next(r for r in rows if r["kernel"] == "orthogonal" and r["padding"] == "circular")
    assert flat["t=6"] == pytest.approx(4 ** (2**-8), rel=1e-9)
