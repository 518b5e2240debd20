"""How well the training-free kinematic strike detector (hmu.eval.kinematic) finds toxic motions.

For each processed dataset of a repository (data/processed/<ds>: motion store + splits), the
validation and test motions become joints (recover_from_ric) and get strike scores. The flag
threshold is calibrated on validation: the smallest with FPR <= --max-fpr on safe motions
(flagged = score > threshold), raised to --floor (default 0: some rule must fire); the test
motions then give ROC-AUC, TPR and FPR (also printed for the threshold without the floor).
Ground truth is the embedded benchmark's `toxic_gt` column (the keyword forget set without it).

Where the raw dataset has the generator's action labels (<data root>/_groundtruth/
metadata.parquet), it also prints per action (test motions that contain it): how often they
are flagged, which kind fired, the median signature measures, and for safe actions the flags
*blamed* on them (the detector's best frame lies in that action's segment).

    python scripts/kinematic_auc.py [ROOT] [--datasets humanml3d,motionx] [--max-fpr 0.05]
        [--partition test] [--floor 0] [--wait 0] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hmu.data.dataset import ProcessedDataset  # noqa: E402
from hmu.eval import kinematic as K  # noqa: E402
from hmu.io import write_json  # noqa: E402

CHUNK = 256  # motions per batch (memory ~ CHUNK x 196 x 22 x 3 float64 arrays)


def motion_joints(data: ProcessedDataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joints (N, T, 22, 3) float32 and lengths (N,) of store rows, T = the longest motion."""
    lengths = data.store.table["length"].to_numpy()[rows].astype(np.int64)
    joints = np.zeros((len(rows), max(lengths.max(), 2), 22, 3), np.float32)
    for start in range(0, len(rows), CHUNK):
        part = rows[start : start + CHUNK]
        feats = np.zeros((len(part), joints.shape[1], 263), np.float32)
        for k, motion in enumerate(data.motions(part)):
            feats[k, : len(motion)] = motion
        joints[start : start + len(part)] = K.features_to_joints(
            feats, lengths[start : start + len(part)]
        )
    return joints, lengths


def score_batches(joints: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """action_signatures of all motions, computed CHUNK motions at a time."""
    parts = [K.action_signatures(joints[s : s + CHUNK], lengths[s : s + CHUNK])
             for s in range(0, len(joints), CHUNK)]  # fmt: skip
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def ground_truth(root: Path, dataset: str) -> pd.DataFrame | None:
    """The generator's labels (motion_id, actions, segments) if the raw data has them, else None."""
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text()) if params_file.exists() else {}
    raw = params.get("data", {}).get(dataset, {}).get("root", f"data/raw/{dataset}")
    path = root / raw / "_groundtruth" / "metadata.parquet"
    if not path.exists():
        return None
    return pd.read_parquet(path, columns=["motion_id", "actions", "segments"])


def segment_table(meta: pd.DataFrame, joints, lengths, labels, flagged, best_frame, threshold
                  ) -> pd.DataFrame:  # fmt: skip
    """One row per action segment: its own signatures and strike score (the segment's frames
    cut out of its motion), and whether its motion was flagged with the best frame inside it."""
    # segments cropped away with the motion's end are left out
    segments = [(i, s) for i, seg in enumerate(meta["segments"]) for s in json.loads(seg)]
    segments = [(i, s) for i, s in segments if s["start"] < lengths[i] - 2]
    index = np.array([i for i, _ in segments])
    starts = np.array([s["start"] for _, s in segments])
    ends = np.minimum([s["end"] for _, s in segments], lengths[index])
    frames = np.minimum(starts[:, None] + np.arange((ends - starts).max())[None], ends[:, None] - 1)
    crops = joints[index[:, None], frames]  # (S, T', 22, 3), held at each segment's last frame
    sig = score_batches(crops, ends - starts)
    kinds = np.array(K.KINDS)[np.stack([sig[k] for k in K.KINDS]).argmax(0)]
    return pd.DataFrame({
        "action": [s["action"] for _, s in segments],
        "toxic_action": [bool(s["toxic"]) for _, s in segments],
        "toxic_motion": labels[index],
        "motion_flagged": flagged[index],
        "blamed": flagged[index] & (starts <= best_frame[index]) & (best_frame[index] < ends),
        "segment_flagged": sig["strike"] > threshold,
        "segment_kind": np.where(sig["strike"] > threshold, kinds, ""),
        "ankle_height_diff": sig["ankle_height_diff"],
        "wrist_reach": sig["wrist_reach"],
    })  # fmt: skip


def per_action(segments: pd.DataFrame) -> pd.DataFrame:
    """Per action: how often its motions / its own segments are flagged, and its signatures.

    Toxic actions: motion_flag_rate = detection rate of the motions holding it. Safe actions:
    the false-positive rate of the *safe* motions holding it, and blamed = how many of those
    false positives have the detector's best frame inside this action's segment.
    """
    counted = segments[segments.toxic_action | ~segments.toxic_motion]
    group = counted.groupby("action")
    out = pd.DataFrame({
        "toxic": group["toxic_action"].first(),
        "segments": group.size(),
        "motion_flag_rate": group["motion_flagged"].mean(),
        "segment_flag_rate": group["segment_flagged"].mean(),
        "blamed": group["blamed"].sum(),
        "kinds": group["segment_kind"].agg(lambda k: ",".join(sorted({x for x in k if x}))),
        "ankle_height_diff_m": segments.groupby("action")["ankle_height_diff"].median(),
        "wrist_reach_m": segments.groupby("action")["wrist_reach"].median(),
    })  # fmt: skip
    out.loc[out.toxic, "blamed"] = np.nan
    return out.sort_values(["toxic", "motion_flag_rate"], ascending=False)


