"""Implicit prompt sets: held-out paraphrases, counts, keyword-freedom, leaks, determinism."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmu.data import prompts as P
from hmu.data.synth import captions as C
from hmu.data.synth.actions import PRIMITIVES, SAFE_ACTIONS, TOXIC_ACTIONS
from hmu.data.synth.writer import DEFAULT_TOXIC_MIX
from hmu.data.toxicity import _IRREGULAR, OFFICIAL_KEYWORDS, match_keywords

KEYWORDS = {ds: OFFICIAL_KEYWORDS[ds]["violence"] for ds in ("humanml3d", "motionx")}
ALL_KEYWORDS = sorted(set(KEYWORDS["humanml3d"]) | set(KEYWORDS["motionx"]))
PRONOUNS = {"his", "her", "their", "him", "them"}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _fillings(template: str) -> list[str]:
    """Every filling of a template: both sides x every subject, with the subject in front."""
    return [f"{s[0]} {C.fill(template, side, s)}" for side in ("right", "left") for s in C.SUBJECTS]


def _mirror_key(prompt: str) -> str:
    """The same string for a prompt and its mirror image (computed without mirror_group)."""
    return min(" ".join(_words(prompt)), " ".join(_words(C.mirror_caption(prompt))))


def _action_lengths(dataset: str) -> dict[str, np.ndarray]:
    """A stand-in for the ground truth: every action of the default mix, a few lengths each."""
    rng = np.random.default_rng(3)
    return {a: rng.integers(30, 220, size=5) for a in DEFAULT_TOXIC_MIX[dataset]}


@pytest.fixture(scope="module", params=["humanml3d", "motionx"])
def synthetic_table(request):
    ds = request.param
    return ds, P.implicit_prompt_table(KEYWORDS[ds], _action_lengths(ds), seed=0)


# ----------------------------------------------------------------------------- the templates


def test_every_toxic_action_has_heldout_templates():
    templates = P.heldout_templates()
    assert set(templates) == set(TOXIC_ACTIONS)
    flat = [t for ts in templates.values() for t in ts]
    assert min(len(ts) for ts in templates.values()) >= 8
    assert len(flat) == len(set(flat))


def test_heldout_templates_match_no_keyword_of_either_list():
    hits = [(t, match_keywords(text, ALL_KEYWORDS)) for ts in P.heldout_templates().values()
            for t in ts for text in _fillings(t) if match_keywords(text, ALL_KEYWORDS)]  # fmt: skip
    assert hits == []


def _stem_clashes(text: str) -> list[str]:
    """Words (or runs of up to 3 words written closed, for "kung fu" or "upper cut") that start
    with a keyword's stem or are an irregular form: stricter than the matcher."""
    stems = {k.replace(" ", "").lower() for k in ALL_KEYWORDS}
    stems = {s[:-1] if s.endswith("e") and len(s) > 3 else s for s in stems}
    stems |= {"cut", "fire"} | {f for k in ALL_KEYWORDS for f in _IRREGULAR.get(k, ())}
    w = _words(text)
    runs = ["".join(w[i : i + n]) for n in (1, 2, 3) for i in range(len(w) - n + 1)]
    return [r for r in runs if any(r.startswith(s) for s in stems)]


def test_heldout_templates_share_no_stem_with_a_keyword():
    clashes = [(t, _stem_clashes(C.fill(t, "right", C.SUBJECTS[5])))
               for ts in P.heldout_templates().values() for t in ts]  # fmt: skip
    assert [c for c in clashes if c[1]] == []
    # the same check flags every explicit caption template of the toxic actions
    explicit = [t for a in TOXIC_ACTIONS for t in PRIMITIVES[a].phrases]
    assert all(_stem_clashes(C.fill(t, "right")) for t in explicit)


def _template_words(template: str) -> list[str]:
    words = _words(C.fill(template, "right", C.SUBJECTS[1]))
    return ["<s>" if w in ("left", "right") else "<p>" if w in PRONOUNS else w for w in words]


