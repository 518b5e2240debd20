"""Toxic keyword matching and the forget/retain split (hmu.data.toxicity)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from hmu.data.toxicity import (
    OFFICIAL_KEYWORDS,
    assign_split,
    compare_with_substring,
    detoxify,
    keyword_statistics,
    match_keywords,
    official_keywords,
    substring_match,
)

MX_VIOLENCE = OFFICIAL_KEYWORDS["motionx"]["violence"]
HML_VIOLENCE = OFFICIAL_KEYWORDS["humanml3d"]["violence"]


@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("a man kicks", ["kick"], ["kick"]),
        ("he kicked the ball", ["kick"], ["kick"]),
        ("kicking with the left leg", ["kick"], ["kick"]),
        ("a kicker, then kickers", ["kick"], ["kick"]),
        ("Kick high", ["kick"], ["kick"]),
        ("KICKS", ["kick"], ["kick"]),
        ("a front kick.", ["kick"], ["kick"]),
        ("kick, then stand", ["kick"], ["kick"]),
        ("Kick_left_001", ["kick"], ["kick"]),  # clip-name labels: underscores separate
        ("a person punches twice", ["punch"], ["punch"]),
        ("punched, punching", ["punch"], ["punch"]),
        ("hits the bag", ["hit"], ["hit"]),
        ("he keeps hitting", ["hit"], ["hit"]),
        ("a person in a white shirt", ["hit"], []),
        ("whitewash the wall", ["hit"], []),
        ("stabs, stabbed, stabbing", ["stab"], ["stab"]),
        ("he shoots", ["shoot"], ["shoot"]),
        ("was shot", ["shoot"], ["shoot"]),
        ("a shooter", ["shoot"], ["shoot"]),
        ("beaten up", ["beat"], ["beat"]),
        ("beating a drum", ["beat"], ["beat"]),
        ("does kung fu", ["kungfu"], ["kungfu"]),
        ("Kung-Fu stance", ["kungfu"], ["kungfu"]),
        ("kungfu", ["kung fu"], ["kung fu"]),
        ("tae kwon do", ["taekwondo"], ["taekwondo"]),
        ("a martial arts move", ["martial arts"], ["martial arts"]),
        ("kickboxing routine", ["kick", "box"], ["kick", "box"]),
        ("kickboxing routine", ["box"], ["box"]),
        ("a kickboxer", ["kick"], ["kick"]),
        ("he is boxing", ["boxe"], ["boxe"]),
        ("a boxer", ["boxe"], ["boxe"]),
        ("moves boxes", ["boxe"], ["boxe"]),
        ("picks up a box", ["boxe"], []),  # the official stem avoids the noun
        ("picks up a box", ["box"], ["box"]),
        ("beatbox rhythm", ["beat", "box"], []),  # vocal percussion is not violence
        ("gunshot", ["gun", "shoot"], ["gun", "shoot"]),
        ("an uppercut", ["uppercut"], ["uppercut"]),
        ("uppercutting", ["uppercut"], ["uppercut"]),
        ("a hook punch", ["punch", "hook"], ["punch", "hook"]),
        ("he walks", MX_VIOLENCE, []),
    ],
)
def test_match_keywords_cases(text, keywords, expected):
    assert match_keywords(text, keywords) == expected


def test_match_keywords_order_and_uniqueness():
    text = "kicks, then kicks again, then a punch and a kick"
    assert match_keywords(text, ["punch", "kick"]) == ["punch", "kick"]
    assert match_keywords(text, ["kick", "punch", "Kick"]) == ["kick", "punch"]
    assert match_keywords("kickboxing", MX_VIOLENCE) == ["box", "kick"]  # list order


def test_match_keywords_bad_lists():
    with pytest.raises(ValueError, match="empty"):
        match_keywords("a kick", [])
    with pytest.raises(TypeError, match="not the str 'kick'"):
        match_keywords("a kick", "kick")
    with pytest.raises(ValueError, match="keyword 'k1ck'"):
        match_keywords("a kick", ["k1ck"])
    with pytest.raises(ValueError, match="keyword ''"):
        match_keywords("a kick", ["kick", ""])
    with pytest.raises(TypeError, match="text must be a str"):
        match_keywords(None, ["kick"])


def test_official_lists():
    assert OFFICIAL_KEYWORDS["humanml3d"]["violence"] == [
        "kick", "punch", "hit", "beat", "boxe", "boxing", "jab", "uppercut", "hook",
    ]  # fmt: skip
    assert len(OFFICIAL_KEYWORDS["motionx"]["violence"]) == 16
    concepts = {"violence", "kick", "punch_jab_box_hit_beat", "weapons", "martial_arts",
                "gun_shoot"}  # fmt: skip
    for dataset in ("humanml3d", "motionx"):
        assert concepts <= set(OFFICIAL_KEYWORDS[dataset])
        # every keyword matches itself (the regex builds for every list)
        for words in OFFICIAL_KEYWORDS[dataset].values():
            for word in words:
                assert word in match_keywords(f"a {word}.", words)
    assert official_keywords("Motion-X", "kick") == ["kick"]
    with pytest.raises(ValueError, match="unknown concept 'kicks'"):
        official_keywords("humanml3d", "kicks")
    with pytest.raises(ValueError, match="unknown dataset 'kit'"):
        official_keywords("kit", "kick")


def test_detoxify():
    text = "A man kicks, then punches the air with a kung-fu move."
    assert detoxify(text, MX_VIOLENCE) == "A man, then the air with a move."
    assert detoxify("a person kickboxing hard", ["kick"]) == "a person hard"
    assert detoxify("a man in white walks", ["hit"]) == "a man in white walks"
    assert detoxify("he kicks and punches", ["kick", "punch"], "***") == "he *** and ***"


def test_substring_match_is_the_papers_rule():
    assert substring_match("a person in a white shirt", ["hit"]) == ["hit"]
    assert substring_match("Kicks high", ["kick"]) == []  # case-sensitive
    assert substring_match("a beatbox", ["beat", "box", "kick"]) == ["beat", "box"]


# A small caption table: motion 3 and its mirror M3 only have a toxic second caption.
CAPTIONS = pd.DataFrame(
    {
        "motion_id": ["000001", "000001", "000002", "000003", "000003", "M000003", "000004"],
        "caption": [
            "a man walks forward",
            "then he Kicks hard",
            "a person in a white shirt waves",
            "a person stretches",
            "a kickboxing practice",
            "a kickboxing practice",
            "someone beatboxes",
        ],
        "tokens": [
            ["a/DET", "man/NOUN", "walk/VERB", "forward/ADV"],
            ["then/ADV", "he/PRON", "kick/VERB", "hard/ADV"],
            [], [], [], [], [],
        ],
    }
)  # fmt: skip
PARTITIONS = {"000001": "train", "000002": "val", "000003": "test", "M000003": "train",
              "000004": "train"}  # fmt: skip


def _reference_split(captions, forms):
    """Independent rule: a motion is toxic if a lowercase letter-run of a caption is a form."""
    toxic = set()
    for motion_id, caption in zip(captions["motion_id"], captions["caption"], strict=True):
        if set(re.findall(r"[a-z]+", caption.lower())) & forms:
            toxic.add(motion_id)
    return toxic


def test_assign_split_any_caption_rule():
    split = assign_split(CAPTIONS, ["kick", "hit", "box", "beat"], PARTITIONS, "violence")
    assert list(split.columns) == ["motion_id", "partition", "set", "matched", "concept"]
    assert split["motion_id"].tolist() == list(PARTITIONS)
    assert split["partition"].tolist() == list(PARTITIONS.values())
    assert split.set_index("motion_id")["set"].to_dict() == {
        "000001": "forget", "000002": "retain", "000003": "forget", "M000003": "forget",
        "000004": "retain",
    }  # fmt: skip
    assert split.set_index("motion_id")["matched"].to_dict() == {
        "000001": "kick", "000002": "", "000003": "kick,box", "M000003": "kick,box",
        "000004": "",
    }  # fmt: skip
    assert (split["concept"] == "violence").all()
    partitions_df = pd.DataFrame({"motion_id": list(PARTITIONS), "partition": PARTITIONS.values()})
    pd.testing.assert_frame_equal(split, assign_split(CAPTIONS, ["kick", "hit", "box", "beat"],
                                                      partitions_df, "violence"))  # fmt: skip


def test_assign_split_matches_independent_loop():
    rng = np.random.default_rng(0)
    vocab = ["a", "person", "walks", "white", "kicks", "Kicked", "punching", "hits", "waves",
             "shirt", "kickers", "punchy", "boxing", "beatbox", "stabbed", "kick."]  # fmt: skip
    weights = np.where(np.isin(vocab, ["a", "person", "walks", "waves", "shirt"]), 12.0, 1.0)
    weights /= weights.sum()
    captions = pd.DataFrame(
        {
            "motion_id": [f"{i // 3:06d}" for i in range(300)],
            "caption": [" ".join(rng.choice(vocab, size=3, p=weights)) for _ in range(300)],
        }
    )
    forms = {"kick", "kicks", "kicked", "kickers", "punching", "hits"}
    split = assign_split(
        captions, ["kick", "punch", "hit"], {f"{i:06d}": "train" for i in range(100)}
    )
    got = set(split.loc[split["set"] == "forget", "motion_id"])
    assert got == _reference_split(captions, forms)
    assert 20 < len(got) < 80


def test_assign_split_bad_input():
    keywords = ["kick"]
    with pytest.raises(ValueError, match="1 motions have no caption"):
        assign_split(CAPTIONS, keywords, {**PARTITIONS, "000009": "test"})
    with pytest.raises(ValueError, match="captions but no partition"):
        assign_split(CAPTIONS, keywords, {"000001": "train"})
    with pytest.raises(ValueError, match="train/val/test"):
        assign_split(CAPTIONS, keywords, {**PARTITIONS, "000001": "training"})
    with pytest.raises(ValueError, match="lacks columns"):
        assign_split(CAPTIONS.drop(columns="caption"), keywords, PARTITIONS)
    with pytest.raises(ValueError, match="missing values"):
        assign_split(CAPTIONS.assign(caption=[None] + CAPTIONS["caption"].tolist()[1:]),
                     keywords, PARTITIONS)  # fmt: skip
    with pytest.raises(ValueError, match="empty"):
        assign_split(CAPTIONS, [], PARTITIONS)


def test_compare_with_substring_counts_changes():
    table = compare_with_substring(CAPTIONS, ["kick", "hit", "box", "beat"]).set_index("outcome")
    counts = table["motions"].to_dict()
    # "Kicks" only matches as a substring through its lemma token kick/VERB, like grep did.
    assert counts == {"both_forget": 3, "both_retain": 0, "word_forget_substring_retain": 0,
                      "word_retain_substring_forget": 2}  # fmt: skip
    examples = table.loc["word_retain_substring_forget", "examples"]
    assert "000002: a person in a white shirt waves [hit]" in examples
    assert "000004: someone beatboxes [box,beat]" in examples
    # without tokens the capitalised "Kicks" is a word-only match
    counts = compare_with_substring(CAPTIONS.drop(columns="tokens"), ["kick"])
    row = counts.set_index("outcome").loc["word_forget_substring_retain"]
    assert row["motions"] == 1 and row["examples"] == "000001: then he Kicks hard [kick]"


def test_keyword_statistics():
    stats = keyword_statistics(CAPTIONS, ["kick", "hit", "box"]).set_index("keyword")
    assert stats.loc["kick", "motions_word"] == 3
    assert stats.loc["hit", "motions_word"] == 0 and stats.loc["hit", "motions_substring"] == 1
    assert stats.loc["box", "motions_substring"] == 3  # kickboxing x2 + beatboxes
    assert stats.loc["any", "share_word"] == pytest.approx(3 / 5)
    assert stats.loc["any", "share_substring"] == pytest.approx(5 / 5)


# --- toxicity statistics charts (hmu.viz.plots) ---


def _read_png(path):
    """(height, width, channels) float image after checking the PNG signature."""
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def test_statistics_charts_render_png(tmp_path):
    from hmu.viz.plots import keyword_bars, scatter_plot, toxicity_pie

    pie, bars, scatter = tmp_path / "pie.png", tmp_path / "a" / "bars.png", tmp_path / "s.png"
    toxicity_pie({"toxic": 0.077, "safe": 0.923}, pie, "HumanML3D")
    keyword_bars({"kick": 0.034, "punch": 0.017, "beat": np.float32(0.002)}, bars, "per keyword")
    scatter_plot({"MoMask": (0.3, 0.05), "LCR": (np.float64(0.05), 0.08)}, scatter, "toxic",
                 "FID")  # fmt: skip
    for path in (pie, bars, scatter):
        image = _read_png(path)
        assert path.stat().st_size > 5000 and image.shape[0] > 200 and image.shape[1] > 200
        assert image[..., :3].std() > 0.05  # not a blank canvas
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "bars.png", "pie.png", "s.png",
    ]  # atomic writes leave no temporary files  # fmt: skip
    red = np.array([0xD6, 0x27, 0x28]) / 255  # the toxic wedge / bars colour
    for path in (pie, bars):
        image = _read_png(path)[..., :3]
        assert (np.abs(image - red).max(axis=-1) < 0.02).mean() > 0.005
    again = tmp_path / "again.png"
    toxicity_pie({"toxic": 0.077, "safe": 0.923}, again, "HumanML3D")
    assert again.read_bytes() == pie.read_bytes()  # reproducible bytes for DVC


def test_statistics_charts_bad_input(tmp_path):
    from hmu.viz.plots import keyword_bars, scatter_plot, toxicity_pie

    with pytest.raises(ValueError, match="non-empty"):
        toxicity_pie({}, tmp_path / "p.png")
    with pytest.raises(ValueError, match="all be zero"):
        toxicity_pie({"toxic": 0, "safe": 0}, tmp_path / "p.png")
    with pytest.raises(ValueError, match=r"counts\['kick'\] = nan"):
        keyword_bars({"kick": float("nan")}, tmp_path / "b.png")
    with pytest.raises(ValueError, match="negative"):
        keyword_bars({"kick": -1.0}, tmp_path / "b.png")
    with pytest.raises(ValueError, match=r"points\['LCR'\]"):
        scatter_plot({"LCR": (1.0,)}, tmp_path / "s.png", "x", "y")
    assert not list(tmp_path.iterdir())


def test_every_generated_form_matches_whole_words_only():
    """The prefix-tree regex accepts each generated form, with any separator, and no more."""
    from hmu.data.toxicity import _surface_forms, keyword_matcher

    for keyword in dict.fromkeys(MX_VIOLENCE + HML_VIOLENCE):
        matcher = keyword_matcher([keyword])
        for parts in _surface_forms(keyword):
            for separator in (" ", "-", ""):
                text = separator.join(parts)
                assert matcher.regex.fullmatch(text), text
                assert matcher.regex.fullmatch(text.upper()), text
                assert match_keywords(f"x{text} {text}x {text}s{text}", [keyword]) == [], text
