"""Bookkeeping of a training stage: its resumable-state folder and its train.json summary.

Resumable state lives in WORK_ROOT/<ds>/<name>-<hash>, the hash covering the configuration and
the training data, so an interrupted stage resumes while a changed one starts afresh; it is
removed once the artefacts are written (`finish_run`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hmu.io import write_json

WORK_ROOT = Path(os.environ.get("HMU_WORK", ".work"))


def digest(*parts: Any) -> str:
    """Short hash of JSON-able values and numpy arrays (identity of a training run)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def work_dir(dataset: str, name: str, *identity: Any) -> Path:
    """WORK_ROOT/<dataset>/<name>-<hash of identity>: resumable state of one training run."""
    return WORK_ROOT / dataset / f"{name}-{digest(*identity)}"


def is_main() -> bool:
    """False on the DDP ranks other than 0 (under torchrun), which must not write artefacts."""
    return int(os.environ.get("RANK", "0")) == 0


def _final_values(live_dir: Path) -> dict[str, float]:
    """The last logged training values (DVCLive's summary), e.g. {'loss': ..., 'acc': ...}."""
    summary = live_dir / "metrics.json"
    if not summary.is_file():
        return {}
    logged = json.loads(summary.read_text()).get("train", {})
    return {k: v for k, v in logged.items() if isinstance(v, int | float)}


def finish_run(
    out: Path, start: float, steps: int, work_dirs: Sequence[Path], **extra: Any
) -> dict[str, Any]:
    """Write out/train.json (wall time since `start`, speed, final logged values of out/live,
    `extra`) and remove the resumable states; returns the summary."""
    seconds = time.perf_counter() - start
    summary = {
        "seconds": round(seconds, 1),
        "steps": steps,
        "steps_per_second": round(steps / max(seconds, 1e-9), 2),
        "final": _final_values(out / "live"),
        **extra,
    }
    write_json(out / "train.json", summary)
    for folder in work_dirs:
        shutil.rmtree(folder, ignore_errors=True)
    return summary
