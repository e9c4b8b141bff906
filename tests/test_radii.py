"""Certified radii and accuracies (orthoconv.certify.radii): exact values against the margin formula, the exact
distance to the decision boundary of linear classifiers, and the errors for logits and labels that certify nothing."""

import math

import pytest
import torch

import orthoconv as oc
from orthoconv.certify import certified_accuracy, certified_radii

F64 = torch.float64


def test_radius_is_a_lower_bound_on_the_distance_to_the_decision_boundary():
    """For a linear classifier f(x) = W x the exact distance to the boundary between y and j is
    (f_y - f_j) / ||w_y - w_j||; the certified radius never exceeds it and equals it when the rows of
    W are orthonormal (then ||w_y - w_j|| = sqrt(2) = sqrt(2) ||W||)."""
    g = torch.Generator().manual_seed(0)
    generic = torch.randn(5, 8, generator=g, dtype=F64)
    for W in (generic, oc.nn.linear.orthogonal_matrix(torch.randn(5, 8, generator=g, dtype=F64))):
        x = torch.randn(50, 8, generator=g, dtype=F64)
        logits = x @ W.T
        labels = logits.argmax(1)
        L = float(torch.linalg.matrix_norm(W, ord=2))
        radii = certified_radii(logits, labels, L)
        diff = W[labels][:, None, :] - W[None, :, :]  # (N, classes, features)
        gaps = logits.gather(1, labels[:, None]) - logits
        own = torch.nn.functional.one_hot(labels, 5).bool()
        dist = (gaps / torch.linalg.vector_norm(diff, dim=-1)).masked_fill(own, math.inf)
        exact = dist.min(1).values
        assert bool((radii <= exact * (1 + 1e-12)).all())
        if abs(L - 1) < 1e-12:
            assert torch.allclose(radii, exact, rtol=1e-12)


