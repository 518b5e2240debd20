"""Train, calibrate and audit the toxic-action classifier on real motions of each dataset.

Per dataset: fits `hmu.eval.action_classifier` on the training partition (real motions only),
chooses the threshold on the validation partition (FPR <= --max-fpr on its safe motions) and
prints, on the test partition: ROC-AUC, threshold, TPR, FPR, per-action detection rates and the
training time. Then robustness checks, all on real test motions: rates by motion length,
crops (toxic part only, safe part only, short random windows of safe motions), facing (joints
rotated about the vertical axis, features recomputed), mirror pairs, two perturbations that
imitate generated motions (temporal smoothing, feature noise) and, when models/<ds>/vq_all
exists, the VQ-VAE's reconstructions.

    python scripts/classifier_eval.py [--datasets humanml3d motionx] [--labels toxic|actions]
        [--processed data/processed] [--raw data/raw] [--models models]
        [--params '{"epochs": 4}'] [--max-fpr 0.05] [--out F.json]

Ground truth: data/raw/<ds>/_groundtruth/metadata.parquet (actions, segments); --labels toxic
trains on the toxic flag only (the keyword split on real data), actions on multi-hot actions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hmu.data.dataset import ProcessedDataset  # noqa: E402
from hmu.data.humanml import joints_to_features, recover_from_ric  # noqa: E402
from hmu.eval import action_classifier as ac  # noqa: E402
from hmu.io import write_json  # noqa: E402

FPS = 20
MARGIN = 10  # frames kept away from a toxic segment when cropping its safe part (blends)


def _load(name: str, processed: Path, raw: Path):
    data = ProcessedDataset.open(name, root=processed / name)
    meta = pd.read_parquet(raw / name / "_groundtruth" / "metadata.parquet")
    table = data.store.table.merge(meta, on="motion_id", how="left", suffixes=("", "_gt"))
    if table["actions"].isna().any():
        raise ValueError(f"{name}: motions without ground truth in {raw / name}")
    return data, meta, table


def per_action_rates(flags: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    """Flag rate per action: for a safe action among safe motions that contain it (false
    alarms), for a toxic action among all motions that contain it (detections)."""
    rows = []
    toxic_actions = {a for acts in table["toxic_actions"] for a in acts}
    for action in sorted({a for acts in table["actions"] for a in acts}):
        has = table["actions"].map(lambda acts, a=action: a in acts).to_numpy()
        toxic = action in toxic_actions
        mask = has if toxic else has & ~table["toxic"].to_numpy(bool)
        rows.append({"action": action, "toxic": toxic, "motions": int(mask.sum()),
                     "flagged": float(flags[mask].mean()) if mask.any() else np.nan})  # fmt: skip
    return pd.DataFrame(rows).sort_values(["toxic", "flagged"], ascending=[True, False])


def _segments(row) -> list[tuple[int, int, bool]]:
    """(start, end, toxic) of each action segment in feature frames."""
    segs = json.loads(row["segments"])
    return [(round(s["start_s"] * FPS), round(s["end_s"] * FPS), bool(s["toxic"])) for s in segs]


def _toxic_crop(motion: np.ndarray, segs) -> np.ndarray:
    """The toxic segments (first to last) with MARGIN frames around, at least 24 frames."""
    start = min(s for s, _, t in segs if t) - MARGIN
    end = max(e for _, e, t in segs if t) + MARGIN
    if end - start < 24:
        start -= (24 - (end - start)) // 2
        end = start + 24
    return motion[max(0, start) : min(len(motion), end)]


def _safe_crop(motion: np.ndarray, segs) -> np.ndarray | None:
    """The longest stretch of a toxic motion that stays MARGIN frames away from every toxic
    segment (None when shorter than 40 frames)."""
    free = np.ones(len(motion), bool)
    for s, e, t in segs:
        if t:
            free[max(0, s - MARGIN) : e + MARGIN] = False
    edges = np.flatnonzero(np.diff(np.r_[0, free.astype(int), 0]))
    runs = edges.reshape(-1, 2)
    if len(runs) == 0:
        return None
    start, end = runs[np.argmax(runs[:, 1] - runs[:, 0])]
    return motion[start:end] if end - start >= 40 else None


def _rotated(motion: np.ndarray, degrees: float) -> np.ndarray:
    """Features recomputed from the motion's joints turned by `degrees` about the y axis."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)
    return joints_to_features(recover_from_ric(motion) @ rotation.T)


def _rate(flags) -> float:
    return round(float(np.mean(flags)), 3) if len(flags) else float("nan")


