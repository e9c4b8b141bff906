"""Numpy arrays read out of a pickle's opcodes, never unpickled.

Unpickling runs whatever the file names (``pickle`` calls the globals it references), so a pickled
data set is read here by a small interpreter of the opcodes (:func:`pickletools.genops`) that knows
how to build exactly one thing: numpy arrays of plain numbers, nested in tuples and lists. It
accepts only the globals numpy's array pickles reference (``numpy.core.multiarray._reconstruct``,
``numpy.ndarray``, ``numpy.dtype``; ``numpy._core`` for numpy 2) and calls none of them: a
``REDUCE`` of ``_reconstruct`` or ``dtype`` becomes a placeholder whose ``BUILD`` state (version,
shape, dtype, Fortran order, raw bytes) is checked and turned into an array with
:func:`numpy.frombuffer`. Any other global or opcode is refused with a ``ValueError`` that names it
and its byte offset. This is the layout of Python 2 pickles of protocol 2 (such as the classic
``mnist.pkl.gz``), whose raw bytes are ``BINSTRING`` opcodes.
"""

from __future__ import annotations

import pickletools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

RECONSTRUCT, NDARRAY, DTYPE = "numpy _reconstruct", "numpy ndarray", "numpy dtype"
GLOBALS = {
    "numpy.core.multiarray _reconstruct": RECONSTRUCT,
    "numpy._core.multiarray _reconstruct": RECONSTRUCT,
    "numpy ndarray": NDARRAY,
    "numpy dtype": DTYPE,
}
# plain numeric types only: no object arrays (which would unpickle their elements), no structured types
DTYPES = ("b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8")
BYTE_ORDERS = ("<", ">", "|", "=")
CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
INTEGERS = ("BININT", "BININT1", "BININT2", "LONG1")
STRINGS = ("SHORT_BINSTRING", "BINSTRING", "SHORT_BINUNICODE", "BINUNICODE", "SHORT_BINBYTES", "BINBYTES")
MEMO_PUT = ("BINPUT", "LONG_BINPUT")
MEMO_GET = ("BINGET", "LONG_BINGET")
TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


@dataclass(frozen=True)
class _Global:
    name: str


@dataclass
class _DtypeStub:
    code: str
    order: str = "="

    def resolve(self) -> np.dtype:
        return np.dtype(self.code).newbyteorder(self.order) if self.order in "<>" else np.dtype(self.code)


class _ArrayStub:
    """``_reconstruct(ndarray, (0,), b'b')``: an empty array waiting for its ``BUILD`` state."""


class _Mark:
    pass


def _refuse(what: str, pos: int) -> ValueError:
    return ValueError(f"byte {pos}: {what}; only numpy arrays of plain numbers in tuples and lists are read")


def _raw_bytes(value, pos: int) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):  # Python 2 str: pickletools decodes BINSTRING as latin-1, one char a byte
        return value.encode("latin-1")
    raise _refuse(f"array data of type {type(value).__name__}", pos)


def _reduce(func, args, pos: int):
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        raise _refuse("REDUCE of something other than a permitted global", pos)
    if func.name == RECONSTRUCT:
        if len(args) != 3 or args[0] != _Global(NDARRAY) or args[1] != (0,) or _raw_bytes(args[2], pos) != b"b":
            raise _refuse(f"_reconstruct{args!r} is not numpy's empty-array constructor", pos)
        return _ArrayStub()
    if func.name == DTYPE:
        if len(args) != 3 or args[0] not in DTYPES or args[1:] not in ((0, 1), (False, True)):
            raise _refuse(f"dtype{args!r} is not a plain numeric dtype", pos)
        return _DtypeStub(args[0])
    raise _refuse(f"REDUCE of {func.name}", pos)


