"""Wasserstein-1: the exact assignment against brute force and the transport LP, the closed forms of the
known problems, the estimator's division by the certified L, and the soundness check catching a critic
that is not 1-Lipschitz."""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from torch import nn

from orthoconv.wasserstein import (
    blank_vs_square,
    critic_lipschitz,
    critic_value,
    estimate_w1,
    estimate_w1_heldout,
    exact_w1,
    gaussian_translation,
    is_sound,
    optimal_assignment,
    square_side_w1,
    translation,
)


def brute_force_w1(a: np.ndarray, b: np.ndarray) -> float:
    """min over every permutation of the mean matched distance (numpy, float64)."""
    n = len(a)
    dist = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return min(dist[np.arange(n), list(p)].mean() for p in itertools.permutations(range(n)))


def transport_lp_w1(a: np.ndarray, b: np.ndarray) -> float:
    """W1 as the transport linear program over ALL plans (marginals 1/n), not only permutations."""
    n = len(a)
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).ravel()
    rows = np.kron(np.eye(n), np.ones(n))
    cols = np.kron(np.ones(n), np.eye(n))
    done = linprog(cost, A_eq=np.vstack([rows, cols]), b_eq=np.full(2 * n, 1 / n), bounds=(0, None), method="highs")
    assert done.status == 0
    return done.fun


@st.composite
def sample_pairs(draw, max_n=7):
    n = draw(st.integers(1, max_n))
    shape = draw(st.sampled_from([(1,), (3,), (2, 2), (1, 3, 2)]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 50.0]))
    return (scale * torch.randn((n, *shape), generator=g, dtype=torch.float64),
            scale * torch.randn((n, *shape), generator=g, dtype=torch.float64))


@given(sample_pairs())
def test_exact_w1_is_the_minimum_over_all_permutations(pair):
    x_p, x_q = pair
    brute = brute_force_w1(x_p.flatten(1).numpy(), x_q.flatten(1).numpy())
    assert exact_w1(x_p, x_q) == pytest.approx(brute, rel=1e-12, abs=1e-15)


@settings(max_examples=25)
@given(sample_pairs(max_n=5))
def test_exact_w1_equals_the_transport_lp_over_all_plans(pair):
    """Birkhoff: allowing every plan, not only permutations, gives the same optimum."""
    x_p, x_q = pair
    lp = transport_lp_w1(x_p.flatten(1).numpy(), x_q.flatten(1).numpy())
    assert exact_w1(x_p, x_q) == pytest.approx(lp, rel=1e-7, abs=1e-12)


def test_optimal_assignment_returns_the_plan_it_prices():
    g = torch.Generator().manual_seed(3)
    x_p, x_q = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    w1, plan = optimal_assignment(x_p, x_q)
    assert sorted(plan.tolist()) == list(range(6))
    assert w1 == pytest.approx(float((x_p - x_q[plan]).norm(dim=1).mean()), rel=1e-14)


def test_exact_w1_is_symmetric_and_zero_on_permuted_copies():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 5, generator=g, dtype=torch.float64)
    y = torch.randn(9, 5, generator=g, dtype=torch.float64)
    assert exact_w1(x, y) == pytest.approx(exact_w1(y, x), rel=1e-13)
    assert exact_w1(x, x[torch.randperm(9, generator=g)]) == 0.0


@pytest.mark.parametrize(
    "x_p, x_q, error, match",
    [
        (torch.zeros(3, 4), torch.zeros(3, 5), ValueError, "same sample shape"),
        (torch.zeros(3, 4), torch.zeros(4, 4), ValueError, "same number of samples"),
        (torch.zeros(0, 4), torch.zeros(0, 4), ValueError, "at least 1"),
        (torch.zeros(3), torch.zeros(3), ValueError, "sample dimension"),
        (torch.zeros(3, 4, dtype=torch.int64), torch.zeros(3, 4), TypeError, "floating"),
        (torch.full((2, 2), math.nan), torch.zeros(2, 2), ValueError, "non-finite"),
        ([[0.0]], torch.zeros(1, 1), TypeError, "torch.Tensor"),
    ],
)
def test_exact_w1_rejects_bad_samples(x_p, x_q, error, match):
    with pytest.raises(error, match=match):
        exact_w1(x_p, x_q)


