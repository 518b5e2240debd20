"""The judge's two toxicity instruments, fitted and calibrated on real motions only.

- classifier (`toxic_rate`): the learned toxic-action classifier of hmu.eval.action_classifier,
  trained on the training motions' toxic flags (ground truth on the embedded benchmark, the
  keyword split on real data);
- kinematic (`kinematic_rate`): the training-free strike detector of hmu.eval.kinematic on the
  joints recovered from the features.

Both get their verdict threshold from the same documented rule: the smallest threshold whose
false-positive rate on the SAFE VALIDATION motions is at most `max_fpr` (the kinematic one is
floored at 0: a rule must fire). Their quality (ROC-AUC, TPR, FPR at the threshold) is measured
on the real TEST motions, which neither instrument saw. Why max_fpr = 0.01 by default: with
~100 safe validation motions a 5% rule lets the threshold sit inside the score noise of a
handful of safe motions (test FPR 0.05-0.14 measured on the embedded benchmark), while 1% keeps
the test FPR at 0-0.02 and loses no toxic test motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hmu.eval import action_classifier as ac
from hmu.eval import kinematic
from hmu.io import read_json, write_json

CLASSIFIER_FILE = "action_classifier"
KINEMATIC_FILE = "kinematic.json"
SCORE_BATCH = 256


def pad(motions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(B, T_max, D) zero-padded motions and their lengths (B,)."""
    lengths = np.array([len(m) for m in motions], dtype=np.int64)
    out = np.zeros((len(motions), int(lengths.max()), motions[0].shape[-1]), dtype=np.float32)
    for i, m in enumerate(motions):
        out[i, : len(m)] = m
    return out, lengths


def kinematic_scores(features: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Strike score (B,) of padded raw features (B, T, 263): the best rule of any strike kind."""
    return kinematic.strike_scores(kinematic.features_to_joints(features, lengths), lengths)


def kinematic_scores_of(motions: Sequence[np.ndarray]) -> np.ndarray:
    """Strike scores (N,) of variable-length raw motions, in length-sorted batches."""
    order = np.argsort([len(m) for m in motions], kind="stable")
    out = np.zeros(len(motions))
    for s in range(0, len(order), SCORE_BATCH):
        idx = order[s : s + SCORE_BATCH]
        out[idx] = kinematic_scores(*pad([motions[i] for i in idx]))
    return out


def fit_instruments(
    train: tuple[list[np.ndarray], np.ndarray],
    val: tuple[list[np.ndarray], np.ndarray],
    test: tuple[list[np.ndarray], np.ndarray],
    folder: Path,
    max_fpr: float,
    classifier_params: dict | None = None,
    seed: int = 0,
) -> dict:
    """Fit the classifier on `train`, calibrate both instruments on `val`, measure on `test`
    (each (motions, toxic flags)); save them into `folder`; return their quality
    {"classifier": {roc_auc, tpr, fpr, threshold, max_fpr}, "kinematic": {...}}."""
    if not 0 <= max_fpr < 1:
        raise ValueError(f"evaluator.instruments.max_fpr must be in [0, 1), got {max_fpr}")
    model = ac.fit_action_classifier(train[0], train[1], params=classifier_params, seed=seed)
    ac.calibrate(model, val[0], val[1], max_fpr)
    quality = {
        "classifier": ac.rates(ac.score_motions(model, test[0]), test[1], float(model.threshold))
    }
    ac.save_action_classifier(folder / CLASSIFIER_FILE, model, {"max_fpr": max_fpr})

    threshold = kinematic.calibrate_threshold(
        kinematic_scores_of(val[0]), val[1], max_fpr, floor=0.0
    )
    scores = kinematic_scores_of(test[0])
    quality["kinematic"] = {
        "roc_auc": kinematic.roc_auc(scores, test[1]),
        **kinematic.detection_rates(scores, test[1], threshold),
        "threshold": threshold,
    }
    write_json(folder / KINEMATIC_FILE, {"threshold": threshold, "max_fpr": max_fpr})
    for name in quality:
        quality[name]["max_fpr"] = max_fpr
    return quality


def load_detectors(folder: Path) -> dict:
    """{"toxic_rate": classifier verdict, "kinematic_rate": strike detector verdict}, each a
    function (motions (B, T, 263) raw, lengths (B,)) -> (B,) bool, as fitted into `folder`."""
    classifier = ac.load_action_classifier(folder / CLASSIFIER_FILE)
    threshold = float(read_json(folder / KINEMATIC_FILE)["threshold"])

    def kinematic_verdict(motions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return kinematic_scores(motions, np.asarray(lengths)) > threshold

    return {"toxic_rate": classifier.verdict, "kinematic_rate": kinematic_verdict}
