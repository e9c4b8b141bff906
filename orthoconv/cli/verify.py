"""``orthoconv verify FILE``: check every model and weight stored in a file."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

from . import args as types

COLUMNS = ["name", "type", "shape", "dtype", "kind", "sigma_min", "sigma_max", "max_deviation", "tol", "verdict",
           "notes"]


def _factory(text: str):
    module_name, sep, attribute = text.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--model must be MODULE:FACTORY (e.g. mypackage.models:build), got {text!r}")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"--model: cannot import {module_name!r} ({err})") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"--model: {module_name} has no callable {attribute!r}")
    return factory


def _build(factory, text: str):
    from torch import nn

    model = factory()
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {text} returned a {type(model).__name__}, not an nn.Module")
    return model


def _short(value) -> str:
    return value if len(value) <= 60 else value[:57] + "..."


def _parametrized(found) -> str | None:
    """The first key saved by ``torch.nn.utils.parametrize`` (``*.parametrizations.NAME.original*``), if any."""
    return next((key for _, state in found for key in state
                 if ".parametrizations." in f".{key}" and ".original" in key), None)


def _raw(args, found, skipped_entries) -> tuple[dict, list[str], int]:
    from ..io import format_table, progress
    from ..verify.weights import ASSUMPTIONS, check_state_dict

    named = not str(args.file).lower().endswith((".npy", ".npz"))
    rows, skipped = [], []
    with progress(total=sum(len(s) for _, s in found), label="verify", enabled=None) as bar:
        for prefix, state in found:
            new_rows, new_skipped = check_state_dict(prefix, state, tuple(args.input_size), args.tol, named,
                                                     args.device, bar)
            rows += new_rows
            skipped += new_skipped
    if not rows:
        raise ValueError(f"{args.file} holds no convolution, linear or orthoconv layer weight")
    table = [{**row.as_dict(), "notes": _short("; ".join(row.notes))} for row in rows]
    lines = [format_table(table, COLUMNS), "",
             "Raw weights are checked under stated assumptions: " + ", ".join(ASSUMPTIONS)
             + " (orthoconv layers: their own configuration). For the real stride, groups, dilation and padding "
             "of each layer, pass --model MODULE:FACTORY --input-shape C H W.",
             "Tolerance by dtype: max(1e-10 float64 | 1e-5 otherwise, u sqrt(taps) ||W||_F), u the unit roundoff."]
    if not named:
        lines.append("Every 2- to 5-D float array of a numpy file is read as a weight (no names to go by).")
    if skipped or skipped_entries:
        lines.append(f"Not weights, skipped: {_short(', '.join(skipped + skipped_entries))}")
    result = {"rows": [row.as_dict() for row in rows], "assumptions": list(ASSUMPTIONS), "skipped": skipped,
              "skipped_entries": skipped_entries}
    return result, lines, 0 if all(row.passed for row in rows) else 1


def _with_model(args, found, skipped_entries) -> tuple[dict, list[str], int]:
    import torch

    from ..verify import check_model
    from ..verify.weights import WeightRow

    factory = _factory(args.model)
    results, lines, status = [], [], 0
    for prefix, state in found:
        model = _build(factory, args.model)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            message = " ".join(str(err).split())
            skipped_entries.append(f"{prefix or '(top)'}: does not fit {args.model} ({_short(message)})")
            continue
        bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()
               and not bool(torch.isfinite(v).all())]
        if bad:
            rows = [WeightRow(f"{prefix}/{k}" if prefix else k, "tensor", tuple(state[k].shape),
                              str(state[k].dtype).split(".")[-1], verdict="non-finite").as_dict() for k in bad]
            results.append({"name": prefix, "rows": rows})
            lines.append(f"{prefix or args.file}: non-finite values in {', '.join(bad)}")
            status = 1
            continue
        param = next(iter(model.parameters()), None)
        dtype = param.dtype if param is not None else torch.float32
        model = model.to(args.device)
        if dtype in (torch.float16, torch.bfloat16):
            lines.append(f"{prefix or args.file}: {dtype} parameters, run in float32 for the check")
            model = model.float()
            dtype = torch.float32
        generator = torch.Generator().manual_seed(args.seed)
        x = torch.randn(1, *args.input_shape, generator=generator, dtype=dtype).to(args.device)
        report = check_model(model, x, args.tol, lower_steps=args.lower_steps)
        results.append({"name": prefix, **report.as_dict()})
        lines += [f"== {prefix or Path(args.file).name} with {args.model} ==", report.table(), ""]
        status = max(status, 0 if all(layer.passed for layer in report.layers) else 1)
    if not results:
        raise ValueError(f"no state_dict in {args.file} fits {args.model}: {skipped_entries[-1] if skipped_entries else ''}")
    if skipped_entries:
        lines.append(f"Skipped: {_short(', '.join(skipped_entries))}")
    return {"models": results, "skipped_entries": skipped_entries}, lines, status


def _finite(value):
    """JSON has no nan or inf: they become null (the verdict column says why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def run(args, extra) -> int:
    from ..io import run_metadata
    from ..verify.checkpoint import load_state_dicts

    if args.model is not None and args.input_shape is None:
        raise ValueError("--model needs --input-shape C H W (the shape of one input sample)")
    found, skipped_entries = load_state_dicts(args.file)
    key = _parametrized(found) if args.model is None else None
    if key is not None:
        raise ValueError(f"{args.file}: its weights are parametrized ({key}: the stored tensors are not the "
                         "weights the model uses): pass --model MODULE:FACTORY --input-shape C H W to verify them")
    if args.model is None and args.input_size is None:
        raise ValueError("--input-size is required without --model (or give --model and --input-shape)")
    result, lines, status = (_raw if args.model is None else _with_model)(args, found, skipped_entries)
    if args.json:
        print(json.dumps(_finite({**result, "metadata": run_metadata(args, args.device)}), indent=2, default=str))
    else:
        print("\n".join(lines))
    return status


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "verify", help="check every model and weight in a checkpoint: spectra, orthogonality, Lipschitz bound",
        description="Read FILE (.pt .pth .pth.tar .bin .ckpt with weights_only=True, .safetensors, .npy, .npz) and "
        "check every state_dict in it (a GAN's generator and discriminator both; optimizer states skipped). "
        "Without --model, each weight is checked under stated assumptions (stride 1, groups 1, dilation 1, circular "
        "padding; orthoconv layers through kernel() with their own configuration). With --model MODULE:FACTORY, "
        "the model is built, loaded and verified with check_model on an input of --input-shape: every layer with "
        "its real stride, groups, dilation and padding, and a certified Lipschitz bound of the whole network. "
        "Exit 0 when every row is orthogonal within its tolerance, 1 otherwise (or non-finite values), "
        "2 when the file or arguments are unusable.")
    parser.add_argument("file", help="the weights file")
    parser.add_argument("--input-size", nargs="+", type=types.positive_int, metavar="N",
                        help="spatial size the raw weights act on: H W (the last 1 or 3 numbers for 1-D/3-D)")
    parser.add_argument("--model", metavar="MODULE:FACTORY",
                        help="an importable callable returning the nn.Module the state dict belongs to")
    parser.add_argument("--input-shape", nargs="+", type=types.positive_int, metavar="N",
                        help="with --model: the shape of one input sample, e.g. C H W")
    parser.add_argument("--tol", type=types.positive_float, default=None,
                        help="tolerance on max|sigma - 1| (default by dtype and kernel size, shown in the table)")
    parser.add_argument("--lower-steps", type=types.non_negative_int, default=10,
                        help="with --model: steps of the empirical lower-bound search (0 skips it)")
    parser.add_argument("--seed", type=types.seed, default=0, help="seed of the example input")
    parser.add_argument("--device", type=types.device, default="cpu", help="cpu, cuda, ... (default cpu)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)
