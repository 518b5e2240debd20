"""Compare every metrics JSON of two runs, value for value, timings aside.

A side is a folder (e.g. `metrics`) or a git ref (e.g. `main`, read as `<ref>:metrics`). Keys
that name a duration (any key containing "seconds") are left out; every other value must be
identical (floats compared exactly). Prints one line per differing or missing file and a
summary; exits 1 if anything differs.

    python scripts/compare_metrics.py main metrics
    python scripts/compare_metrics.py HEAD~3 HEAD --path metrics
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMING = "seconds"


def read_side(side: str, path: str) -> dict[str, Any]:
    """{relative file name: parsed JSON} of a folder, or of `path` in a git ref."""
    folder = Path(side)
    if folder.is_dir():
        return {str(p.relative_to(folder)): json.loads(p.read_text())
                for p in sorted(folder.rglob("*.json"))}  # fmt: skip
    listing = _git("ls-tree", "-r", "--name-only", side, "--", path)
    names = [n for n in listing.splitlines() if n.endswith(".json")]
    if not names:
        raise SystemExit(f"{side}: neither a folder nor a git ref with JSON files under {path}")
    return {str(Path(n).relative_to(path)): json.loads(_git("show", f"{side}:{n}")) for n in names}


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"git {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths (dotted) where a and b differ, timing keys left out."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            if TIMING in key:
                continue
            path = f"{where}.{key}" if where else key
            if key not in a or key not in b:
                found.append(f"{path}: only in {'first' if key in a else 'second'}")
            else:
                found += differences(a[key], b[key], path)
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{where}[{i}]")]  # fmt: skip
    same = a == b or (a != a and b != b)  # NaN equals NaN here
    return [] if same and type(a) is type(b) else [f"{where}: {a!r} != {b!r}"]


def compare(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """One line per file that differs or exists on one side only."""
    lines = []
    for name in sorted(set(first) | set(second)):
        if name not in first or name not in second:
            lines.append(f"{name}: only in {'first' if name in first else 'second'}")
            continue
        diff = differences(first[name], second[name])
        if diff:
            lines.append(f"{name}: {len(diff)} values differ, e.g. {diff[:3]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", help="folder or git ref")
    parser.add_argument("second", help="folder or git ref")
    parser.add_argument("--path", default="metrics", help="folder inside a git ref")
    args = parser.parse_args(argv)
    first, second = read_side(args.first, args.path), read_side(args.second, args.path)
    lines = compare(first, second)
    for line in lines:
        print(line)
    values = sum(len(_leaves(v)) for v in first.values())
    verdict = "differ" if lines else "identical"
    print(f"{len(first)} vs {len(second)} JSON files, {values} values (timings aside): {verdict}")
    return 1 if lines else 0


def _leaves(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [x for k, v in obj.items() if TIMING not in k for x in _leaves(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _leaves(v)]
    return [obj]


if __name__ == "__main__":
    sys.exit(main())
