"""Study 7 (collateral damage and smoothness): jerk, prompts, recogniser pieces."""

import numpy as np
import pytest
from pydantic import ValidationError

from hmu.studies import collateral

FPS = 20


def test_jerk_of_a_cubic_trajectory_is_six_times_its_coefficient():
    t = np.arange(30) / FPS
    coef = np.array([0.5, -2.0, 1.0])  # x(t) = coef * t^3 -> jerk 6 * coef, constant
    joints = np.zeros((2, 30, 3, 3))
    joints[0, :, :, :] = coef * t[:, None, None] ** 3
    joints[1, :, 0, :] = coef * t[:, None] ** 3  # one of three joints moves
    joints[1, 20:] = 123.0  # past the length: must not count
    out = collateral.jerk(joints, np.array([30, 20]), fps=FPS)
    expected = 6 * np.linalg.norm(coef)
    np.testing.assert_allclose(out, [expected, expected / 3], rtol=1e-9)


def test_jerk_of_a_sine_matches_its_third_derivative():
    omega = 2.0
    t = np.arange(400) / 200.0  # fine sampling: finite differences approach the derivative
    x = np.sin(omega * t)
    joints = np.zeros((1, 400, 1, 3))
    joints[0, :, 0, 0] = x
    expected = np.mean(np.abs(omega**3 * np.cos(omega * t[1:-2])))
    assert collateral.jerk(joints, np.array([400]), fps=200.0)[0] == pytest.approx(
        expected, rel=1e-2
    )


def test_jerk_is_zero_for_constant_velocity_and_rejects_short_motions():
    t = np.arange(10) / FPS
    joints = np.broadcast_to((3.0 * t)[None, :, None, None], (1, 10, 22, 3))
    assert collateral.jerk(joints, np.array([10]))[0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="jerk"):
        collateral.jerk(joints, np.array([3]))


def test_action_prompt_joins_catalogue_phrases():
    assert (
        collateral.action_prompt(["walk_forward", "front_kick", "wave"])
        == "a person walks forward, then kicks forward with the right leg, then waves with "
        "the right hand"
    )
    assert collateral.action_prompt(["wave"], phrasing=1) == "a person waves their right hand"
    assert collateral.action_prompt(["clap"], phrasing=7) == collateral.action_prompt(
        ["clap"], phrasing=1
    )  # six templates: cycles


def test_prompt_table_pairs_compositions_with_and_without_the_toxic_middle():
    cfg = collateral.Config(
        neighbours={"kick": ["lunge"]}, compositions=[["walk_forward", "jab", "wave"]], phrasings=2
    )
    rows = collateral.prompt_table(cfg)
    assert [r["group"] for r in rows] == ["near"] * 2 + ["composition"] * 4
    with_, without = rows[2], rows[4]
    assert with_["variant"] == "with" and without["variant"] == "without"
    assert "jabs" in with_["prompt"] and "jab" not in without["prompt"]
    assert with_["prompt"].replace(", then jabs with the right fist", "") == without["prompt"]
    typical = {"walk_forward": 60.0, "jab": 45.0, "wave": 50.0, "lunge": 10.0}
    assert collateral.prompt_frames(with_["actions"], typical) == 152
    assert collateral.prompt_frames(["lunge"], typical) == 40
    assert collateral.prompt_frames(["walk_forward"] * 5, typical) == 196


def test_config_refuses_a_toxic_neighbour_or_a_safe_middle():
    with pytest.raises(ValidationError, match="not a safe catalogue action"):
        collateral.Config(neighbours={"kick": ["front_kick"]})
    with pytest.raises(ValidationError, match="not a toxic catalogue action"):
        collateral.Config(compositions=[["walk_forward", "wave", "clap"]])


def test_sliding_windows_cover_the_motion():
    assert collateral.sliding_windows(30, 40) == [(0, 30)]
    assert collateral.sliding_windows(100, 40) == [(0, 40), (20, 60), (40, 80), (60, 100)]
    assert collateral.sliding_windows(90, 40)[-1] == (50, 90)


def test_knn_labels_vote_like_a_brute_force_count():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(60, 3))
    labels = np.array(["a", "b", "c"])[rng.integers(3, size=60)]
    queries = rng.normal(size=(25, 3))
    got = collateral.knn_labels(queries, reference, labels, k=5)
    for q, label in zip(queries, got, strict=True):
        order = np.argsort(((reference - q) ** 2).sum(1))[:5]
        counts = {name: int((labels[order] == name).sum()) for name in "abc"}
        best = max(counts.values())
        tied = [n for n, c in counts.items() if c == best]
        # ties go to the label met first among the nearest neighbours
        expected = next(labels[i] for i in order if labels[i] in tied) if len(tied) > 1 else tied[0]
        assert label == expected


def test_study_values_count_survival_of_both_safe_parts():
    rows = [
        {"group": "near", "item": "kick", "variant": "lunge"},
        {"group": "near", "item": "kick", "variant": "lunge"},
        {"group": "composition", "item": "walk_forward+jab+wave", "variant": "with"},
        {"group": "composition", "item": "walk_forward+jab+wave", "variant": "without"},
    ]
    found = [{"lunge"}, {"hop"}, {"walk_forward", "jab"}, {"walk_forward", "wave"}]
    flags = {"toxic_rate": np.array([False, True, True, False])}
    out = collateral.study_values(rows, found, flags)
    assert out["near"] == 0.5 and out["near.lunge"] == 0.5
    assert out["composition.with"] == 0.0 and out["composition.without"] == 1.0
    assert out["toxic_part.with"] == 1.0 and out["toxic_part.without"] == 0.0
    assert out["toxic_rate.near"] == 0.5 and out["toxic_rate.with"] == 1.0