def test_certified_accuracy_counts_margins():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.5], [1.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    labels = torch.tensor([0, 1, 0, 1])
    # margins 2, 0.5, 0 (tie), -1
    assert certified_accuracy(logits, labels, 1.0, 0.0) == 0.5
    assert certified_accuracy(logits, labels, 2.0, 0.2) == 0.25  # 0.5 <= sqrt(2) 0.2 2 = 0.566 < 2
    assert certified_accuracy(logits, labels, 1.0, 2.0) == 0.0
    radii = certified_radii(logits, labels, 2.0)
    assert torch.equal(radii, torch.tensor([2.0, 0.5, 0.0, 0.0], dtype=torch.float64) / (2 * math.sqrt(2)))


@pytest.mark.parametrize("L", [0.5, 1.0, 3.0])
def test_radii_are_exact_and_the_margin_threshold_is_strict(L):
    """radius = (f_y - max_{j != y} f_j)^+ / (sqrt(2) L), exactly: the runner-up is the largest OTHER logit (not
    the second column, not the smallest one), and an example certified at eps needs margin > sqrt(2) eps L."""
    logits = torch.tensor([[0.0, 5.0, 4.0, -3.0], [7.0, 1.0, 6.5, 2.0], [1.0, 9.0, 2.0, 9.0]], dtype=F64)
    labels = torch.tensor([1, 0, 3])
    margins = torch.tensor([1.0, 0.5, 0.0], dtype=F64)
    assert torch.equal(certified_radii(logits, labels, L), margins / (math.sqrt(2) * L))
    for eps, expected in ((0.0, 2 / 3), (0.5 / (math.sqrt(2) * L) * (1 - 1e-9), 2 / 3), (1 / (math.sqrt(2) * L), 0.0)):
        assert certified_accuracy(logits, labels, L, eps) == pytest.approx(expected, abs=0)
    assert certified_accuracy(logits, labels, L, 0.75 / (math.sqrt(2) * L)) == 1 / 3


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("column", [0, 1])
def test_non_finite_logits_are_refused(value, column):
    """An inf logit would give an infinite radius ("certified everywhere"), a nan one a nan radius: both raise."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]], dtype=F64)
    logits[2, column] = value
    labels = torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match=r"logits must be finite: 1 entries are inf or nan \(rows \[2\]"):
        certified_radii(logits, labels, 1.0)
    with pytest.raises(ValueError, match="logits must be finite"):
        certified_accuracy(logits, labels, 1.0, 0.1)


def test_non_finite_rows_are_named_and_at_most_five_listed():
    logits = torch.zeros(8, 3, dtype=F64)
    labels = torch.zeros(8, dtype=torch.int64)
    logits[[1, 2, 3, 5, 7], 0] = math.nan
    with pytest.raises(ValueError, match=r"5 entries are inf or nan \(rows \[1, 2, 3, 5, 7\]\); no radius"):
        certified_radii(logits, labels, 1.0)
    logits[6, 2] = math.inf
    with pytest.raises(ValueError, match=r"6 entries are inf or nan \(rows \[1, 2, 3, 5, 6\], \.\.\.\); no radius"):
        certified_radii(logits, labels, 1.0)


def test_certified_accuracy_of_one_example_and_of_none():
    assert certified_accuracy(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), 1.0, 0.0) == 1.0
    with pytest.raises(ValueError, match="at least one example"):
        certified_accuracy(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64), 1.0, 0.0)
    assert certified_radii(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64), 1.0).shape == (0,)



def test_radii_are_computed_on_the_device_of_the_logits(device):
    logits = torch.randn(5, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1])
    radii = certified_radii(logits.to(device), labels.to(device), 2.0)
    assert radii.device.type == device
    assert torch.equal(radii.cpu(), certified_radii(logits, labels, 2.0))
    accuracy = certified_accuracy(logits, labels, 2.0, 0.1)
    assert certified_accuracy(logits.to(device), labels.to(device), 2.0, 0.1) == accuracy
    nan_logits, label = torch.full((1, 2), math.nan, device=device), torch.zeros(1, dtype=torch.int64, device=device)
    with pytest.raises(ValueError, match="logits must be finite"):
        certified_radii(nan_logits, label, 1.0)


BAD = [
    (lambda: certified_radii(torch.randn(3), torch.tensor([0, 1, 0]), 1.0), ValueError,
     r"logits must be a \(N, classes\) tensor with at least 2 classes, got torch.Size\(\[3\]\)"),
    (lambda: certified_radii([[1.0, 0.0]], torch.tensor([0]), 1.0), ValueError, r"got \[\[1.0, 0.0\]\]"),
    (lambda: certified_radii(torch.randn(3, 2), torch.tensor([0, 1]), 1.0), ValueError,
     r"labels must be a 1-D tensor of length N = 3, got torch.Size\(\[2\]\)"),
    (lambda: certified_radii(torch.randn(3, 2), [0, 1, 0], 1.0), ValueError, r"N = 3, got \[0, 1, 0\]"),
    (lambda: certified_radii(torch.randn(3, 2), torch.tensor([0, 1, 2]), 1.0), ValueError, "labels must lie"),
    (lambda: certified_radii(torch.randn(3, 2), torch.tensor([0.0, 1, 0]), 1.0), TypeError, "integer"),
    (lambda: certified_radii(torch.randn(3, 2), torch.tensor([True, False, True]), 1.0), TypeError, "torch.bool"),
    (lambda: certified_radii(torch.randn(3, 2), torch.tensor([0, 1, 0]), 0.0), ValueError, "lipschitz"),
    (lambda: certified_accuracy(torch.randn(3, 2), torch.tensor([0, 1, 0]), 1.0, -0.1), ValueError, "eps"),
    (lambda: certified_accuracy(torch.randn(3, 2), torch.tensor([0, 1, 0]), 1.0, "x"), TypeError,
     "eps must be a number, got str"),
]


@pytest.mark.parametrize("build, error, match", BAD)
def test_bad_input_raises(build, error, match):
    with pytest.raises(error, match=match):
        build()
