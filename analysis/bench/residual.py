"""What CPL's certified step costs (a benchmark, not a test): tightness of ``beta`` and its time, in one run.

CPL (:class:`orthoconv.CPL`) computes ``h = 2 / beta^2`` with ``beta`` a certified upper bound of ``||W||`` by
Gram iteration per frequency (``gram_steps`` squarings; zero padding on the circular grid enlarged by
``k // 2``). For kernels ``c x c x 3 x 3`` on ``n x n`` images, float64:

- ``beta/norm``: ``beta`` over the true norm (circular: the exact FFT norm; zeros: the exact norm of the dense
  zero-padded operator where ``c n^2 <= 2048``, else a lower bound by 300 power-iteration steps, so that the ratio
  is then an upper estimate of the looseness). 1 would be exact; the layer's correction term is
  ``(beta/norm)^2`` times smaller than the published layer's at the same kernel.
- kernels: ``init`` (``nn.Conv2d``'s default), ``smooth`` (one shared matrix plus 0.3 x Gaussian taps: a
  low-frequency peak, as trained filters often have) and ``orthogonal`` (a BCOP kernel: every singular value of
  every frequency 1, the worst case of Gram iteration, ``beta/norm = c^(2^-(t+2))`` at ``t`` steps).
- ``step ms`` / ``beta ms``: one training step (forward and backward, batch ``--batch``) of a CPL layer, and of
  the ``beta`` computation alone (forward and backward), timed interleaved (:mod:`analysis.common.timing`).

And what each of AOL, CPL, SLL, Sandwich keeps of its promise (``--draws`` random layers each, seeded: widths 1 to
4, kernels 1 to 3, images 1 to 6, both paddings where the layer has them, random biases / ``q`` / ``psi`` and three
Adam steps): the largest ``sigma_max`` of the dense Jacobian of the layer's own forward at a random point
(float64), the largest ``check_model`` upper bound, and the smallest ``upper - sigma_max`` (never negative).

``python -m analysis.bench.residual [--quick] [--seed S] [--draws N] [--batch B] [--threads N] [--json FILE]``
"""

from __future__ import annotations

import torch

import orthoconv as oc
from orthoconv.cli.args import Parser, output_file, positive_int
from orthoconv.io import format_table, load_average, run_metadata, write_json
from orthoconv.nn.cpl import cpl_norm_squared
from orthoconv.spectral import dense_operator

from ..common.timing import add_policy_arguments, policy_from, timed_row

F64 = torch.float64
STEPS = (2, 4, 6, 8)


def kernel(kind: str, c: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    if kind == "init":
        return oc.CPL(c, c, 3, dtype=F64).weight.detach()
    if kind == "smooth":
        shared = torch.randn(c, c, 1, 1, dtype=F64)
        return shared + 0.3 * torch.randn(c, c, 3, 3, dtype=F64)
    return oc.BCOP(c, c, 3, dtype=F64).kernel().detach()


def true_norm(K: torch.Tensor, n: int, padding: str) -> float:
    if padding == "circular":
        return oc.spectral.circular_spectral_norm(K, (n, n))
    if K.shape[1] * n * n <= 2048:
        return float(torch.linalg.matrix_norm(dense_operator(K, (n, n), "zeros"), ord=2))
    return oc.spectral.power_iteration_norm(K, (n, n), "zeros", n_iter=300)


def tightness_rows(channels, sizes, seed: int) -> list[dict]:
    rows = []
    for c in channels:
        for kind in ("init", "smooth", "orthogonal"):
            K = kernel(kind, c, seed)
            for n in sizes:
                for padding in ("circular", "zeros"):
                    norm = true_norm(K, n, padding)
                    row = {"kernel": kind, "c": c, "n": n, "padding": padding}
                    for steps in STEPS:
                        beta = float(cpl_norm_squared(K, (n, n), padding, steps)) ** 0.5
                        row[f"t={steps}"] = beta / norm
                    rows.append(row)
    return rows


def sides(layer: oc.CPL, x: torch.Tensor):
    """A training step of ``layer`` on ``x``, and the ``beta`` computation alone (forward and backward)."""
    size = tuple(x.shape[-2:])

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x).square().sum().backward()

    def beta() -> None:
        layer.zero_grad(set_to_none=True)
        cpl_norm_squared(layer.weight, size, "circular", layer.gram_steps).backward()

    return [step, beta]


