"""Caption line format and HumanML3D-style POS tagging (hmu.data.text)."""

from __future__ import annotations

import math

import pytest

from hmu.data.text import (
    CaptionLine,
    format_caption_line,
    load_tagger,
    parse_caption_line,
    read_caption_file,
    tag_captions,
)

# Published HumanML3D lines (texts/000000.txt and others, spaCy 2.x tags).
PUBLISHED = [
    "a man kicks something or someone with his left leg.#a/DET man/NOUN kick/VERB "
    "something/PRON or/CCONJ someone/PRON with/ADP his/DET left/ADJ leg/NOUN#0.0#0.0",
    "the standing person kicks with their left foot before going back to their original "
    "stance.#the/DET stand/VERB person/NOUN kick/VERB with/ADP their/DET left/ADJ foot/NOUN "
    "before/ADP go/VERB back/ADV to/ADP their/DET original/ADJ stance/NOUN#0.0#0.0",
    "a man kicks with something or someone with his left leg.#a/DET man/NOUN kick/VERB "
    "with/ADP something/PRON or/CCONJ someone/PRON with/ADP his/DET left/ADJ leg/NOUN#0.0#0.0",
    "he is flying kick with his left leg#he/PRON is/AUX fly/VERB kick/NOUN with/ADP his/DET "
    "left/ADJ leg/NOUN#0.0#0.0",
]


def test_parse_published_line():
    line = parse_caption_line(PUBLISHED[0] + "\n", "texts/000000.txt", 1)
    assert line.caption == "a man kicks something or someone with his left leg."
    assert line.tokens[:3] == ["a/DET", "man/NOUN", "kick/VERB"]
    assert len(line.tokens) == 10
    assert (line.start, line.end) == (0.0, 0.0)


def test_parse_sub_range_empty_tokens_and_nan():
    assert parse_caption_line("a person waves##1.5#4.25") == CaptionLine(
        "a person waves", [], 1.5, 4.25
    )
    nan_line = parse_caption_line("a person waves#a/DET#nan#nan")
    assert (nan_line.start, nan_line.end) == (0.0, 0.0)
    assert not math.isnan(nan_line.start)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a person walks forward", "expected 'caption#tokens#start#end'"),
        ("a person walks#a/DET#0.0", "expected 'caption#tokens#start#end'"),
        ("a person walks#a/DET#zero#0.0", "start time 'zero' is not a number"),
        ("a person walks#a/DET#0.0#-1", "end time '-1' must be finite"),
        ("a person walks#a/DET person#0.0#0.0", "token 'person' is not of the form word/POS"),
        ("#a/DET#0.0#0.0", "empty caption"),
    ],
)
def test_parse_bad_lines_name_file_and_line(line, message):
    with pytest.raises(ValueError, match="texts/001234.txt, line 3") as info:
        parse_caption_line(line, "texts/001234.txt", 3)
    assert message in str(info.value)


def test_format_round_trip():
    for text in PUBLISHED:
        parsed = parse_caption_line(text)
        assert format_caption_line(*parsed) == text
    assert format_caption_line("a b", [], 2, 3.5) == "a b##2.0#3.5"
    with pytest.raises(ValueError, match="must not contain '#'"):
        format_caption_line("a # b", [], 0, 0)
    with pytest.raises(ValueError, match="whitespace"):
        format_caption_line("a b", ["a b/DET"], 0, 0)


def test_read_caption_file(tmp_path):
    path = tmp_path / "000000.txt"
    path.write_text("\n".join(PUBLISHED) + "\n\n", encoding="utf-8")
    lines = read_caption_file(path)
    assert [line.caption[:10] for line in lines] == [text[:10] for text in PUBLISHED]
    empty = tmp_path / "000001.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"000001\.txt: caption file is empty"):
        read_caption_file(empty)
    bad = tmp_path / "000002.txt"
    bad.write_text(PUBLISHED[0] + "\nno fields here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"000002\.txt, line 2"):
        read_caption_file(bad)


def test_tagger_keeps_only_needed_components():
    nlp = load_tagger()
    assert load_tagger() is nlp  # loaded once
    assert "ner" not in nlp.pipe_names
    assert {"tagger", "parser", "attribute_ruler", "lemmatizer"} <= set(nlp.pipe_names)


def test_tag_captions_matches_published_tokens():
    """Same tokens as the published data, except spaCy 3 tags possessives PRON (2.x: DET)."""
    captions = [parse_caption_line(text) for text in PUBLISHED]
    tagged = tag_captions([c.caption for c in captions], batch_size=1)
    for line, tokens in zip(captions, tagged, strict=True):
        expected = [t.replace("his/DET", "his/PRON").replace("their/DET", "their/PRON")
                    for t in line.tokens]  # fmt: skip
        assert tokens == expected


def test_tag_captions_rules():
    tagged = tag_captions(
        [
            "A person walks forward, turns left and sits-down.",
            "a man full-body sideways jumps to his left.",
            "",
            "someone left the room after he was hit",
        ]
    )
    walk, jump, empty, left = tagged
    # case kept (not lowercased) as upstream; lemma for the verbs; "left" never lemmatised;
    # '-' removed before tagging (sitsdown, fullbody); punctuation dropped.
    assert walk[:3] == ["A/DET", "person/NOUN", "walk/VERB"]
    assert "left/VERB" in walk and "sitsdown/VERB" in walk
    assert all("," not in t and "." not in t for t in walk)
    assert jump[2] == "fullbody/NOUN" and "jump/VERB" in jump and jump[-1] == "left/NOUN"
    assert empty == []
    assert left[:2] == ["someone/PRON", "left/VERB"] and "hit/VERB" in left
    assert "after/SCONJ" in left  # needs the parser: the attribute ruler reads dep labels


def test_tag_captions_batches_agree_and_bad_input():
    captions = ["a person kicks", "a person punches twice", "the man jumps up"] * 3
    assert tag_captions(captions, batch_size=2) == tag_captions(captions, batch_size=64)
    with pytest.raises(TypeError, match="not a single str"):
        tag_captions("a person kicks")
    with pytest.raises(TypeError, match=r"captions\[1\]"):
        tag_captions(["a person kicks", None])
    with pytest.raises(ValueError, match="batch_size"):
        tag_captions(["a"], batch_size=0)
