"""The library's argument checks (orthoconv.math.checks): what each accepts, what it returns, and the error
that names the argument for everything else (booleans are not integers; sizes must be exact integers)."""

import numpy as np
import pytest
import torch

from orthoconv.math.checks import check_input_size, check_kernel, image_size, non_negative_int, pair, positive_int


def test_integers_are_checked_by_value_and_by_type():
    assert positive_int(1, "k") == 1 and positive_int(7, "k") == 7
    assert non_negative_int(0, "n") == 0 and non_negative_int(5, "n") == 5
    for bad in (0, -1, True, 1.0, "1", None):
        with pytest.raises(ValueError, match=f"k must be a positive integer, got {bad!r}"):
            positive_int(bad, "k")
    for bad in (-1, False, 0.0, "0", None):
        with pytest.raises(ValueError, match=f"n must be a non-negative integer, got {bad!r}"):
            non_negative_int(bad, "n")


def test_pair_takes_an_int_or_two_and_names_the_argument():
    assert pair(3, "kernel_size") == (3, 3)
    assert pair((2, 5), "kernel_size") == (2, 5) and pair([4, 1], "kernel_size") == (4, 1)
    for bad in ((1, 2, 3), (1,), []):
        with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair of ints, got"):
            pair(bad, "kernel_size")
    for bad in ((0, 2), (2, 0), (2, True), 0, "ab"):
        with pytest.raises(ValueError, match="kernel_size must be a positive integer"):
            pair(bad, "kernel_size")


def test_image_size_accepts_exact_integers_only():
    assert image_size(5) == (5, 5) and image_size((3, 4)) == (3, 4)
    assert image_size((np.int64(2), 3.0)) == (2, 3) and image_size(torch.Size([6, 1])) == (6, 1)
    for bad in ((0, 3), (3, 0), (2.5, 3), (True, 3), (3, False), 0, -2):
        with pytest.raises(ValueError, match=r"input_size must be positive integers \(H, W\), got"):
            image_size(bad)
    for bad in ("ab", (1, 2, 3), None, ("a", 2)):
        with pytest.raises(TypeError, match=r"size must be an int or a pair \(H, W\) of positive integers, got"):
            image_size(bad, "size")
    assert check_input_size((2, 3)) == (2, 3)
    with pytest.raises(ValueError, match=r"input_size must be positive, got \(2, 0\)"):
        check_input_size((2, 0))
    with pytest.raises(TypeError, match="input_size must be a pair"):
        check_input_size(3)


@pytest.mark.parametrize(
    "kernel, error, match",
    [
        (np.ones((1, 1, 1, 1)), TypeError, "kernel must be a torch.Tensor, got ndarray"),
        (torch.ones(1, 1, 3), ValueError, r"kernel must be 4-D \(c_out, c_in, kh, kw\), got shape \(1, 1, 3\)"),
        (torch.ones(1, 1, 1, 1, dtype=torch.int32), TypeError, "real floating point tensor, got dtype torch.int32"),
        (torch.ones(1, 1, 1, 1, dtype=torch.complex64), TypeError, "got dtype torch.complex64"),
        (torch.tensor([[[[1.0, float("inf")]]]]), ValueError, "non-finite"),
    ],
)
def test_check_kernel_refuses(kernel, error, match):
    with pytest.raises(error, match=match):
        check_kernel(kernel)


def test_check_kernel_accepts_every_real_dtype():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        check_kernel(torch.zeros(2, 1, 3, 3, dtype=dtype))
