"""Same-window A/B of two commits under gunicorn: `bench.run` for each, alternated.

    .venv/bin/python -m bench.compare BASE_REV [--rounds 2] [--duration 10]
        [--scenarios password_sign_in,userinfo,...]

A = BASE_REV (checked out in a temporary git worktree), B = the working tree. Runs A, B,
A, B, ... with `--users 1000` and no batch jobs, so both sides meet the same machine at
nearly the same moment (a shared machine's speed drifts by tens of percent over an hour),
and prints per server core figures (loopback, no TLS) per round and the ratio B/A of their
sums. Each side runs its own bench/load.py, so a flow that changed shape is driven the way
its own code expects.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import ROOT, SCENARIOS


def run_side(tree: Path, output: Path, scenarios: str, duration: float) -> dict[str, dict]:
    subprocess.run(
        [sys.executable, "-m", "bench.run", "--users", "1000", "--jobs", "", "--scenarios",
         scenarios, "--duration", str(duration), "--output", str(output)],
        cwd=tree, check=True, stdout=subprocess.DEVNULL)
    results = json.loads(output.with_suffix(".json").read_text())
    return {r["scenario"]: r for r in results["scenarios"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="the commit to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--scenarios", default=",".join(s for s in SCENARIOS
                                                        if s != "discovery"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="idp-compare-"))
    base = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    rounds: list[tuple[dict[str, dict], dict[str, dict]]] = []
    try:
        for n in range(args.rounds):
            print(f"compare: round {n + 1}: A ({args.base}), then B (working tree)", flush=True)
            a = run_side(base, work / f"A-{n}", args.scenarios, args.duration)
            b = run_side(ROOT, work / f"B-{n}", args.scenarios, args.duration)
            rounds.append((a, b))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT,
                       check=False)
    header = " | ".join(f"A{n + 1} | B{n + 1}" for n in range(len(rounds)))
    print(f"\n| scenario | {header} | B/A |\n|---|" + "---|" * (2 * len(rounds) + 1))
    for name in args.scenarios.split(","):
        cells, total_a, total_b = [], 0.0, 0.0
        for a, b in rounds:
            for side in (a, b):
                r = side[name]
                cells.append(f"{r['per_core_per_s']:,.0f}/s ({r['cpu_ms_per_op']:.2f} ms)")
            total_a += a[name]["per_core_per_s"]
            total_b += b[name]["per_core_per_s"]
        print(f"| {name} | {' | '.join(cells)} | {total_b / total_a:.2f} |")
    print("\nPer server core (operations per worker CPU-second), loopback, no TLS; "
          "CPU ms per operation in brackets.")


if __name__ == "__main__":
    main()
