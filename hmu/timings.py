"""Wall times of the stages, kept apart from every result.

Timings differ from run to run, so they never go into a metrics JSON or a stage output (that
would make reruns change tracked files and stale downstream stages). Each stage records them in
timings/<name>.json, a folder git ignores and dvc.yaml does not declare; the bench scripts and
the README's figures read them from there.
"""

from __future__ import annotations

import time
from pathlib import Path

from hmu.io import write_json

TIMINGS_DIR = Path("timings")


def record_timing(name: str, **seconds: float) -> None:
    """Write timings/<name>.json with the given durations (seconds, rounded to 0.1)."""
    write_json(TIMINGS_DIR / f"{name}.json", {k: round(float(v), 1) for k, v in seconds.items()})


def since(start: float) -> float:
    """Seconds elapsed since `start` (a time.perf_counter() value)."""
    return time.perf_counter() - start
