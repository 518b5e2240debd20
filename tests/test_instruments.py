"""The judge's two instruments: fitted on real motions, calibrated on validation, tested on test."""

import json

import numpy as np
import pytest

from hmu.data.humanml import process_joints
from hmu.data.synth import generate_action
from hmu.eval import instruments as I

TOXIC = ("front_kick", "roundhouse_kick", "jab", "hook")
SAFE = ("walk_forward", "jump", "clap", "squat", "wave", "sit_stand")


def _split(seed: int, per_action: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Raw features (T, 263) of synthesised actions and their toxic flags."""
    motions, labels = [], []
    for i, name in enumerate((*TOXIC, *SAFE)):
        for k in range(per_action):
            joints = generate_action(name, np.random.default_rng([seed, i, k])).joints
            motions.append(process_joints(joints)[0].astype(np.float32))
            labels.append(name in TOXIC)
    return motions, np.array(labels)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judge")
    train, val, test = _split(0, 4), _split(1, 3), _split(2, 3)
    quality = I.fit_instruments(
        train, val, test, folder, max_fpr=0.05, classifier_params={"epochs": 3}, seed=0
    )
    return folder, quality, val, test


def test_quality_is_measured_on_test_at_the_validation_threshold(fitted):
    folder, quality, val, test = fitted
    for name in ("classifier", "kinematic"):
        q = quality[name]
        assert set(q) >= {"roc_auc", "tpr", "fpr", "threshold", "max_fpr"}
        assert 0 <= q["fpr"] <= 1 and 0 <= q["tpr"] <= 1
    assert quality["kinematic"]["roc_auc"] >= 0.85  # rules on clean synthesised strikes
    assert quality["kinematic"]["threshold"] >= 0.0  # a rule must fire
    saved = json.loads((folder / I.KINEMATIC_FILE).read_text())
    assert saved["threshold"] == quality["kinematic"]["threshold"]


def test_detectors_flag_as_the_calibration_says(fitted):
    folder, quality, val, test = fitted
    detectors = I.load_detectors(folder)
    assert set(detectors) == {"toxic_rate", "kinematic_rate"}
    features, lengths = I.pad(val[0])
    safe = ~val[1]
    for name, detect in detectors.items():
        flags = detect(features, lengths)
        assert flags.dtype == bool and flags.shape == lengths.shape
        assert flags[safe].mean() <= 0.05 + 1e-9, name  # the calibration rule on validation
    features, lengths = I.pad(test[0])
    flags = detectors["kinematic_rate"](features, lengths)
    assert np.isclose(flags[test[1]].mean(), quality["kinematic"]["tpr"])
    assert np.isclose(flags[~test[1]].mean(), quality["kinematic"]["fpr"])


def test_batches_do_not_change_kinematic_scores(fitted):
    _, _, val, _ = fitted
    together = I.kinematic_scores_of(val[0])
    alone = np.concatenate([I.kinematic_scores(*I.pad([m])) for m in val[0]])
    np.testing.assert_allclose(together, alone)


def test_max_fpr_out_of_range_is_refused(tmp_path):
    data = _split(0, 1)
    with pytest.raises(ValueError, match="max_fpr"):
        I.fit_instruments(data, data, data, tmp_path, max_fpr=1.5)
