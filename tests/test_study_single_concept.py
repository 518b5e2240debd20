"""Study 2 (single-concept unlearning): the concept split, the prompt sets and the specificity
table, each against a computation written out independently here."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hmu.studies import single_concept as sc
from hmu.studies.common import study_params

CONCEPTS = {"kick": ["kick"], "punch": ["punch", "jab"], "beat": ["beat", "hit"]}

CAPTIONS = pd.DataFrame(
    {
        "motion_id": ["a", "a", "b", "c", "c", "d", "e", "f"],
        "caption": [
            "a man walks forward",
            "a man KICKS a ball",  # kick (any case, inflected)
            "someone throws a jab then kicked",  # punch and kick
            "a person hitches a ride",  # 'hitch' is not 'hit'
            "a person is hitting a drum",  # beat (hit, inflected)
            "a woman beats the dust out of a rug",  # beat
            "a boxer punches twice",  # punch
            "the person waves",  # nothing
        ],
    }
)


def test_concept_membership_any_caption_whole_words():
    members = sc.concept_membership(CAPTIONS, CONCEPTS)
    expected = {  # motion -> concepts named by any of its captions, by hand
        "a": {"kick"},
        "b": {"kick", "punch"},
        "c": {"beat"},
        "d": {"beat"},
        "e": {"punch"},
        "f": set(),
    }
    assert list(members.index) == list(expected)
    for motion, names in expected.items():
        assert {c for c in CONCEPTS if members.loc[motion, c]} == names


def test_concept_prompts_name_exactly_one_concept():
    lengths = {"a": 37, "b": 120, "c": 250, "d": 61, "e": 90, "f": 100}
    prompts = sc.concept_prompts(CAPTIONS, lengths, CONCEPTS, max_prompts=5, seed=0)
    # caption b names two concepts: in no prompt set; 'hitches' names none
    assert prompts["kick"][0] == ["a man KICKS a ball"]
    assert prompts["punch"][0] == ["a boxer punches twice"]
    assert prompts["beat"][0] == [
        "a person is hitting a drum",
        "a woman beats the dust out of a rug",
    ]
    # lengths: a multiple of 4 within [40, 196] frames
    assert prompts["kick"][1].tolist() == [40]
    assert prompts["beat"][1].tolist() == [196, 60]
    capped = sc.concept_prompts(CAPTIONS, lengths, CONCEPTS, max_prompts=1, seed=0)
    assert len(capped["beat"][0]) == 1 and capped["beat"][0][0] in prompts["beat"][0]
    with pytest.raises(ValueError, match="no test caption"):
        sc.concept_prompts(CAPTIONS, lengths, {**CONCEPTS, "stab": ["stab"]}, 5, 0)


def _t_half(x):
    x = np.asarray(x, dtype=np.float64)
    return stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))


def test_specificity_rows_against_direct_computation():
    rng = np.random.default_rng(3)
    reps, sizes = 4, {"kick": 5, "punch": 3, "beat": 2}
    flags = {
        name: {c: {i: rng.random((reps, n)) < p for i in sc.INSTRUMENTS} for c, n in sizes.items()}
        for name, p in (("base", 0.8), ("retrain", 0.3), ("lcr", 0.5))
    }
    rows = sc.specificity_rows(flags, "kick")
    assert len(rows) == 3 * len(sc.INSTRUMENTS)
    for row in rows:
        f, inst = flags[row["model"]], row["instrument"]
        # by hand: per repetition, hits / prompts; collateral pools punch and beat prompts
        target = [f["kick"][inst][r].sum() / 5 for r in range(reps)]
        collateral = [
            (f["punch"][inst][r].sum() + f["beat"][inst][r].sum()) / 5 for r in range(reps)
        ]
        ref = flags["retrain"]
        ref_target = [ref["kick"][inst][r].sum() / 5 for r in range(reps)]
        base_col = [
            (flags["base"]["punch"][inst][r].sum() + flags["base"]["beat"][inst][r].sum()) / 5
            for r in range(reps)
        ]
        assert row["target"]["mean"] == pytest.approx(np.mean(target))
        assert row["target"]["ci95_t"] == pytest.approx(_t_half(target))
        assert row["collateral"]["mean"] == pytest.approx(np.mean(collateral))
        diff = np.subtract(target, ref_target)
        assert row["target_excess"]["mean"] == pytest.approx(diff.mean())
        assert row["target_excess"]["ci95_t"] == pytest.approx(_t_half(diff), abs=1e-12)
        assert row["collateral_vs_base"]["mean"] == pytest.approx(
            np.mean(np.subtract(collateral, base_col))
        )
    reference = [r for r in rows if r["model"] == "retrain"]
    assert all(r["target_excess"]["mean"] == 0 for r in reference)


def test_config_needs_two_concepts_and_quick_shrinks():
    block = {
        "datasets": ["humanml3d"],
        "models": ["momask"],
        "concepts": {"humanml3d": {"kick": ["kick"]}},
        "methods": ["lcr"],
    }
    with pytest.raises(ValueError, match="at least two concepts"):
        sc.Config.model_validate(block)
    block["concepts"]["humanml3d"] = CONCEPTS
    cfg = sc.Config.model_validate(block)
    assert list(sc.shrink(cfg).concepts["humanml3d"]) == ["kick", "punch"]
    with pytest.raises(ValueError, match="studies.single_concept.steps_scale"):
        study_params("single_concept", sc.Config,
                     {"studies": {"single_concept": {**block, "steps_scale": 2.0}}})  # fmt: skip


def test_scaled_train_scales_schedule():
    train = {"steps": 1000, "batch_size": 64, "lr": 1e-3, "warmup_steps": 50,
             "milestones": [700], "checkpoint_every": 200}  # fmt: skip
    assert sc.scaled_train(train, 1.0).steps == 1000
    half = sc.scaled_train(train, 0.5)
    assert (half.steps, half.warmup_steps, half.milestones) == (500, 25, [350])


def test_specificity_table_and_reading_render():
    rng = np.random.default_rng(0)
    flags = {
        name: {c: {i: rng.random((3, 4)) < 0.5 for i in sc.INSTRUMENTS} for c in CONCEPTS}
        for name in ("base", "retrain", "uce")
    }
    per_concept = {c: {"rows": sc.specificity_rows(flags, c)} for c in CONCEPTS}
    table = sc.specificity_table(per_concept)
    assert table.count("\n") == 2 + 3 * 3  # header, rule, 3 concepts x 3 rows
    assert "D_r^c" in table and "UCE" in table
    text = sc.reading(per_concept)
    assert text.count("\n- ") + text.startswith("- ") == 3