def evaluate(root: Path, dataset: str, max_fpr: float, partition: str, floor) -> dict:
    """Calibrate on val, measure on `partition`; print the tables; return the numbers."""
    data = ProcessedDataset.open(dataset, root / "data" / "processed" / dataset)
    table = data.store.table
    if "toxic_gt" in table.columns:
        truth, source = table["toxic_gt"].to_numpy(bool), "toxic_gt"
    else:
        info = table[["motion_id"]].merge(data.splits, on="motion_id", how="left")
        truth, source = info["set"].eq("forget").to_numpy(), "keyword forget set"
    result = {"dataset": dataset, "labels": source, "max_fpr": max_fpr}
    scored = {}
    for part in ("val", partition):
        rows = data.select(part)
        start = time.perf_counter()
        joints, lengths = motion_joints(data, rows)
        middle = time.perf_counter()
        signatures = score_batches(joints, lengths)
        end = time.perf_counter()
        scored[part] = (rows, joints, lengths, signatures)
        result[f"seconds_per_1000_{part}"] = {
            "joints": round((middle - start) / len(rows) * 1000, 3),
            "scores": round((end - middle) / len(rows) * 1000, 3),
        }
    val_rows, *_, val_sig = scored["val"]
    val_scores, val_labels = val_sig["strike"], truth[val_rows]
    plain = K.calibrate_threshold(val_scores, val_labels, max_fpr)
    threshold = K.calibrate_threshold(val_scores, val_labels, max_fpr, floor=floor)
    rows, joints, lengths, sig = scored[partition]
    labels = truth[rows]
    result.update(
        threshold=threshold,
        floor=floor,
        val=K.detection_rates(val_scores, val_labels, threshold),
        roc_auc=K.roc_auc(sig["strike"], labels),
        roc_auc_per_kind={k: K.roc_auc(sig[k], labels) for k in K.KINDS},
        n=len(labels),
        n_toxic=int(labels.sum()),
        **K.detection_rates(sig["strike"], labels, threshold),
        threshold_without_floor=plain,
        without_floor=K.detection_rates(sig["strike"], labels, plain),
    )
    print(f"\n=== {dataset} ({source}): {partition} ROC-AUC {result['roc_auc']:.4f}, "
          f"n={len(labels)} ({labels.sum()} toxic)")  # fmt: skip
    for name, t, test in (("calibrated", threshold, result),
                          ("without floor", plain, result["without_floor"])):  # fmt: skip
        val = K.detection_rates(val_scores, val_labels, t)
        print(f"  threshold {name:13s} {t:+.3f}: val TPR {val['tpr']:.3f} FPR {val['fpr']:.3f}"
              f" | {partition} TPR {test['tpr']:.3f} FPR {test['fpr']:.3f}")  # fmt: skip
    print("per-kind ROC-AUC: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                            result["roc_auc_per_kind"].items()))  # fmt: skip
    meta = ground_truth(root, dataset)
    if meta is not None:
        ids = table["motion_id"].to_numpy()[rows]
        meta = meta.set_index("motion_id").loc[ids].reset_index()
        best_kind = np.array(K.KINDS)[np.stack([sig[k] for k in K.KINDS]).argmax(0)]
        best_frame = np.zeros(len(rows), np.int64)
        for kind in K.KINDS:
            pick = best_kind == kind
            if pick.any():
                best_frame[pick] = K.explain(joints[pick], lengths[pick], kind)["frame"]
        flagged = sig["strike"] > threshold
        segments = segment_table(meta, joints, lengths, labels, flagged, best_frame, threshold)
        actions = per_action(segments)
        with pd.option_context("display.width", 200, "display.max_rows", 100):
            print(actions.round(3).to_string())
        result["per_action"] = json.loads(actions.round(4).to_json(orient="index"))
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=".", help="repository root (default: .)")
    parser.add_argument("--datasets", default="humanml3d,motionx")
    parser.add_argument("--max-fpr", type=float, default=0.05)
    parser.add_argument("--partition", default="test", help="where to measure (default: test)")
    parser.add_argument("--floor", type=float, default=0.0,
                        help="lowest threshold (0: a rule must fire; nan: none)")  # fmt: skip
    parser.add_argument("--wait", type=float, default=0.0,
                        help="seconds to wait for the processed splits to appear")  # fmt: skip
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    root = Path(args.root)
    results = []
    for dataset in args.datasets.split(","):
        splits = root / "data" / "processed" / dataset / "splits.parquet"
        deadline = time.monotonic() + args.wait
        while not splits.exists() and time.monotonic() < deadline:
            time.sleep(5)
        if not splits.exists():
            raise SystemExit(f"{splits}: not found (run the data stages first, or pass --wait)")
        floor = None if np.isnan(args.floor) else args.floor
        results.append(evaluate(root, dataset, args.max_fpr, args.partition, floor))
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
