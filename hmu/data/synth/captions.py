"""HumanML3D-style captions for synthetic motions, and their mirror images.

A caption is a subject ("a person", "a woman", ...) followed by one verb phrase per action,
joined by connectors ("..., then ...", "first ..., and finally ..."). Toxic actions use explicit
templates that contain a toxic keyword of the dataset's official list (the paper, Sec. 6), or, in
implicit captions, templates that describe the movement without any keyword.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from hmu.data.synth.actions import PRIMITIVES

SUBJECTS = (
    ("a person", "their", "them"), ("a person", "his", "him"), ("the person", "their", "them"),
    ("a man", "his", "him"), ("the man", "his", "him"), ("a woman", "her", "her"),
    ("the woman", "her", "her"), ("someone", "their", "them"), ("a figure", "their", "them"),
    ("a human", "their", "them"), ("a guy", "his", "him"),
)  # fmt: skip
CONNECTORS = {
    1: ("{0}",),
    2: ("{0}, then {1}", "{0} and then {1}", "{0}, and then {1}", "first {0}, then {1}",
        "{0}, after that {1}"),
    3: ("{0}, {1}, and then {2}", "{0}, then {1}, then {2}", "{0}, {1} and finally {2}",
        "first {0}, then {1}, and finally {2}", "{0}, then {1} and then {2}"),
}  # fmt: skip
_MIRROR_WORDS = {"left": "right", "right": "left", "clockwise": "counterclockwise",
                 "counterclockwise": "clockwise"}  # fmt: skip
_MIRROR_RE = re.compile(r"\b(" + "|".join(_MIRROR_WORDS) + r")\b", re.IGNORECASE)


def mirror_caption(text: str) -> str:
    """Swap left/right and clockwise/counterclockwise (whole words, case kept) in a caption."""

    def swap(match: re.Match) -> str:
        word = match.group(0)
        new = _MIRROR_WORDS[word.lower()]
        return new.capitalize() if word[0].isupper() else new

    return _MIRROR_RE.sub(swap, text)


def fill(template: str, side: str, subject=SUBJECTS[0]) -> str:
    """A template with its placeholders filled for an action on `side` and a subject."""
    other = {"right": "left", "left": "right"}.get(side, side)
    direction = "clockwise" if side == "right" else "counterclockwise"
    return template.format(side=side, other=other, poss=subject[1], obj=subject[2],
                           dir=direction)  # fmt: skip


@functools.cache
def explicit_templates(action: str, keywords: tuple[str, ...]) -> tuple[str, ...]:
    """The explicit templates of a toxic action that contain one of `keywords`.

    A toxic action can only appear in a dataset whose keyword list matches at least one of
    them, so that every toxic motion lands in the forget set of its dataset.
    """
    from hmu.data.toxicity import match_keywords  # the split's own matcher

    prim = PRIMITIVES[action]
    return tuple(t for t in prim.phrases if match_keywords(fill(t, "right"), list(keywords)))


def _phrase(action: str, side: str, subject, implicit: bool, keywords, rng) -> str:
    prim = PRIMITIVES[action]
    if not prim.toxic:
        pool = prim.phrases
    elif implicit:
        pool = prim.implicit
    else:
        pool = explicit_templates(action, tuple(keywords))
        if not pool:
            raise ValueError(f"action {action!r} has no caption with a keyword of {keywords}")
    return fill(pool[rng.integers(len(pool))], side, subject)


def caption(segments: Sequence[tuple[str, str]], rng: np.random.Generator, implicit: bool,
            keywords: Sequence[str]) -> str:  # fmt: skip
    """One caption for (action, side) segments; toxic ones implicit or with a keyword."""
    subject = SUBJECTS[rng.integers(len(SUBJECTS))]
    phrases = [_phrase(a, s, subject, implicit, keywords, rng) for a, s in segments]
    templates = CONNECTORS[len(phrases)]
    text = f"{subject[0]} {templates[rng.integers(len(templates))].format(*phrases)}"
    if rng.random() < 0.3:
        text = text[0].upper() + text[1:]
    return text + "." if rng.random() < 0.6 else text


def motion_captions(
    segments: Sequence[tuple[str, str]],
    rng: np.random.Generator,
    keywords: Sequence[str],
    n: int = 3,
    implicit: int = 0,
) -> tuple[list[str], list[int]]:
    """`n` distinct captions, `implicit` of them (at random positions) without toxic keywords.

    Returns the captions and the indices of the implicit ones. At least one caption of a toxic
    motion stays explicit, so the motion is in the forget set.
    """
    if implicit >= n:
        raise ValueError(f"at most {n - 1} of {n} captions can be implicit, got {implicit}")
    where = sorted(rng.choice(n, implicit, replace=False).tolist()) if implicit else []
    captions: list[str] = []
    for k in range(n):
        text = caption(segments, rng, k in where, keywords)
        for _ in range(20):  # avoid repeating a caption when the templates allow it
            if text not in captions:
                break
            text = caption(segments, rng, k in where, keywords)
        captions.append(text)
    return captions, where
