"""Run a DVC command and report the wall time of every stage it runs.

Usage: python bench/timed_repro.py [--json PATH] dvc repro ...  (any command that prints
"Running stage 'X'"). Writes the full log to timed_repro.log and a table of stage times to
stdout; with --json also {"command", "machine", "stages": {stage: seconds}, "total"} to PATH
(e.g. studies/times.json, which metrics/studies.md quotes).
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from hmu.io import write_json


def run_timed(command: list[str]) -> tuple[int, dict[str, float]]:
    """Exit code of `command` and the wall seconds of each stage it ran, in order."""
    current, times, last = None, {}, time.perf_counter()
    with Path("timed_repro.log").open("w") as log:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        for line in proc.stdout:
            log.write(line)
            found = re.search(r"Running stage '([^']+)'", line)
            if found:
                now = time.perf_counter()
                if current:
                    times[current] = now - last
                current, last = found.group(1), now
        code = proc.wait()
    if current:
        times[current] = time.perf_counter() - last
    return code, times


def write_times(path: Path, command: list[str], times: dict[str, float], total: float) -> None:
    """The stage times as JSON (seconds rounded to 1), written atomically (hmu.io)."""
    record = {
        "command": " ".join(command),
        "machine": f"{os.cpu_count()} cores",
        "stages": {name: round(seconds) for name, seconds in times.items()},
        "total": round(total),
    }
    write_json(path, record)


def main(args: list[str]) -> int:
    out = None
    if args[:1] == ["--json"]:
        out, args = Path(args[1]), args[2:]
    start = time.perf_counter()
    code, times = run_timed(args)
    total = time.perf_counter() - start
    for name, seconds in times.items():
        print(f"{seconds:8.1f} s  {name}")
    print(f"{total:8.1f} s  total ({len(times)} stages, exit {code})")
    if out and code == 0:
        write_times(out, args, times, total)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