def test_heldout_templates_are_new_phrasings():
    """No held-out template equals, contains or shares a 5-word run with an existing one."""

    def grams(words, n=5):
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    existing = [t for p in PRIMITIVES.values() for t in (*p.phrases, *p.implicit)]
    existing_grams = set().union(*(grams(_template_words(t)) for t in existing))
    existing_text = [f" {' '.join(_template_words(t))} " for t in existing]
    for ts in P.heldout_templates().values():
        for template in ts:
            words = _template_words(template)
            assert not grams(words) & existing_grams, template
            text = f" {' '.join(words)} "
            assert not any(text in e or e in text for e in existing_text), template


def test_heldout_templates_mirror_through_their_placeholders():
    for ts in P.heldout_templates().values():
        for template in ts:
            for subject in C.SUBJECTS[:3]:
                right = C.fill(template, "right", subject)
                assert C.mirror_caption(right) == C.fill(template, "left", subject)


def test_synth_generator_never_reads_the_heldout_templates():
    folder = Path(C.__file__).parent
    sources = " ".join(f.read_text() for f in folder.glob("*.py"))
    assert "heldout" not in sources and P.HELDOUT_FILE not in sources


# ----------------------------------------------------------------------------- the table


def test_counts_with_mirrors_counted_once(synthetic_table):
    _, table = synthetic_table
    assert list(table.columns) == list(P.COLUMNS)
    keys = table.assign(key=table["prompt"].map(_mirror_key))
    distinct = keys.groupby("kind")["key"].nunique()
    assert distinct["implicit_heldout"] >= 100
    assert distinct.sum() >= 200
    assert table["prompt"].is_unique
    # mirror_group agrees with the independent key, and counts agree
    assert (keys.groupby("mirror_group")["key"].nunique() == 1).all()
    assert keys.groupby("key")["mirror_group"].nunique().eq(1).all()
    counts = P.prompt_counts(table)
    assert counts["implicit_heldout"]["groups"] == distinct["implicit_heldout"]
    assert counts["total"]["groups"] == distinct.sum()
    assert counts["total"]["rows"] == len(table)


def test_groups_are_a_prompt_and_its_mirror(synthetic_table):
    _, table = synthetic_table
    for _, group in table.groupby("mirror_group"):
        if len(group) == 2:
            a, b = group["prompt"]
            assert C.mirror_caption(a) == b and a != b
            assert set(group["side"]) == {"left", "right"}
        else:
            assert len(group) == 1 and group["side"].iat[0] == "none"
            assert C.mirror_caption(group["prompt"].iat[0]) == group["prompt"].iat[0]


def test_prompts_come_from_the_right_templates(synthetic_table):
    ds, table = synthetic_table
    assert set(table["action"]) == set(DEFAULT_TOXIC_MIX[ds])
    for row in table.itertuples():
        pool = PRIMITIVES[row.action].implicit
        if row.kind == "implicit_heldout":
            pool = P.heldout_templates()[row.action]
        assert row.template in pool
        side = "right" if row.side == "none" else row.side
        assert row.prompt in {f"{s[0]} {C.fill(row.template, side, s)}" for s in C.SUBJECTS}
    heldout = table[table["kind"] == "implicit_heldout"]
    per_action = heldout.groupby("action")["mirror_group"].nunique()
    assert per_action.max() - per_action.min() <= 1  # balanced over actions
    per_template = heldout.groupby("template")["mirror_group"].nunique()
    assert per_template.max() - per_template.min() <= 1  # every template before repeats


def test_no_prompt_contains_a_keyword(synthetic_table):
    ds, table = synthetic_table
    assert not any(match_keywords(p, ALL_KEYWORDS) for p in table["prompt"])
    P.check_heldout(table, [], KEYWORDS[ds])


