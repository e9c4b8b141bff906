"""Straight paths between orthogonal kernels of different components leave the orthogonal set.

For kernels ``A`` and ``B`` with different invariants ``det K = s z1^a z2^b``, the segment
``W(t) = (1 - t) A + t B`` is a path of kernels, but not of orthogonal ones: the invariants are
continuous on orthogonal kernels and discrete, so some ``W(t)`` must fail to be orthogonal. Along the
path we record

- the orthogonality defect ``max_w ||K_t(w)^H K_t(w) - I||_F`` over a 32 x 32 frequency grid;
- the tap-weighted degrees ``sum p ||W_pq||^2`` and ``sum q ||W_pq||^2`` of ``W(t)`` (continuous in ``t``;
  integers, the winding numbers of ``det K``, only where ``W(t)`` is orthogonal);
- the nearest BCOP: for every parameter class, fit its factors to ``W(t)`` (L-BFGS, fixed budget,
  restarts), keep the closest kernel and measure ITS invariants with
  :func:`orthoconv.invariants.component_invariants`. They are integers at every ``t`` and change by
  jumps where two classes are equally close.

Li, Haque, Anil, Lucas, Grosse, Jacobsen, NeurIPS 2019 (arXiv 1911.00937), Sec. 4.
"""

from __future__ import annotations

import sys

import torch

from orthoconv.blocks import bcop_kernel
from orthoconv.invariants import component_invariants, kernel_degrees, sample_bcop_factors
from orthoconv.io.table import format_table
from orthoconv.spectral import orthogonality_certificate

from ..common.harness import experiment_parser, run_sweep, save_figure, worker_pool, write_json
from .components import parameter_classes
from .kernel_fit import ParameterClass, fit_class_to_kernel

PATHS = {
    "a+1": (ParameterClass(1, (2,), (1,)), ParameterClass(1, (1,), (1,))),
    "a+2": (ParameterClass(1, (2,), (1,)), ParameterClass(1, (0,), (1,))),
    "sign": (ParameterClass(1, (1,), (1,)), ParameterClass(-1, (1,), (1,))),
}