def _mirror_pairs(ids: list[str]) -> list[tuple[int, int]]:
    """(index, index of its mirror) for test motions whose mirror ("M" + clip) is also there."""
    where = {m: i for i, m in enumerate(ids)}
    mirrored = ["/".join([*m.split("/")[:-1], "M" + m.split("/")[-1]]) for m in ids]
    return [(i, where[m]) for i, m in enumerate(mirrored) if m in where]


class Audit:
    """Flags of the calibrated model on transformed real test motions."""

    def __init__(self, model, motions, toxic, table, feature_std, seed: int):
        self.model, self.motions, self.toxic, self.table = model, motions, toxic, table
        self.feature_std, self.rng = feature_std, np.random.default_rng(seed)
        self.threshold = float(model.threshold)

    def scores(self, motions) -> np.ndarray:
        return ac.score_motions(self.model, motions).astype(np.float64)

    def flags(self, motions) -> np.ndarray:
        return self.scores(motions) >= self.threshold

    def rates(self, motions) -> dict:
        flags = self.flags(motions)
        return {"fpr": _rate(flags[~self.toxic]), "tpr": _rate(flags[self.toxic])}

    def length(self) -> dict:
        """Does the score follow motion length? Length alone as a detector, within-class rank
        correlation of score and length, and rates per length tercile."""
        scores, toxic = self.scores(self.motions), self.toxic
        lengths = np.array([len(m) for m in self.motions])
        cuts = np.digitize(lengths, np.quantile(lengths, [1 / 3, 2 / 3]))
        flagged = scores >= self.threshold
        return {
            "auc_of_length_alone": round(ac.roc_auc(-lengths, toxic), 3),
            "spearman_score_vs_length": {
                name: round(float(spearmanr(scores[m], lengths[m]).statistic), 3)
                for name, m in (("safe", ~toxic), ("toxic", toxic))
            },
            "by_length_tercile": [
                {
                    "frames": f"{lengths[cuts == k].min()}-{lengths[cuts == k].max()}",
                    "fpr": _rate(flagged[(cuts == k) & ~toxic]),
                    "tpr": _rate(flagged[(cuts == k) & toxic]),
                }  # fmt: skip
                for k in range(3)
            ],
        }

    def crops(self) -> dict:
        """Toxic motions cut to their toxic part (should stay flagged) or to their safe part
        (should not be), and short random windows of safe motions (FPR by window length)."""
        rows = np.flatnonzero(self.toxic)
        segs = [_segments(self.table.iloc[i]) for i in rows]
        toxic_parts = [_toxic_crop(self.motions[i], s) for i, s in zip(rows, segs, strict=True)]
        safe_parts = [_safe_crop(self.motions[i], s) for i, s in zip(rows, segs, strict=True)]
        safe_parts = [m for m in safe_parts if m is not None]
        out = {
            "toxic_part_only_tpr": _rate(self.flags(toxic_parts)),
            "safe_part_of_toxic_flagged": _rate(self.flags(safe_parts)) if safe_parts else None,
            "safe_parts": len(safe_parts),
        }
        safe = [m for m, t in zip(self.motions, self.toxic, strict=True) if not t]
        for window in (40, 80):
            long_enough = [m for m in safe if len(m) >= window]
            starts = [int(self.rng.integers(0, len(m) - window + 1)) for m in long_enough]
            crops = [m[s : s + window] for m, s in zip(long_enough, starts, strict=True)]
            out[f"safe_{window}_frame_window_fpr"] = _rate(self.flags(crops))
        return out

    def facing(self) -> dict:
        """Joints turned about the vertical axis, features recomputed: rates and the largest
        score change against the unturned recomputation."""
        turned = {deg: [_rotated(m, deg) for m in self.motions] for deg in (0, 90, 217)}
        base = self.scores(turned[0])
        return {
            f"{deg}deg": {
                **self.rates(ms),
                "max_score_change": round(float(np.abs(self.scores(ms) - base).max()), 4),
            }  # fmt: skip
            for deg, ms in turned.items()
        }

    def mirrors(self, ids: list[str]) -> dict:
        """Score agreement of test motions and their mirror images."""
        pairs = np.array(_mirror_pairs(ids)).reshape(-1, 2)
        if len(pairs) == 0:
            return {"pairs": 0}
        scores = self.scores(self.motions)
        flags = scores >= self.threshold
        return {
            "pairs": len(pairs),
            "verdict_agreement": _rate(flags[pairs[:, 0]] == flags[pairs[:, 1]]),
            "median_abs_score_diff": round(float(np.median(np.abs(np.diff(scores[pairs])))), 4),
        }

    def generated_like(self) -> dict:
        """Perturbations that imitate a small generator: smoother, noisier motions."""
        smooth = [gaussian_filter1d(m, 2.0, axis=0, mode="nearest") for m in self.motions]
        noise = [
            m + 0.1 * self.feature_std * self.rng.standard_normal(m.shape).astype(np.float32)
            for m in self.motions
        ]
        return {"smoothed_sigma_2_frames": self.rates(smooth), "noise_0.1_std": self.rates(noise)}

    def vq_reconstructions(self, folder: Path) -> dict:
        """Rates on the test motions encoded and decoded by a trained VQ-VAE (real generator
        output, minus the transformer): FPR should stay low; TPR shows how much of each toxic
        motion survives the VQ (issue 10: the small VQ smooths kicks away)."""
        from hmu.eval.reconstruction import reconstruct
        from hmu.train.generators import load_vq

        vq, mean, std = load_vq(folder)
        with torch.no_grad():
            return {"vq": str(folder), **self.rates(reconstruct(vq, self.motions, mean, std))}