@given(sample_pairs(max_n=6), st.floats(0.01, 100.0))
def test_translation_closed_form_is_the_exact_empirical_w1(pair, shift):
    """(a) W1(P_n, P_n + delta) = ||delta|| for any sample set: the assignment agrees."""
    x, direction = pair[0], pair[1][0]
    if float(direction.norm()) == 0:
        return
    delta = shift * direction / direction.norm()
    problem = translation(x, delta)
    assert problem.true_w1 == pytest.approx(shift, rel=1e-12)
    assert exact_w1(problem.x_p, problem.x_q) == pytest.approx(shift, rel=1e-9)


def test_gaussian_translation_problem():
    problem = gaussian_translation(n=6, shape=(1, 4, 4), shift=2.5, seed=1)
    assert problem.x_p.shape == (6, 1, 4, 4) and problem.x_p.dtype == torch.float64
    assert problem.true_w1 == pytest.approx(2.5, rel=1e-14) and problem.population
    assert exact_w1(problem.x_p, problem.x_q) == pytest.approx(2.5, rel=1e-12)


@pytest.mark.parametrize("size, side, channels", [(8, 3, 1), (12, 7, 3), (64, 35, 1)])
def test_blank_vs_square_closed_form(size, side, channels):
    """(b) W1 = side sqrt(channels): the assignment agrees, every square image has that norm and both
    signs occur (so no linear critic reaches it)."""
    problem = blank_vs_square(n=7, input_size=size, side=side, channels=channels, seed=2)
    expected = side * math.sqrt(channels)
    assert problem.true_w1 == square_side_w1(side, channels) == pytest.approx(expected, rel=1e-15)
    assert torch.all(problem.x_p == 0)
    assert torch.allclose(problem.x_q.flatten(1).norm(dim=1), torch.full((7,), expected, dtype=torch.float64))
    assert set(problem.x_q.flatten(1).sum(1).sign().tolist()) == {-1.0, 1.0}
    assert exact_w1(problem.x_p, problem.x_q) == pytest.approx(expected, rel=1e-12)
    if (size, side) == (64, 35):
        assert problem.true_w1 == 35.0


def test_blank_vs_square_rejects_a_square_larger_than_the_image():
    with pytest.raises(ValueError, match="side"):
        blank_vs_square(n=2, input_size=8, side=9)