def endpoints(path: str, n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random kernels of the two end classes of ``path``."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(bcop_kernel(*sample_bcop_factors(n, k, c.p_ranks, c.q_ranks, c.sign, generator)) for c in PATHS[path])


def projection_task(
    path: str, n: int, k: int, t: float, cls: ParameterClass, seed: int, restarts: int, max_iter: int
) -> dict:
    """The closest kernel of class ``cls`` to ``W(t)`` found in ``restarts`` seeded L-BFGS fits."""
    start, end = endpoints(path, n, k, seed)
    target = (1 - t) * start + t * end
    best = None
    for restart in range(restarts):
        trace, fitted = fit_class_to_kernel(target, cls, seed * 1000 + restart, max_iter, 1e-12)
        if best is None or trace.final < best[0]:
            best = (trace.final, fitted)
    return {"path": path, "t": t, "class": cls.label, "distance": best[0], "kernel": best[1].tolist()}


def path_profile(path: str, n: int, k: int, seed: int, ts: list[float], fits: list[dict]) -> list[dict]:
    """Per ``t``: defect and degrees of ``W(t)``, and the invariants of its nearest BCOP."""
    start, end = endpoints(path, n, k, seed)
    rows = []
    for t in ts:
        W = (1 - t) * start + t * end
        a, b = kernel_degrees(W)
        nearest = min((f for f in fits if f["path"] == path and f["t"] == t), key=lambda f: f["distance"])
        inv = component_invariants(torch.tensor(nearest["kernel"], dtype=torch.float64))
        rows.append(
            {
                "path": path,
                "t": t,
                "defect": orthogonality_certificate(W, (32, 32)).gram_deviation,
                "a(W)": float(a),
                "b(W)": float(b),
                "det W(1,1)": float(torch.linalg.det(W.sum(dim=(2, 3)))),
                "nearest class": nearest["class"],
                "distance": nearest["distance"],
                "nearest (s,a,b)": (inv.sign, inv.a, inv.b),
            }
        )
    return rows


def jumps(rows: list[dict]) -> list[dict]:
    """Consecutive ``t`` where the nearest BCOP's invariants change."""
    return [
        {"path": r0["path"], "between": [r0["t"], r1["t"]], "from": r0["nearest (s,a,b)"], "to": r1["nearest (s,a,b)"]}
        for r0, r1 in zip(rows, rows[1:])
        if r0["path"] == r1["path"] and r0["nearest (s,a,b)"] != r1["nearest (s,a,b)"]
    ]


def draw(rows: list[dict]):
    def build(plt):
        paths = list(dict.fromkeys(r["path"] for r in rows))
        figure, axes = plt.subplots(3, len(paths), figsize=(6 * len(paths), 9), squeeze=False, sharex=True)
        for column, path in zip(axes.T, paths):
            mine = [r for r in rows if r["path"] == path]
            ts = [r["t"] for r in mine]
            column[0].plot(ts, [r["defect"] for r in mine], "o-")
            column[0].set_ylabel("max_w ||K^H K - I||_F of W(t)")
            column[0].set_title(f"path '{path}': {PATHS[path][0].label} -> {PATHS[path][1].label}")
            column[1].plot(ts, [r["a(W)"] for r in mine], "-", color="C0", label="a(W(t)) = sum p ||W_pq||^2")
            column[1].plot(ts, [r["b(W)"] for r in mine], "-", color="C1", label="b(W(t))")
            column[1].plot(ts, [r["det W(1,1)"] for r in mine], "-", color="C2", label="det W(t)(1,1)")
            for index, marker, color, name in ((1, "o--", "C0", "a"), (2, "s--", "C1", "b"), (0, "^--", "C2", "sign")):
                values = [r["nearest (s,a,b)"][index] for r in mine]
                column[1].step(ts, values, marker, where="mid", color=color, label=f"{name} of nearest BCOP")
            column[1].legend(fontsize=7)
            column[2].plot(ts, [r["distance"] for r in mine], "o-")
            column[2].set_ylabel("||W(t) - nearest BCOP||_F")
            column[2].set_xlabel("t")
        figure.tight_layout()
        return figure

    return build


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = experiment_parser("homotopy", __doc__.splitlines()[0], prog)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n, k = 2, 2
    steps, restarts, max_iter = (7, 1, 150) if args.quick else (21, 3, 300)
    ts = [i / (steps - 1) for i in range(steps)]
    classes = parameter_classes(n, k, dims=2)
    jobs = [
        {"path": path, "n": n, "k": k, "t": t, "cls": cls, "seed": args.seed, "restarts": restarts, "max_iter": max_iter}
        for path in PATHS
        for t in ts
        for cls in classes
    ]
    with worker_pool(args.workers) as pool:
        fits = run_sweep(projection_task, jobs, pool, "homotopy")
    rows = [row for path in PATHS for row in path_profile(path, n, k, args.seed, ts, fits)]
    shown = [{**row, "nearest (s,a,b)": "({:+d}, {}, {})".format(*row["nearest (s,a,b)"])} for row in rows]
    print(format_table(shown, list(shown[0])))
    found = jumps(rows)
    for jump in found:
        low, high = jump["between"]
        print(f"path '{jump['path']}': nearest BCOP jumps from {jump['from']} to {jump['to']} between t = {low:.3f} and {high:.3f}")
    figure = save_figure(args.out / "homotopy.png", draw(rows))
    for fit in fits:
        fit.pop("kernel")
    data = {"seed": args.seed, "quick": args.quick, "n": n, "k": k, "figure": figure, "profile": rows, "jumps": found}
    path = write_json(args.out / "homotopy.json", {**data, "fits": fits}, args)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
