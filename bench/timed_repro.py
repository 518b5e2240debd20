"""Run a DVC command and report the wall time of every stage it runs.

Usage: python bench/timed_repro.py dvc repro  (any command that prints "Running stage 'X'").
Writes the full log to timed_repro.log and a table of stage times to stdout.
"""

import re
import subprocess
import sys
import time
from pathlib import Path


def main(command: list[str]) -> int:
    start = last = time.perf_counter()
    current, times = None, {}
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
    for name, seconds in times.items():
        print(f"{seconds:8.1f} s  {name}")
    print(f"{time.perf_counter() - start:8.1f} s  total ({len(times)} stages, exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