def timing_rows(channels, n: int, batch: int, policy) -> list[dict]:
    rows = []
    for c in channels:
        torch.manual_seed(0)
        (t_step, t_beta), info = timed_row(sides(oc.CPL(c, c, 3), torch.randn(batch, c, n, n)), policy)
        rows.append({"c": c, "n": n, "batch": batch, "step ms": 1e3 * t_step.median, "beta ms": 1e3 * t_beta.median,
                     "beta/step": t_beta.median / t_step.median, "flag": info["flag"], "load": info["load"]})
    return rows


def jacobian_rows(draws: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for name in ("AOL", "CPL", "SLL", "Sandwich"):
        worst, upper_worst, margin = 0.0, 0.0, float("inf")
        for _ in range(draws):
            c_in, c_out, inner, k, H, W = (int(torch.randint(lo, hi + 1, (1,), generator=g))
                                           for lo, hi in ((1, 4), (1, 4), (1, 4), (1, 3), (1, 6), (1, 6)))
            padding = "circular" if name == "Sandwich" or bool(torch.rand(1, generator=g) < 0.5) else "zeros"
            layer = _draw_layer(name, c_in, c_out, inner, k, padding, g)
            x = 3 * torch.randn(1, layer.in_channels, H, W, generator=g, dtype=F64)
            J = torch.autograd.functional.jacobian(lambda v, f=layer, s=x.shape: f(v.reshape(s)).reshape(-1), x.reshape(-1))
            sigma = float(torch.linalg.matrix_norm(J, ord=2))
            upper = oc.verify.check_model(layer, x).lipschitz_upper
            worst, upper_worst, margin = max(worst, sigma), max(upper_worst, upper), min(margin, upper - sigma)
        rows.append({"layer": name, "draws": draws, "max sigma": worst, "max sigma - 1": worst - 1,
                     "max upper": upper_worst, "min upper - sigma": margin})
    return rows


def _draw_layer(name: str, c_in: int, c_out: int, inner: int, k: int, padding: str, g: torch.Generator):
    if name == "AOL":
        layer = oc.AOL(c_in, c_out, k, padding_mode=padding, dtype=F64)
    elif name == "Sandwich":
        layer = oc.Sandwich(c_in, c_out, k, dtype=F64)
    else:
        layer = getattr(oc, name)(c_in, c_in, k, padding_mode=padding, inner_channels=inner, dtype=F64)
    with torch.no_grad():
        for pname, p in layer.named_parameters():
            if pname in ("bias", "log_q", "log_psi"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=F64) / k)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.randn(2, layer.in_channels, 5, 4, generator=g, dtype=F64)
        optimizer.zero_grad()
        layer(x).sin().sum().backward()
        optimizer.step()
    return layer


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(prog=prog or "python -m analysis.bench.residual", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small channels and sizes only (seconds)")
    parser.add_argument("--seed", type=int, default=0, help="kernel seed (default %(default)s)")
    parser.add_argument("--draws", type=positive_int, default=200, help="random layers per kind (default %(default)s)")
    parser.add_argument("--batch", type=positive_int, default=32, help="batch of the timed step (default %(default)s)")
    parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: PyTorch's)")
    parser.add_argument("--json", type=output_file, default=None, help="write rows and metadata here")
    add_policy_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    channels, sizes = ((4, 16), (8,)) if args.quick else ((16, 32, 64), (8, 32))
    before = load_average()
    promises = jacobian_rows(10 if args.quick else args.draws, args.seed)
    tight = tightness_rows(channels, sizes, args.seed)
    times = timing_rows(channels, 8 if args.quick else 32, args.batch, policy_from(args))
    after = load_average()
    print(f"{torch.get_num_threads()} threads; load average before {before}, after {after}")
    print(format_table(promises, ["layer", "draws", "max sigma - 1", "max upper", "min upper - sigma"]))
    print()
    print(format_table(tight, ["kernel", "c", "n", "padding", *[f"t={s}" for s in STEPS]]))
    print()
    print(format_table(times, ["c", "n", "batch", "step ms", "beta ms", "beta/step", "flag"]))
    if args.json:
        write_json(args.json, {"metadata": run_metadata(args, torch.device("cpu")), "load_before": before,
                               "load_after": after, "promises": promises, "tightness": tight, "timing": times})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
