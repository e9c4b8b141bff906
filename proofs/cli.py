"""Command line: ``python -m proofs [--full] [--json FILE] [--verbose]`` (also ``orthoconv prove``).

Prints one line per theorem (name, PROVED/FAILED, scope, seconds) as it finishes, the checked claims
of every failed theorem (of all theorems with --verbose), and returns 1 when any theorem fails.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from .result import ProofResult


def format_line(result: ProofResult) -> str:
    verdict = "PROVED" if result.proved else "FAILED"
    return f"{result.name:<24} {verdict:<7} {result.seconds:7.2f} s  {result.scope}"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m proofs", description="Run the machine-checked symbolic proofs behind BCOP."
    )
    parser.add_argument("--full", action="store_true", help="check larger sizes (slower)")
    parser.add_argument("--json", metavar="FILE", type=Path, help="write every result as JSON to FILE")
    parser.add_argument("--verbose", action="store_true", help="print every checked claim")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every theorem; 0 when all are proved, 1 otherwise."""
    from . import THEOREMS  # looked up per call: the package's list, also when a test replaces it

    args = parse(argv)
    results = []
    for theorem in THEOREMS:
        result = theorem.prove(full=args.full)
        results.append(result)
        print(format_line(result), flush=True)
        if args.verbose or not result.proved:
            print("\n".join("    " + line for line in result.detail.splitlines()), flush=True)
    total = sum(result.seconds for result in results)
    proved = sum(result.proved for result in results)
    print(f"{proved}/{len(results)} theorems proved in {total:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(result) for result in results], indent=2) + "\n")
    return 0 if proved == len(results) else 1