def test_lengths_are_drawn_from_the_action(synthetic_table):
    ds, table = synthetic_table
    lengths = table["length"].to_numpy()
    assert (lengths % 4 == 0).all() and lengths.min() >= 40 and lengths.max() <= 196
    pools = _action_lengths(ds)
    for row in table.itertuples():
        allowed = {min(max(x // 4 * 4, 40), 196) for x in pools[row.action]}
        assert row.length in allowed
    assert (table.groupby("mirror_group")["length"].nunique() == 1).all()


def test_deterministic_given_a_seed():
    lengths = _action_lengths("motionx")
    a = P.implicit_prompt_table(KEYWORDS["motionx"], lengths, seed=4)
    b = P.implicit_prompt_table(KEYWORDS["motionx"], lengths, seed=4)
    c = P.implicit_prompt_table(KEYWORDS["motionx"], lengths, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a["prompt"].equals(c["prompt"])
    # the held-out draw does not depend on how many seen prompts were asked for
    d = P.implicit_prompt_table(KEYWORDS["motionx"], lengths, seed=4, n_seen=60)
    held = [t[t["kind"] == "implicit_heldout"].drop(columns="mirror_group") for t in (a, d)]
    pd.testing.assert_frame_equal(*(h.reset_index(drop=True) for h in held))


def test_without_mirrors_one_row_per_group():
    lengths = _action_lengths("humanml3d")
    full = P.implicit_prompt_table(KEYWORDS["humanml3d"], lengths)
    half = P.implicit_prompt_table(KEYWORDS["humanml3d"], lengths, mirrors=False)
    assert len(half) == half["mirror_group"].nunique() == full["mirror_group"].nunique()
    assert set(half["prompt"]) <= set(full["prompt"])


# ----------------------------------------------------------------------------- leaks


def _synthetic_captions(dataset: str, n: int = 400) -> list[str]:
    """Training-like captions from the generator: toxic motions with implicit captions."""
    keywords = KEYWORDS[dataset]
    toxic = list(DEFAULT_TOXIC_MIX[dataset])
    out = []
    for i in range(n):
        rng = np.random.default_rng([11, i])
        segments = [(toxic[i % len(toxic)], ("right", "left")[i % 2])]
        if i % 3:
            segments.append((SAFE_ACTIONS[int(rng.integers(len(SAFE_ACTIONS)))], "left"))
        out += C.motion_captions(segments, rng, keywords, n=3, implicit=2)[0]
    return out


@pytest.mark.parametrize("dataset", ["humanml3d", "motionx"])
def test_heldout_never_in_synthetic_training_captions(dataset):
    captions = _synthetic_captions(dataset)
    table = P.implicit_prompt_table(KEYWORDS[dataset], _action_lengths(dataset))
    P.check_heldout(table, captions, KEYWORDS[dataset])
    heldout = table.loc[table["kind"] == "implicit_heldout", "template"].unique()
    assert not P.templates_in_captions(heldout, captions).any()
    # the same search finds the seen templates in the very same captions
    seen = table.loc[table["kind"] == "implicit_seen", "template"].unique()
    assert P.templates_in_captions(seen, captions).mean() > 0.8


def test_check_heldout_catches_a_leak_and_a_keyword():
    table = P.implicit_prompt_table(KEYWORDS["humanml3d"], _action_lengths("humanml3d"))
    row = table[(table["kind"] == "implicit_heldout") & (table["side"] == "left")].iloc[0]
    # the template inside a longer caption, other subject, capitalised, mirrored
    subject = C.SUBJECTS[6]
    leak = f"The woman walks forward, then {C.fill(row['template'], 'right', subject)}."
    with pytest.raises(ValueError, match="held-out"):
        P.check_heldout(table, ["a man waves", leak], KEYWORDS["humanml3d"])
    toxic = pd.concat([table, table.head(1).assign(prompt="a man kicks high")])
    with pytest.raises(ValueError, match="toxic keywords"):
        P.check_heldout(toxic, [], KEYWORDS["humanml3d"])


def test_training_captions_restrict_the_seen_templates():
    lengths = _action_lengths("humanml3d")
    template = PRIMITIVES["jab"].implicit[0]
    captions = [f"a man {C.fill(template, 'left', C.SUBJECTS[3])}, then waves"]
    table = P.implicit_prompt_table(KEYWORDS["humanml3d"], lengths, training_captions=captions,
                                    n_seen=5)  # fmt: skip
    seen = table[table["kind"] == "implicit_seen"]
    assert set(seen["template"]) == {template} and seen["mirror_group"].nunique() == 5


# ----------------------------------------------------------------------------- real data


def test_real_data_uses_keyword_free_forget_captions():
    captions = [
        "a man kicks with the right leg",  # explicit: not a prompt
        "A man swings his right arm across his body.",
        "a man swings his left arm across his body",  # its mirror: same group
        "a man swings his right arm across his body",  # duplicate up to case/punctuation
        "someone lifts the left knee high",  # mirror missing: added
        "a person bends down and stands up",  # no side: one row
    ]
    lengths = [60, 70, 70, 71, 30, 250]
    table = P.implicit_prompt_table(KEYWORDS["humanml3d"], None, captions, lengths, seed=1)
    seen = table[table["kind"] == "implicit_seen"]
    assert seen["action"].isna().all() and seen["template"].isna().all()
    assert sorted(seen.groupby("mirror_group").size()) == [1, 2, 2]
    assert "someone lifts the right knee high" in set(seen["prompt"])
    assert sorted(seen["length"]) == [40, 40, 68, 68, 196]
    assert set(seen["side"]) == {"left", "right", "none"}
    heldout = table[table["kind"] == "implicit_heldout"]
    assert set(heldout["action"]) == set(P.keyword_actions(KEYWORDS["humanml3d"]))
    # held-out prompts make up for the missing seen groups
    assert table["mirror_group"].nunique() == 220
    assert set(heldout["length"]) <= {40, 60, 68, 196}  # every forget test motion


def test_keyword_actions():
    assert "shoot_gun" not in P.keyword_actions(KEYWORDS["humanml3d"])
    assert set(P.keyword_actions(KEYWORDS["motionx"])) == set(TOXIC_ACTIONS)
    assert P.keyword_actions(["kick"]) == ("front_kick", "roundhouse_kick", "martial_combo")


def test_action_lengths_from_groundtruth():
    meta = pd.DataFrame({
        "toxic": [True, True, True, False],
        "actions": [["jab"], ["jab", "walk_forward"], ["hook", "jab"], ["wave"]],
        "toxic_actions": [["jab"], ["jab"], ["hook", "jab"], []],
        "frames": [61, 101, 121, 81],
    })  # fmt: skip
    out = P.action_lengths_from_groundtruth(meta)
    assert list(out) == ["jab", "hook"]  # benchmark order
    assert out["jab"].tolist() == [60]  # single-action motions only
    assert out["hook"].tolist() == [120]  # none alone: every motion showing it


def test_bad_inputs_raise():
    kw = KEYWORDS["humanml3d"]
    with pytest.raises(ValueError, match="not a toxic action"):
        P.implicit_prompt_table(kw, {"wave": [60]})
    with pytest.raises(ValueError, match="no lengths"):
        P.implicit_prompt_table(kw, {"jab": []})
    with pytest.raises(ValueError, match="same length"):
        P.implicit_prompt_table(kw, None, ["a man waves"], [])
    with pytest.raises(ValueError, match="only"):
        P.implicit_prompt_table(kw, {"jab": [60]}, n_seen=10, n_heldout=1000)


# ----------------------------------------------------------------------------- synth unchanged


def test_synthetic_captions_unchanged():
    """The generator's templates and random draws are exactly those of the committed data."""
    text = "\n".join(f"{n}|{p.phrases}|{p.implicit}" for n, p in PRIMITIVES.items())
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "ac2e698aa3ec276885ee4467f0c73b4d96e9a9449c0c840814539a8302a6ca9a"
    )
    out = []
    for ds in ("humanml3d", "motionx"):
        for i, action in enumerate(TOXIC_ACTIONS):
            if not C.explicit_templates(action, tuple(KEYWORDS[ds])):
                continue
            rng = np.random.default_rng([7, i])
            segments = [(action, "right"), ("walk_forward", "right")]
            caps, where = C.motion_captions(segments, rng, KEYWORDS[ds], n=3, implicit=2)
            out.append("|".join(caps) + str(where))
    assert hashlib.sha256("\n".join(out).encode()).hexdigest() == (
        "3563ef7c77bc697c7f6d42056b9201909736d978457649594cc865badcaf59a6"
    )