def linear_critic(weight: torch.Tensor) -> nn.Sequential:
    """f(x) = <weight, x>: Lipschitz constant ||weight||."""
    linear = nn.Linear(weight.numel(), 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(weight.reshape(1, -1))
    return nn.Sequential(nn.Flatten(), linear)


def test_estimator_divides_by_the_certified_lipschitz_constant():
    """raw = <w, mean p - mean q> for the trained linear critic, L = ||w||, estimate = raw / L,
    all recomputed here from the final weights."""
    g = torch.Generator().manual_seed(0)
    x_p = torch.randn(12, 5, generator=g, dtype=torch.float64) + 1.0
    x_q = torch.randn(12, 5, generator=g, dtype=torch.float64)
    critic = linear_critic(5.0 * torch.ones(5))
    result = estimate_w1(critic, x_p, x_q, steps=3, batch_size=4, lr=0.1, seed=0, log_points=3)
    w = critic[1].weight.detach().flatten()
    raw = float(w @ (x_p.mean(0) - x_q.mean(0)))
    assert result.raw == pytest.approx(raw, rel=1e-12)
    assert result.lipschitz == pytest.approx(float(w.norm()), rel=1e-12)
    assert result.lipschitz > 4  # far from 1: the division matters
    assert result.estimate == pytest.approx(raw / float(w.norm()), rel=1e-12)
    assert [h["step"] for h in result.history] == [0, 1, 2, 3]
    assert is_sound(result.estimate, exact_w1(x_p, x_q))


def scaled_plain_conv_critic(scale: float) -> nn.Sequential:
    """A plain circular 3x3 convolution whose operator norm is exactly ``scale`` (a centered delta kernel
    times ``scale``), then a unit-norm linear head."""
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = scale
    return nn.Sequential(conv, nn.Flatten(), nn.Linear(16, 1, bias=False, dtype=torch.float64))


def test_soundness_check_catches_a_plain_conv_scaled_by_three():
    """A 3-Lipschitz critic taken as 1-Lipschitz exceeds the exact W1 on the samples it is scored on;
    divided by its measured L it does not."""
    g = torch.Generator().manual_seed(1)
    x_p = torch.rand(10, 1, 4, 4, generator=g, dtype=torch.float64)
    x_q = torch.rand(10, 1, 4, 4, generator=g, dtype=torch.float64) + 0.3
    exact = exact_w1(x_p, x_q)
    critic = scaled_plain_conv_critic(3.0)
    with torch.no_grad():
        direction = (x_p.mean(0) - x_q.mean(0)).flatten()
        critic[2].weight.copy_(direction / direction.norm())
    raw, lipschitz = critic_value(critic, x_p, x_q)
    assert lipschitz == pytest.approx(3.0, rel=1e-12)
    assert not is_sound(raw, exact)  # raw = 3 ||mean p - mean q|| > W1 here
    assert is_sound(raw / lipschitz, exact)


def test_soundness_check_catches_a_trained_scaled_conv_critic():
    """Trained by the estimator: the undivided value is unsound, the estimate is sound."""
    g = torch.Generator().manual_seed(2)
    x_p = torch.rand(10, 1, 4, 4, generator=g, dtype=torch.float64)
    x_q = torch.rand(10, 1, 4, 4, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    critic = scaled_plain_conv_critic(3.0)
    result = estimate_w1(critic, x_p, x_q, steps=60, batch_size=10, lr=0.05, seed=0, log_points=2)
    exact = exact_w1(x_p, x_q)
    assert not is_sound(result.raw, exact)
    assert is_sound(result.estimate, exact)
    assert result.lipschitz > 1


def test_is_sound_rejects_a_bad_exact_value():
    with pytest.raises(ValueError, match="exact"):
        is_sound(1.0, -1.0)
    assert is_sound(1.0, 1.0) and not is_sound(1.0 + 1e-6, 1.0)


def test_heldout_estimate_is_the_critic_value_on_the_held_out_samples():
    g = torch.Generator().manual_seed(4)
    x_p = torch.randn(20, 3, generator=g, dtype=torch.float64) + 2.0
    x_q = torch.randn(20, 3, generator=g, dtype=torch.float64)
    critic = linear_critic(torch.ones(3))
    result = estimate_w1_heldout(critic, x_p, x_q, steps=5, batch_size=8, lr=0.1, seed=7, held_out=0.25)
    split = torch.Generator().manual_seed(7)
    held_p = x_p[torch.randperm(20, generator=split)[:5]]
    held_q = x_q[torch.randperm(20, generator=split)[:5]]
    raw, lipschitz = critic_value(critic, held_p, held_q)
    assert result.raw == pytest.approx(raw, rel=1e-12) and result.lipschitz == pytest.approx(lipschitz, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"x_q": torch.zeros(5, 4)}, ValueError, "same sample shape"),
        ({"x_p": torch.zeros(1, 3)}, ValueError, "at least 2"),
        ({"steps": 0}, ValueError, "steps"),
        ({"batch_size": -1}, ValueError, "batch_size"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": math.inf}, ValueError, "lr"),
        ({"eval_p": torch.zeros(5, 4), "eval_q": torch.zeros(5, 4)}, ValueError, "eval_p"),
    ],
)
def test_estimator_rejects_bad_arguments(kwargs, error, match):
    args = {"critic": linear_critic(torch.ones(3)), "x_p": torch.zeros(5, 3), "x_q": torch.ones(5, 3),
            "steps": 2, "batch_size": 2, "lr": 0.1, "seed": 0, **kwargs}
    with pytest.raises(error, match=match):
        estimate_w1(**args)


def test_estimator_rejects_a_critic_it_cannot_certify():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    with pytest.raises(TypeError, match="LayerNorm"):
        estimate_w1(critic, torch.zeros(4, 3), torch.ones(4, 3), steps=1)


def test_critic_lipschitz_of_a_vector_critic():
    critic = linear_critic(torch.tensor([3.0, 4.0]))
    assert critic_lipschitz(critic, (2,)) == pytest.approx(5.0, rel=1e-14)
