"""Orthogonal maps: orthonormality for any conditioning, Björck convergence or a clear failure."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from orthoconv.orthogonal import BjorckConvergenceError, bjorck_orthogonal, orthogonal, projector


def ill_conditioned(n, r, log10_cond, seed, dtype=torch.float64):
    """``U diag(s) V^T`` with singular values log-spaced over ``log10_cond`` decades."""
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=dtype))[0]
    V = torch.linalg.qr(torch.randn(r, r, generator=g, dtype=dtype))[0]
    s = torch.logspace(0, -log10_cond, r, dtype=dtype)
    return U @ torch.diag(s) @ V.T


@given(
    batch=st.integers(1, 3), n=st.integers(1, 9), data=st.data(), method=st.sampled_from(["qr", "expm"]),
    log10_cond=st.floats(0, 12), seed=st.integers(0, 2**16),
)
def test_exact_maps_are_orthonormal_for_any_conditioning(batch, n, data, method, log10_cond, seed):
    r = data.draw(st.integers(1, n))
    A = torch.stack([ill_conditioned(n, r, log10_cond, seed + i) * 10 ** (seed % 7 - 3) for i in range(batch)])
    Q = orthogonal(A, method)
    assert Q.shape == A.shape
    eye = np.eye(r)
    for a, q in zip(A.numpy(), Q.numpy()):
        assert np.abs(q.T @ q - eye).max() < 1e-13


@given(n=st.integers(1, 8), data=st.data(), seed=st.integers(0, 2**16))
def test_qr_map_keeps_the_column_space(n, data, seed):
    r = data.draw(st.integers(1, n))
    A = ill_conditioned(n, r, 2, seed)
    reference = A.numpy() @ np.linalg.pinv(A.numpy())
    assert np.abs(projector(A).numpy() - reference).max() < 1e-12


def test_qr_map_fixes_orthonormal_frames():
    Q = orthogonal(torch.randn(7, 4, dtype=torch.float64))
    assert torch.allclose(orthogonal(Q), Q, atol=1e-14)


def test_expm_map_reaches_rotations_only():
    Q = orthogonal(torch.randn(6, 6, dtype=torch.float64), "expm")
    assert abs(float(torch.linalg.det(Q)) - 1) < 1e-12


@pytest.mark.parametrize("method", ["qr", "expm", "bjorck"])
def test_gradients_match_finite_differences(method):
    A = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: orthogonal(a, method), (A,))


def test_bjorck_converges_where_twenty_fixed_steps_do_not():
    """The 2019 code ran 20 Björck steps: at condition number ~3600 that leaves singular values far
    from 1. Iterating to tolerance reaches the polar factor U V^T (numpy SVD reference)."""
    A = ill_conditioned(16, 16, np.log10(3600), seed=1)
    with pytest.raises(BjorckConvergenceError, match="after 20 iterations"):
        bjorck_orthogonal(A, max_iter=20)
    Q = bjorck_orthogonal(A)
    U, _, Vt = np.linalg.svd(A.numpy())
    assert np.abs(Q.numpy() - U @ Vt).max() < 1e-12
    assert np.abs(np.linalg.svd(Q.numpy(), compute_uv=False) - 1).max() < 1e-13


def test_bjorck_refuses_singular_input():
    A = torch.randn(6, 3, dtype=torch.float64)
    A[:, 2] = A[:, 0]
    with pytest.raises(BjorckConvergenceError, match="singular or too ill-conditioned"):
        bjorck_orthogonal(A)
    with pytest.raises(BjorckConvergenceError, match="zero matrix"):
        bjorck_orthogonal(torch.zeros(3, 3))


@given(n=st.integers(1, 8), data=st.data(), seed=st.integers(0, 2**16))
def test_projectors_are_symmetric_idempotents_of_the_chosen_rank(n, data, seed):
    r = data.draw(st.integers(0, n))
    A = torch.randn(n, r, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    P = projector(A).numpy()
    assert np.abs(P @ P - P).max() < 1e-13
    assert np.abs(P - P.T).max() == 0
    assert np.linalg.matrix_rank(P) == r


@pytest.mark.parametrize(
    "A, method, error, match",
    [
        (torch.randn(3), "qr", ValueError, "at least 2 dimensions"),
        (torch.randn(2, 3), "qr", ValueError, "tall"),
        (torch.ones(3, 3, dtype=torch.int64), "qr", TypeError, "floating point"),
        (torch.randn(3, 3), "svd", ValueError, "method must be one of"),
        ([[1.0]], "qr", TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_names_the_problem(A, method, error, match):
    with pytest.raises(error, match=match):
        orthogonal(A, method)


def test_float32_and_device(device):
    Q = orthogonal(torch.randn(4, 64, 32, device=device))
    assert Q.dtype == torch.float32 and Q.device.type == device
    eye = torch.eye(32, device=device)
    assert float((Q.mT @ Q - eye).abs().max()) < 1e-5


@pytest.mark.parametrize("method", ["qr", "expm"])
def test_maps_work_under_torch_func_transforms(method):
    """vmap and jacrev (used by Jacobian-based verification) agree with the loop and with autograd."""
    A = torch.randn(3, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    batched = torch.func.vmap(lambda a: orthogonal(a, method))(A)
    assert torch.allclose(batched, torch.stack([orthogonal(a, method) for a in A]), atol=1e-14)
    jac = torch.func.jacrev(lambda a: orthogonal(a, method))(A[0])
    reference = torch.autograd.functional.jacobian(lambda a: orthogonal(a, method), A[0])
    assert torch.allclose(jac, reference, atol=1e-12)