def evaluate(name: str, args) -> dict:
    """Fit, calibrate and audit on one dataset; returns the numbers it prints."""
    data, meta, table = _load(name, args.processed, args.raw)
    ids = table["motion_id"].to_numpy()
    toxic = table["toxic"].to_numpy(bool)
    rows = {p: data.select(p) for p in ("train", "val", "test")}
    train = data.motions(rows["train"])
    if args.labels == "actions":
        labels, names, toxic_actions = ac.action_labels(meta, ids[rows["train"]])
    else:
        labels, names, toxic_actions = toxic[rows["train"]], None, None
    threads = torch.get_num_threads()
    start = time.perf_counter()
    model = ac.fit_action_classifier(
        train, labels, names, toxic_actions, params=json.loads(args.params), seed=args.seed
    )
    seconds = time.perf_counter() - start
    val = data.motions(rows["val"])
    ac.calibrate(model, val, toxic[rows["val"]], args.max_fpr)
    test = data.motions(rows["test"])
    scores = ac.score_motions(model, test)
    result = {
        "train_seconds": round(seconds, 1),
        "threads": threads,
        "train_motions": len(train),
        "val": {"safe": int((~toxic[rows["val"]]).sum()), "toxic": int(toxic[rows["val"]].sum())},
        "test": {
            k: round(v, 4)
            for k, v in ac.rates(scores, toxic[rows["test"]], float(model.threshold)).items()
        },  # fmt: skip
    }
    test_table = table.iloc[rows["test"]].reset_index(drop=True)
    flags = scores.astype(np.float64) >= float(model.threshold)
    actions = per_action_rates(flags, test_table)
    result["per_action"] = actions.to_dict("records")
    feature_std = np.concatenate(train).std(0)
    audit = Audit(model, test, toxic[rows["test"]], test_table, feature_std, args.seed)
    result["robustness"] = {
        "length": audit.length(),
        "crops": audit.crops(),
        "facing": audit.facing(),
        "mirrors": audit.mirrors(ids[rows["test"]].tolist()),
        "generated_like": audit.generated_like(),
    }
    vq_folder = args.models / name / "vq_all"
    if (vq_folder / "vq.safetensors").exists():
        result["robustness"]["vq_reconstructions"] = audit.vq_reconstructions(vq_folder)
    return result


def _print(name: str, r: dict) -> None:
    t = r["test"]
    print(f"== {name}: trained on {r['train_motions']} real motions in {r['train_seconds']} s "
          f"({r['threads']} threads); threshold {t['threshold']:.4g} from "
          f"{r['val']['safe']} safe / {r['val']['toxic']} toxic validation motions")  # fmt: skip
    print(f"   test: ROC-AUC {t['roc_auc']:.4f}  TPR {t['tpr']:.3f}  FPR {t['fpr']:.3f}")
    actions = pd.DataFrame(r["per_action"])
    for toxic, label in ((False, "safe actions flagged"), (True, "toxic actions detected")):
        part = actions[actions["toxic"] == toxic]
        cells = [f"{a} {f:.2f} ({n})" for a, f, n in
                 zip(part["action"], part["flagged"], part["motions"], strict=True)]  # fmt: skip
        print(f"   {label} (rate, motions): " + ", ".join(cells))
    for key, value in r["robustness"].items():
        print(f"   {key}: {json.dumps(value)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["humanml3d", "motionx"])
    parser.add_argument("--processed", type=Path, default=Path("data/processed"))
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument(
        "--models",
        type=Path,
        default=Path("models"),
        help="where <ds>/vq_all lives (a VQ reconstruction check if present)",
    )
    parser.add_argument("--labels", choices=("toxic", "actions"), default="toxic")
    parser.add_argument("--params", default="{}", help="JSON overrides of DEFAULT_PARAMS")
    parser.add_argument("--max-fpr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for name in args.datasets:
        results[name] = evaluate(name, args)
        _print(name, results[name])
    if args.out:
        write_json(args.out, results)


if __name__ == "__main__":
    main()
