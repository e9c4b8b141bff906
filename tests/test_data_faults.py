"""Data files that are wrong in ways the loaders used to accept silently or report with a traceback (a
fresh-eyes review): MNIST-5k pixels and labels out of range (wrapped modulo 256), train and test images of
different sizes, truncated gzip files; and SVCM's clip on a spectrum where complex64's SVD fails."""

import gzip

import numpy as np
import pytest
import torch

from orthoconv.data import load, read_idx
from orthoconv.data.datasets import IDX_FILES
from orthoconv.nn.svcm import clip_singular_values

from test_data import write_idx, write_mnist


def write_mnist5k(folder, pixel=0, label=0):
    rows = np.zeros((20, 785), dtype=np.int64)
    rows[:, 784] = np.arange(20) % 10
    rows[0, 5], rows[1, 784] = pixel, label
    with gzip.open(folder / "mnist_5k.csv.gz", "wt") as fh:
        np.savetxt(fh, rows, fmt="%d", delimiter=",")


@pytest.mark.parametrize("pixel, label, message", [(256, 0, "pixels"), (-1, 0, "pixels"), (0, -1, "labels"),
                                                   (0, 10, "labels")])
def test_mnist5k_values_out_of_range_are_refused(tmp_path, pixel, label, message):
    write_mnist5k(tmp_path, pixel, label)
    with pytest.raises(ValueError, match=message):
        load("mnist5k", tmp_path)


def test_train_and_test_images_of_different_sizes_are_refused(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / IDX_FILES["test"][0], np.zeros((20, 32, 32), dtype=np.uint8), compress=True)
    with pytest.raises(ValueError, match="both must have one size"):
        load("mnist", tmp_path)


def test_a_truncated_gzip_file_is_a_value_error_naming_it(tmp_path):
    path = tmp_path / "images.idx.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 100]) + bytes(100))[:-12])
    with pytest.raises(ValueError, match="images.idx.gz"):
        read_idx(path)


def test_svcm_clip_falls_back_to_complex128_where_complex64_does_not_converge(monkeypatch):
    kernel = torch.randn(4, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    expected = clip_singular_values(kernel.double(), (6, 6)).float()
    svd = torch.linalg.svd

    def flaky(A, *args, **kwargs):
        if A.dtype == torch.complex64:
            raise torch.linalg.LinAlgError("linalg.svd: the algorithm failed to converge")
        return svd(A, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", flaky)
    clipped = clip_singular_values(kernel, (6, 6))
    assert clipped.dtype == torch.float32
    assert torch.allclose(clipped, expected, atol=1e-5)
