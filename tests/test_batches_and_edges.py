"""Batched inputs and edge shapes of the orthogonal maps (orthoconv.math.orthogonal) and the block kernels
(orthoconv.math.blocks): every map acts on the last two dimensions of any batch, exactly as on each matrix
alone; rank-0 projectors are zero matrices of the right shape; mismatched shapes are refused by name."""

import numpy as np
import pytest
import scipy.linalg
import torch

from orthoconv.math.blocks import bcop_kernel, block_kernel, compose_kernels, transfer_function
from orthoconv.math.orthogonal import METHODS, orthogonal, projector

F64 = torch.float64


def batch(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(3, 4, 4), (2, 3, 5, 2)])
def test_orthogonal_maps_act_on_each_matrix_of_a_batch(method, shape):
    A = batch(*shape)
    Q = orthogonal(A, method)
    eye = torch.eye(shape[-1], dtype=F64)
    assert Q.shape == A.shape
    assert (Q.transpose(-2, -1) @ Q - eye).abs().max() < 1e-12
    flat, flat_Q = A.reshape(-1, *shape[-2:]), Q.reshape(-1, *shape[-2:])
    for a, q in zip(flat, flat_Q):
        assert torch.allclose(orthogonal(a, method), q, rtol=0, atol=1e-12)


def reference(A: np.ndarray, method: str) -> np.ndarray:
    """numpy/scipy: QR with diag(R) > 0; the first r columns of expm(S - S^T), S the zero-padded A; the polar
    factor U V^T (the limit of Björck's iteration from any positive multiple of A)."""
    n, r = A.shape
    if method == "qr":
        Q, R = np.linalg.qr(A)
        return Q * np.where(np.diag(R) < 0, -1.0, 1.0)
    if method == "expm":
        S = np.pad(A, ((0, 0), (0, n - r)))
        return scipy.linalg.expm(S - S.T)[:, :r]
    U, _, Vt = np.linalg.svd(A, full_matrices=False)
    return U @ Vt


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(4, 4), (5, 2), (3, 4, 3)])
def test_orthogonal_maps_match_their_references(method, shape):
    A = batch(*shape, seed=3)
    Q = orthogonal(A, method).reshape(-1, *shape[-2:])
    for a, q in zip(A.reshape(-1, *shape[-2:]), Q):
        assert np.abs(q.numpy() - reference(a.numpy(), method)).max() < 1e-10


@pytest.mark.parametrize("method", METHODS)
def test_projectors_of_a_batch_and_of_rank_zero(method):
    A = batch(2, 3, 5, 2, seed=1)
    P = projector(A, method)
    assert P.shape == (2, 3, 5, 5)
    assert torch.allclose(P @ P, P, atol=1e-12) and torch.allclose(P, P.transpose(-2, -1), atol=1e-12)
    assert torch.allclose(torch.diagonal(P, dim1=-2, dim2=-1).sum(-1), torch.full((2, 3), 2.0, dtype=F64), atol=1e-12)
    for shape in [(4, 0), (3, 4, 0), (2, 1, 3, 0)]:
        zero = projector(torch.zeros(shape, dtype=F64), method)
        assert zero.shape == shape[:-1] + (shape[-2],) and zero.dtype == F64 and not zero.any()


def test_block_kernel_refuses_projectors_of_different_sizes():
    with pytest.raises(ValueError, match=r"Q must end in a square \(2, 2\) matrix, got shape \(3, 3\)"):
        block_kernel(torch.eye(2, dtype=F64), torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match=r"P must end in a square \(c, c\) matrix, got shape \(2, 3\)"):
        block_kernel(torch.ones(2, 3, dtype=F64), torch.eye(3, dtype=F64))
    with pytest.raises(ValueError, match=r"Qs must end in a square \(2, 2\) matrix"):
        bcop_kernel(torch.eye(2, dtype=F64), torch.eye(2, dtype=F64)[None], torch.eye(3, dtype=F64)[None])


def test_bcop_kernel_refuses_projectors_that_do_not_fit_h():
    H, eye3 = torch.eye(2, dtype=F64), torch.eye(3, dtype=F64)[None]
    with pytest.raises(ValueError, match=r"Ps must end in a square \(2, 2\) matrix, got shape \(1, 3, 3\)"):
        bcop_kernel(H, eye3, eye3)
    with pytest.raises(ValueError, match=r"Ps must end in a square \(2, 2\) matrix, got shape \(1, 3, 2\)"):
        bcop_kernel(H, torch.ones(1, 3, 2, dtype=F64), torch.eye(2, dtype=F64)[None])


def test_projector_of_rank_zero_still_checks_its_argument():
    with pytest.raises(ValueError, match=r"A must have at least 2 dimensions \(\.\.\., n, r\), got shape \(0,\)"):
        projector(torch.zeros(0, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_block_kernel_keeps_the_dtype(dtype):
    P, Q = projector(batch(3, 1)).to(dtype), projector(batch(3, 2, seed=1)).to(dtype)
    assert block_kernel(P, Q).dtype == dtype


def test_compose_kernels_names_both_channel_counts():
    with pytest.raises(ValueError, match="W1 takes 3 input channels but W2 produces 2: cannot compose"):
        compose_kernels(batch(4, 3, 2, 2), batch(2, 5, 2, 2))


@pytest.mark.parametrize("dtype, cdtype", [(torch.float32, torch.complex64), (torch.float64, torch.complex128)])
def test_transfer_function_keeps_the_precision_and_matches_numpy(dtype, cdtype):
    kernel = batch(2, 3, 3, 2, seed=2).to(dtype)
    z1, z2 = np.exp(0.3j), np.exp(-1.1j)
    value = transfer_function(kernel, z1, z2)
    expected = np.einsum("p,q,oipq->oi", z1 ** np.arange(3), z2 ** np.arange(2), kernel.double().numpy())
    assert value.dtype == cdtype and value.shape == (2, 3)
    with pytest.raises(ValueError, match=r"^kernel must be a 4-D kernel \(c_out, c_in, kh, kw\), got shape \(2, 3\)$"):
        transfer_function(kernel[:, :, 0, 0], z1, z2)
    assert np.abs(value.numpy() - expected).max() < (1e-5 if dtype == torch.float32 else 1e-13)
