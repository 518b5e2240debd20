"""What only the embedded benchmark can offer: ground truth written by the generator.

The synthetic datasets carry `_groundtruth/` beside the upstream layout: per-motion action
labels (metadata.parquet) and, for Motion-X, the generator's own 20 fps y-up joints. Real
datasets have no such folder; these functions then return nothing and the pipeline falls back
to keyword labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hmu.data.store import MotionStore

GROUND_TRUTH = "_groundtruth"


def ground_truth_labels(root: Path, motion_ids: pd.Series) -> np.ndarray | None:
    """Per motion: does it contain a toxic action (generator labels)? None without ground truth."""
    path = Path(root) / GROUND_TRUTH / "metadata.parquet"
    if not path.exists():
        return None
    meta = pd.read_parquet(path, columns=["motion_id", "toxic"]).set_index("motion_id")["toxic"]
    missing = ~motion_ids.isin(meta.index)
    if missing.any():
        raise ValueError(f"{path}: no ground-truth label for {motion_ids[missing].head().tolist()}")
    return meta.loc[motion_ids].to_numpy(dtype=bool)


def conversion_error_cm(root: Path, converted: Path) -> dict:
    """Mean and max per-joint distance (cm) between converted and ground-truth joints.

    Both are 20 fps y-up positions of the same clips; frames are compared up to the shorter
    of the two (resampling 30 -> 20 fps may drop the last frame). {} without ground truth.
    """
    truth_dir = Path(root) / GROUND_TRUTH
    if not (truth_dir / "joints.npy").exists():
        return {}
    truth, ours = MotionStore.open(truth_dir, "joints.npy"), MotionStore.open(converted, "joints.npy")
    index = truth.index_of()
    errors, worst = [], 0.0
    for row, motion_id in enumerate(ours.ids):
        a, b = ours.get(row), truth.get(index[motion_id])
        n = min(len(a), len(b))
        dist = np.linalg.norm(a[:n] - b[:n], axis=-1) * 100  # (n, 22) cm
        errors.append(dist.mean())
        worst = max(worst, float(dist.max()))
    if not errors:
        return {}
    return {"joint_error_cm": round(float(np.mean(errors)), 4),
            "joint_error_cm_max": round(worst, 4), "joint_error_clips": len(errors)}
