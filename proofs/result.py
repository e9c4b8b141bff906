"""The result type shared by every proof, and the runner that times a proof and collects its checks.

A proof is a list of :class:`Check` objects, each an exact claim that sympy either verified or did
not. A theorem is proved only when at least one check ran and every check held; a proof that raises
is reported as failed, with the exception in its detail, rather than aborting the other proofs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True)
class Check:
    """One machine-checked claim and whether it held exactly."""

    claim: str
    proved: bool


@dataclass(frozen=True)
class ProofResult:
    """Outcome of one theorem: its statement, the sizes it was proved for, and the checks behind it."""

    name: str
    statement: str
    scope: str
    proved: bool
    seconds: float
    detail: str


def all_hold(claim: str, checks: Iterable[Check]) -> Check:
    """Conjunction of checks; a failure names the sub-claims that did not hold."""
    checks = list(checks)
    failed = [check.claim for check in checks if not check.proved]
    if failed:
        shown = "; ".join(failed[:3]) + (f"; and {len(failed) - 3} more" if len(failed) > 3 else "")
        return Check(f"{claim} [failed: {shown}]", False)
    return Check(claim, bool(checks))


def run_theorem(
    name: str, statement: str, scope: str, checks: Callable[[], Iterable[Check]]
) -> ProofResult:
    """Run a proof's checks, timing them; proved iff at least one check ran and all held."""
    start = time.perf_counter()
    try:
        done = list(checks())
        error = ""
    except Exception as exc:  # reported as a failed proof so that the other theorems still run
        done = []
        error = f"raised {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    lines = [("ok      " if check.proved else "FAILED  ") + check.claim for check in done]
    if error:
        lines.append("FAILED  " + error)
    proved = bool(done) and not error and all(check.proved for check in done)
    return ProofResult(name, statement, scope, proved, seconds, "\n".join(lines))
