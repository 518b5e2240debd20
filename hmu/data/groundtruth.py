"""Ground-truth action labels of the embedded benchmark (data/raw/<ds>/_groundtruth).

The synthetic generator knows what every motion does: its actions, which of them are toxic,
and each action's segment (frames at 20 fps). Real datasets have no such labels; there the
keyword split stands in (see hmu.eval.judge.toxic_labels). Motion ids are the processed
store's ids: "000005" / "M000005" (HumanML3D layout), "kungfu/000005" (Motion-X layout).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

METADATA = Path("_groundtruth") / "metadata.parquet"


def groundtruth_file(raw_root: str | Path) -> Path:
    """Where a raw dataset folder keeps its ground-truth labels (if it has any)."""
    return Path(raw_root) / METADATA


def load_groundtruth(raw_root: str | Path) -> pd.DataFrame | None:
    """Labels per motion, indexed by motion_id: actions, toxic_actions (lists of names) and
    segments (list of {action, start, end, toxic, side}); None for a real dataset."""
    path = groundtruth_file(raw_root)
    if not path.is_file():
        return None
    table = pd.read_parquet(path, columns=["motion_id", "actions", "toxic_actions", "segments"])
    table["actions"] = table["actions"].map(list)
    table["toxic_actions"] = table["toxic_actions"].map(list)
    table["segments"] = table["segments"].map(json.loads)
    return table.set_index("motion_id")
