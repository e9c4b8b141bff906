"""Pairs of sample sets whose Wasserstein-1 distance is known exactly, to measure estimators against.

Every problem gives float64 samples ``x_p``, ``x_q`` of shape ``(N, *shape)`` and ``true_w1``, the
exact ``W1`` between the uniform empirical measures of the two sets in the Euclidean norm of the
flattened samples (so a certified critic evaluated on them can never exceed it). For (a) and (b) it
is also the population value.

- (a) :func:`translation`: ``Q = P + delta``, ``W1 = ||delta||`` (:func:`gaussian_translation`,
  :func:`mnist_translation`).
- (b) :func:`blank_vs_square`: all-zero images against images carrying a +-1 square.
- (c) :func:`mnist_halves`: real digits 0-4 against 5-9; ``true_w1`` by :func:`exact_w1`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from ..math.checks import image_size, positive_int
from .exact import exact_w1
from .samples import check_samples


@dataclass(frozen=True)
class Problem:
    """Two sample sets and their exact ``W1``.

    ``name``: a short identifier; ``x_p``, ``x_q``: float64 ``(N, *shape)``; ``true_w1``: the exact
    ``W1`` of their uniform empirical measures (module docstring); ``population``: whether it is also
    ``W1`` of the distributions the sets are drawn from; ``description``: one line for tables.
    """

    name: str
    x_p: Tensor
    x_q: Tensor
    true_w1: float
    population: bool
    description: str

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x_p.shape[1:])


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(shape)
    if not shape:
        raise ValueError("shape must have at least one dimension")
    return tuple(positive_int(s, "shape") for s in shape)


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def random_direction(shape, seed: int) -> Tensor:
    """A unit vector of ``shape`` (float64), uniform on the sphere: a normalized seeded Gaussian."""
    g = torch.randn(_shape(shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return g / torch.linalg.vector_norm(g)


def translation(x: Tensor, delta: Tensor, name: str = "translation", description: str = "") -> Problem:
    """``x_p = x`` and ``x_q = x + delta`` (each sample shifted by the same ``delta``), ``W1 = ||delta||_2``.

    Proof: the coupling ``x -> x + delta`` moves every sample by ``||delta||``, so ``W1 <= ||delta||``;
    the 1-Lipschitz critic ``f(y) = -<y, delta> / ||delta||`` has ``mean f(x_p) - mean f(x_q) =
    ||delta||``, so ``W1 >= ||delta||``. Both hold for the empirical measures and for ``P`` and
    ``P + delta``. ``x``: ``(N, *shape)`` with ``N >= 1``; ``delta``: ``shape``, not zero.
    """
    if not isinstance(delta, Tensor) or not delta.is_floating_point():
        raise TypeError(f"delta must be a floating point tensor, got {type(delta).__name__}")
    check_samples(x, x)
    if tuple(delta.shape) != tuple(x.shape[1:]):
        raise ValueError(f"delta must have the sample shape {tuple(x.shape[1:])}, got {tuple(delta.shape)}")
    x = x.to(torch.float64)
    delta = delta.to(x.device, torch.float64)
    norm = float(torch.linalg.vector_norm(delta))
    if not 0 < norm < math.inf:
        raise ValueError(f"delta must be finite and non-zero, got norm {norm}")
    return Problem(name, x, x + delta, norm, True, description or f"Q = P + delta, ||delta|| = {norm:.4g}")


def gaussian_translation(n: int = 1000, shape=(1, 28, 28), shift: float = 2.0, seed: int = 0) -> Problem:
    """(a) ``P = N(0, I_d)`` (``d = prod(shape)``, ``n`` samples) against ``P + delta``, ``delta`` of norm
    ``shift`` in a seeded uniformly random direction: ``W1 = shift``. Images of i.i.d. Gaussian pixels
    by default, so that convolutional and MLP critics see the same problem."""
    shape = _shape(shape)
    shift = _positive(shift, "shift")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((positive_int(n, "n"), *shape), generator=generator, dtype=torch.float64)
    d = math.prod(shape)
    return translation(x, shift * random_direction(shape, seed + 1), "a-gauss",
                       f"N(0, I_{d}) vs N(0, I_{d}) + delta, ||delta|| = {shift:g}")


@lru_cache(maxsize=1)
def _mnist5k() -> tuple[Tensor, Tensor]:
    from ..data import read_mnist5k

    return read_mnist5k()


def mnist_images(digits, n: int, seed: int) -> Tensor:
    """``n`` of the MNIST-5k images (:func:`orthoconv.data.read_mnist5k`, read once per process) whose
    label is in ``digits``, drawn without replacement with ``seed``, as float64 ``(n, 1, 28, 28)`` in [0, 1]."""
    images, labels = _mnist5k()
    pool = torch.nonzero(torch.isin(labels, torch.as_tensor(list(digits)))).flatten()
    n = positive_int(n, "n")
    if n > pool.numel():
        raise ValueError(f"n = {n} exceeds the {pool.numel()} MNIST-5k images of digits {list(digits)}")
    chosen = pool[torch.randperm(pool.numel(), generator=torch.Generator().manual_seed(seed))[:n]]
    return images[chosen].to(torch.float64).div_(255).unsqueeze(1)


def mnist_translation(n: int = 1000, shift: float = 2.0, seed: int = 0) -> Problem:
    """(a) ``n`` real MNIST-5k digits (pixels in [0, 1]) against the same digits plus one fixed image
    ``delta`` of norm ``shift`` in a seeded random direction: ``W1 = shift``."""
    shift = _positive(shift, "shift")
    x = mnist_images(range(10), n, seed)
    return translation(x, shift * random_direction(x.shape[1:], seed + 1), "a-mnist",
                       f"MNIST-5k vs MNIST-5k + delta, ||delta|| = {shift:g}")


def square_side_w1(side: int, channels: int = 1) -> float:
    """The closed form of :func:`blank_vs_square`: ``W1 = side sqrt(channels)``."""
    return positive_int(side, "side") * math.sqrt(positive_int(channels, "channels"))


def blank_vs_square(n: int = 1000, input_size=28, side: int = 15, channels: int = 1, seed: int = 0) -> Problem:
    """(b) ``n`` all-zero images against ``n`` images that are zero except for a ``side x side`` square
    (centered, in every channel) whose pixels are all ``+1`` or all ``-1``, the sign drawn per image.

    Closed form: ``W1 = side sqrt(channels)``. Every plan from the point mass ``delta_0`` moves each
    square image ``y`` to 0, so ``W1 = E_Q ||y - 0|| = ||y||``, and every square image has
    ``side^2 channels`` pixels of absolute value 1: ``||y|| = side sqrt(channels)``. The same holds
    for the empirical measures. The optimal critic ``f(x) = -||x||`` is not linear (both signs occur,
    so every linear critic averages to ``|mean y|``, near 0); on these images it is
    ``-|<x, u>|`` with ``u`` the normalized square. (A 64 x 64 image with ``side = 35``, 30% of the
    pixels, gives 35.)
    """
    H, W = image_size(input_size)
    side = positive_int(side, "side")
    if side > min(H, W):
        raise ValueError(f"side = {side} does not fit in a {H}x{W} image")
    n, channels = positive_int(n, "n"), positive_int(channels, "channels")
    signs = torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(seed)).to(torch.float64) * 2 - 1
    top, left = (H - side) // 2, (W - side) // 2
    squares = torch.zeros(n, channels, H, W, dtype=torch.float64)
    squares[:, :, top:top + side, left:left + side] = signs[:, None, None, None]
    blank = torch.zeros_like(squares)
    return Problem("b-square", blank, squares, square_side_w1(side, channels), True,
                   f"blank vs +-1 square {side}x{side} on {H}x{W}")


def mnist_halves(n: int = 500, seed: int = 0) -> Problem:
    """(c) ``n`` MNIST-5k digits 0-4 against ``n`` digits 5-9 (pixels in [0, 1], drawn with ``seed``);
    ``true_w1`` is the exact empirical ``W1`` (:func:`exact_w1`), not the population value."""
    x_p = mnist_images(range(5), n, seed)
    x_q = mnist_images(range(5, 10), n, seed + 1)
    return Problem("c-mnist", x_p, x_q, exact_w1(x_p, x_q), False, f"MNIST-5k digits 0-4 vs 5-9, n = {n} each")