def _build(obj, state, pos: int):
    if isinstance(obj, _DtypeStub):
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in BYTE_ORDERS
                and state[2:5] == (None, None, None) and state[5:] == (-1, -1, 0)):
            raise _refuse(f"dtype state {state!r} is not that of a plain numeric dtype", pos)
        obj.order = state[1]
        return obj
    if isinstance(obj, _ArrayStub):
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and isinstance(state[1], tuple)
                and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in state[1])
                and isinstance(state[2], _DtypeStub) and isinstance(state[3], bool)):
            raise _refuse("array state is not (1, shape, dtype, fortran, data)", pos)
        _, shape, dtype, fortran, raw = state
        dtype, raw = dtype.resolve(), _raw_bytes(raw, pos)
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if len(raw) != expected:
            raise _refuse(f"array of shape {shape} and dtype {dtype} needs {expected} bytes, the data hold {len(raw)}",
                          pos)
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    raise _refuse(f"BUILD on {type(obj).__name__}", pos)


def _finished(obj) -> bool:
    """No placeholder (a global, a dtype, an array without its data) is left in ``obj``."""
    if isinstance(obj, (tuple, list)):
        return all(_finished(item) for item in obj)
    return not isinstance(obj, (_Global, _ArrayStub, _DtypeStub, _Mark))


def _pop_mark(stack: list, pos: int) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if isinstance(stack[i], _Mark):
            items = stack[i + 1:]
            del stack[i:]
            return items
    raise _refuse("no MARK before a tuple or list", pos)


def read_pickled_arrays(stream):
    """The object pickled in the binary file ``stream``: numpy arrays in (nested) tuples and lists.

    Reads opcodes until ``STOP``; nothing is unpickled and nothing the file names is called (module
    docstring). Raises ``ValueError`` naming the byte offset for any opcode, global or state this
    reader does not accept, and for a stream that ends before ``STOP``.
    """
    stack: list = []
    memo: dict = {}
    ops: Iterator = pickletools.genops(stream)
    while True:
        try:
            op, arg, pos = next(ops)
        except StopIteration:
            raise ValueError("the pickle ends before its STOP opcode") from None
        except ValueError as err:  # pickletools: a truncated argument or an unknown opcode byte
            raise ValueError(f"not a complete pickle ({err})") from None
        name = op.name
        try:
            if name == "PROTO":
                if arg > 2:
                    raise _refuse(f"pickle protocol {arg} (this reader reads protocols 0 to 2)", pos)
            elif name == "GLOBAL":
                if arg not in GLOBALS:
                    raise _refuse(f"global {arg!r}", pos)
                stack.append(_Global(GLOBALS[arg]))
            elif name in CONSTANTS:
                stack.append(CONSTANTS[name])
            elif name in INTEGERS or name in STRINGS:
                stack.append(arg)
            elif name == "MARK":
                stack.append(_Mark())
            elif name == "TUPLE":
                stack.append(tuple(_pop_mark(stack, pos)))
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in TUPLES:
                n = TUPLES[name]
                items = tuple(stack[len(stack) - n:])
                if len(items) != n:
                    raise _refuse(f"{name} on a stack of {len(stack)}", pos)
                del stack[len(stack) - n:]
                stack.append(items)
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name in ("APPEND", "APPENDS"):
                items = [stack.pop()] if name == "APPEND" else _pop_mark(stack, pos)
                if not stack or not isinstance(stack[-1], list):
                    raise _refuse(f"{name} to something other than a list", pos)
                stack[-1].extend(items)
            elif name in MEMO_PUT:
                memo[arg] = stack[-1]
            elif name in MEMO_GET:
                stack.append(memo[arg])
            elif name == "REDUCE":
                args = stack.pop()
                stack.append(_reduce(stack.pop(), args, pos))
            elif name == "BUILD":
                state = stack.pop()
                stack.append(_build(stack.pop(), state, pos))
            elif name == "STOP":
                if len(stack) != 1 or not _finished(stack[0]):
                    raise _refuse("STOP with an unfinished stack", pos)
                return stack[0]
            else:
                raise _refuse(f"opcode {name}", pos)
        except (IndexError, KeyError):
            raise _refuse(f"{name} on a stack or memo that does not hold its operand", pos) from None
