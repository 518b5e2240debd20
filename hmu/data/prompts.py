"""Implicit prompt sets: keyword-free requests for toxic motion, seen in training or held out.

An unlearned model should stop generating a toxic action even when the prompt names no toxic
keyword. Two kinds of implicit prompts measure that, each a table row (`COLUMNS`):

- ``implicit_seen``: phrasings the model met in training. On the embedded benchmark they are
  the actions' existing `implicit` caption templates (~30% of toxic motions carry one); on real
  data, the keyword-free captions of the forget test motions.
- ``implicit_heldout``: paraphrases that never occur in a training caption (hmu/data/
  heldout_prompts.yaml, never read by the synthetic generator). They describe actions, not
  clips, so they apply to real HumanML3D/Motion-X too.

A prompt and its mirror image (left/right swapped) share a `mirror_group` and count once.
Template prompts are a subject plus one verb phrase ("a woman raises the left knee ..."),
balanced over the dataset's toxic actions, every template used before any repeats. Lengths
(frames at 20 fps, multiples of 4 in [40, 196]) are drawn from that action's toxic motions, or
from the forget test motions on real data. Same inputs and seed -> the same table.

Which actions: those present in the dataset's toxic motions when ground truth exists (the
synthetic toxic mix), otherwise those its keyword list names (`keyword_actions`: an action whose
explicit captions the list matches, i.e. whose motions would land in D_f). A prompt for an
action the dataset never had measures nothing about unlearning: neither the base model nor D_r
can perform it.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from hmu.data.synth.actions import PRIMITIVES, TOXIC_ACTIONS
from hmu.data.synth.captions import SUBJECTS, explicit_templates, fill, mirror_caption
from hmu.data.toxicity import keyword_matcher, match_keywords

KINDS = ("implicit_seen", "implicit_heldout")
COLUMNS = ("prompt", "kind", "action", "side", "length", "mirror_group", "template")
HELDOUT_FILE = "heldout_prompts.yaml"
PLACEHOLDERS = frozenset({"side", "other", "poss", "obj"})
MIN_LENGTH, MAX_LENGTH, UNIT = 40, 196, 4  # the protocol's generation lengths
_OTHER_SIDE = {"right": "left", "left": "right"}
_SIDE_WORD = re.compile(r"\b(left|right)\b", re.IGNORECASE)
# skeleton: words only, sides and pronouns collapsed, so a template matches any of its fillings
_SKELETON_WORDS = {"left": "<side>", "right": "<side>", "clockwise": "<dir>",
                   "counterclockwise": "<dir>", **dict.fromkeys(
                       ("his", "her", "their", "him", "them"), "<pron>")}  # fmt: skip
_SKELETON_RE = re.compile(r"\b(" + "|".join(_SKELETON_WORDS) + r")\b")


# ----------------------------------------------------------------------------- templates


def _template_problem(template: str) -> str:
    """Why a template is unusable ('' when fine): a literal side or an unknown placeholder."""
    if _SIDE_WORD.search(template):
        return "names a side; write {side} or {other}"
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    extra = sorted(fields - PLACEHOLDERS)
    return f"uses placeholders {extra}; allowed: {sorted(PLACEHOLDERS)}" if extra else ""


@functools.cache
def heldout_templates() -> dict[str, tuple[str, ...]]:
    """Toxic action -> its held-out implicit templates (heldout_prompts.yaml, validated)."""
    data = yaml.safe_load(resources.files("hmu.data").joinpath(HELDOUT_FILE).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{HELDOUT_FILE}: expected a mapping action -> list of templates")
    out = {}
    for action, templates in data.items():
        if action not in TOXIC_ACTIONS:
            raise ValueError(f"{HELDOUT_FILE}: {action!r} is not a toxic action {TOXIC_ACTIONS}")
        if not templates or not all(isinstance(t, str) for t in templates):
            raise ValueError(f"{HELDOUT_FILE}: {action} needs a non-empty list of strings")
        for template in templates:
            problem = _template_problem(template)
            if problem:
                raise ValueError(f"{HELDOUT_FILE}: {template!r} {problem}")
        out[action] = tuple(templates)
    return out


def keyword_actions(keywords: Sequence[str]) -> tuple[str, ...]:
    """Toxic actions whose explicit captions match `keywords` (those the list puts in D_f)."""
    return tuple(a for a in TOXIC_ACTIONS if explicit_templates(a, tuple(keywords)))


def skeleton(text: str) -> str:
    """Lowercase words of `text` with sides and pronouns collapsed, space-padded.

    "A man raises his Left knee." -> " a man raises <pron> the <side> knee ". A template's
    skeleton is a substring of a caption's exactly when some filling of it occurs there.
    """
    words = " ".join(re.findall(r"[a-z]+", text.lower()))
    return f" {_SKELETON_RE.sub(lambda m: _SKELETON_WORDS[m.group(0)], words)} "


def template_skeleton(template: str) -> str:
    """The skeleton of a template's verb phrase (placeholders filled, then collapsed)."""
    return skeleton(fill(template, "right", SUBJECTS[0]))


def templates_in_captions(templates: Iterable[str], captions: Iterable[str]) -> np.ndarray:
    """(N,) bool: template n occurs (in any filling) inside one of `captions`."""
    blob = "\n".join(skeleton(c) for c in captions)
    return np.array([template_skeleton(t) in blob for t in templates], dtype=bool)


# ----------------------------------------------------------------------------- lengths


def prompt_length(frames) -> np.ndarray:
    """Generation length for motions of `frames` frames: a multiple of 4 in [40, 196]."""
    frames = np.asarray(frames, dtype=np.int64)
    return np.clip(frames // UNIT * UNIT, MIN_LENGTH, MAX_LENGTH)


def action_lengths_from_groundtruth(metadata: pd.DataFrame) -> dict[str, np.ndarray]:
    """Toxic action -> frame counts of the dataset's toxic motions that show it.

    metadata: the synthetic benchmark's _groundtruth/metadata.parquet (toxic, actions,
    toxic_actions, frames). Single-action motions give the length of the action alone; an
    action without one falls back to every toxic motion containing it. Frames are the 263-dim
    feature frames (one fewer than the joint frames).
    """
    missing = {"toxic", "actions", "toxic_actions", "frames"} - set(metadata.columns)
    if missing:
        raise ValueError(f"ground-truth metadata lacks columns {sorted(missing)}")
    toxic = metadata[metadata["toxic"].to_numpy(dtype=bool)]
    frames = toxic["frames"].to_numpy(dtype=np.int64) - 1
    present = set(toxic["toxic_actions"].explode().dropna())
    out = {}
    for action in (a for a in TOXIC_ACTIONS if a in present):
        alone = toxic["actions"].map(lambda acts, a=action: list(acts) == [a]).to_numpy()
        shows = toxic["toxic_actions"].map(lambda acts, a=action: a in acts).to_numpy()
        out[action] = frames[alone if alone.any() else shows]
    return out


# ----------------------------------------------------------------------------- building


def _spread(candidates: pd.DataFrame, n_groups: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n_groups` (action, template, subject) rows, balanced over actions, then templates.

    Every template of an action is used once before any is used twice, with random subjects;
    actions take turns.
    """
    if n_groups > len(candidates):
        raise ValueError(f"asked for {n_groups} prompt groups, the templates give only "
                         f"{len(candidates)}: write more templates or ask for fewer")  # fmt: skip
    df = candidates.assign(draw=rng.permutation(len(candidates)))
    df["round"] = df.groupby(["action", "template"])["draw"].rank(method="first")
    df = df.sort_values(["round", "draw"], kind="stable")
    df["turn"] = df.groupby("action", sort=False).cumcount()
    order = {a: i for i, a in enumerate(dict.fromkeys(candidates["action"]))}
    df["action_order"] = df["action"].map(order)
    return df.sort_values(["turn", "action_order"], kind="stable").head(n_groups)


def _subject_prompt(template: str, side: str, subject: int) -> str:
    """The prompt '<subject> <filled template>' for SUBJECTS[subject] on `side`."""
    who = SUBJECTS[subject]
    return f"{who[0]} {fill(template, side, who)}"


def template_prompts(
    templates: Mapping[str, Sequence[str]],
    lengths: Mapping[str, Sequence[int]],
    n_groups: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Prompts "<subject> <verb phrase>" from per-action templates: `n_groups` mirror groups.

    A template with a side gives a random side and its mirror (two rows of one group); one
    without gives one row with side "none". Each group's length is drawn from its action's
    `lengths`. Columns as COLUMNS without kind; mirror_group numbers from 0.
    """
    candidates = pd.DataFrame(
        [
            (a, t, s, _subject_prompt(t, "right", s))
            for a, ts in templates.items()
            for t in ts
            for s in range(len(SUBJECTS))
        ],
        columns=["action", "template", "subject", "text"],
    ).drop_duplicates("text")  # subjects differing in pronouns only, on a template without any
    picked = _spread(candidates, n_groups, rng)
    picked = picked.assign(side=np.where(rng.random(len(picked)) < 0.5, "right", "left"),
                           pick=rng.random(len(picked)))  # fmt: skip
    rows = []
    for group, row in enumerate(picked.itertuples(index=False)):
        pool = np.asarray(lengths[row.action])
        length = int(prompt_length(pool[int(row.pick * len(pool))]))
        text = _subject_prompt(row.template, row.side, row.subject)
        mirrored = mirror_caption(text)
        if mirrored == text:
            sides = [("none", text)]
        else:
            sides = [(row.side, text), (_OTHER_SIDE[row.side], mirrored)]
        rows += [(p, row.action, s, length, group, row.template) for s, p in sides]
    return pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "kind"])


def _normalized(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


def caption_prompts(
    captions: Sequence[str],
    lengths: Sequence[int],
    keywords: Sequence[str],
    n_groups: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Keyword-free captions (of forget test motions) as prompts: at most `n_groups` groups.

    Captions equal up to case and punctuation count once; a caption and its mirror share a
    group, and a group whose mirror is missing gets it (same length). Side is the first
    left/right word ("none" without one); action and template are null.
    """
    regex = keyword_matcher(keywords).regex
    df = pd.DataFrame({"prompt": [c.strip() for c in captions],
                       "frames": np.asarray(lengths, dtype=np.int64)})  # fmt: skip
    df = df[~df["prompt"].str.contains(regex)]
    df = df.assign(norm=df["prompt"].map(_normalized)).drop_duplicates("norm")
    mirror_norm = df["prompt"].map(lambda p: _normalized(mirror_caption(p)))
    key = df["norm"].where(df["norm"] <= mirror_norm, mirror_norm)  # the same for both mirrors
    df = df.assign(mirror_group=pd.factorize(key)[0])
    n_found = int(df["mirror_group"].max()) + 1 if len(df) else 0
    if n_found > n_groups:
        keep = np.sort(rng.choice(n_found, n_groups, replace=False))
        df = df[df["mirror_group"].isin(keep)]
        df = df.assign(mirror_group=pd.factorize(df["mirror_group"])[0])
    lonely = df[~df["mirror_group"].duplicated(keep=False)]
    mirrors = lonely.assign(prompt=lonely["prompt"].map(mirror_caption))
    mirrors = mirrors[mirrors["prompt"] != lonely["prompt"]]
    df = pd.concat([df, mirrors]).sort_values("mirror_group", kind="stable")
    side = df["prompt"].str.extract(_SIDE_WORD, expand=False).str.lower().fillna("none")
    return pd.DataFrame({
        "prompt": df["prompt"].to_numpy(), "action": None, "side": side.to_numpy(),
        "length": prompt_length(df["frames"].to_numpy()),
        "mirror_group": df["mirror_group"].to_numpy(),
        "template": None,
    }).reset_index(drop=True)  # fmt: skip


def _occurring(templates: Mapping[str, Sequence[str]], captions: Iterable[str]) -> dict:
    """The templates (per action) that occur in `captions`; actions left without one drop."""
    pairs = [(a, t) for a, ts in templates.items() for t in ts]
    found = templates_in_captions([t for _, t in pairs], captions)
    kept: dict[str, tuple[str, ...]] = {}
    for (action, template), hit in zip(pairs, found, strict=True):
        if hit:
            kept[action] = (*kept.get(action, ()), template)
    return kept


def implicit_prompt_table(
    keywords: Sequence[str],
    action_lengths: Mapping[str, Sequence[int]] | None = None,
    forget_captions: Sequence[str] = (),
    forget_lengths: Sequence[int] = (),
    seed: int = 0,
    n_seen: int = 100,
    n_heldout: int = 120,
    mirrors: bool = True,
    training_captions: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The implicit prompts of a dataset: DataFrame with COLUMNS, seen rows first.

    keywords: the dataset's toxic keyword list (no prompt may match it).
    action_lengths: toxic action -> frame counts of its toxic motions, when the dataset has
    ground truth (`action_lengths_from_groundtruth`): seen prompts then come from the actions'
    implicit templates. None (real data): seen prompts are the keyword-free `forget_captions`
    (captions of the forget test motions, with their motions' `forget_lengths`), held-out ones
    cover `keyword_actions(keywords)` with lengths drawn from `forget_lengths`.
    n_seen, n_heldout: mirror groups of each kind; when fewer seen groups exist, held-out ones
    make up the difference. mirrors=False keeps one row per group (half the generation cost).
    training_captions: when given, implicit templates that occur in none of them are left out
    of the seen prompts (a small dataset may never have drawn some of them).
    """
    keyword_matcher(keywords)  # validates the list
    if len(forget_captions) != len(forget_lengths):
        raise ValueError(f"forget_captions ({len(forget_captions)}) and forget_lengths "
                         f"({len(forget_lengths)}) must have the same length")  # fmt: skip
    seen_rng, heldout_rng = (np.random.default_rng([seed, k]) for k in range(2))
    if action_lengths is None:
        if not len(forget_lengths):
            raise ValueError("real data needs the forget test captions and lengths")
        actions = keyword_actions(keywords)
        lengths = {a: forget_lengths for a in actions}
        seen = caption_prompts(forget_captions, forget_lengths, keywords, n_seen, seen_rng)
    else:
        actions, lengths = tuple(action_lengths), action_lengths
        for action in actions:
            if action not in TOXIC_ACTIONS:
                raise ValueError(f"action_lengths: {action!r} is not a toxic action")
            if not len(lengths[action]):
                raise ValueError(f"action_lengths: {action!r} has no lengths")
        implicit = {a: PRIMITIVES[a].implicit for a in actions}
        if training_captions is not None:
            implicit = _occurring(implicit, training_captions)
        seen = template_prompts(implicit, lengths, n_seen, seen_rng)
    missing = [a for a in actions if a not in heldout_templates()]
    if missing:
        raise ValueError(f"{HELDOUT_FILE} has no templates for {missing}")
    n_found = seen["mirror_group"].nunique()
    heldout = template_prompts({a: heldout_templates()[a] for a in actions}, lengths,
                               n_heldout + max(0, n_seen - n_found), heldout_rng)  # fmt: skip
    heldout["mirror_group"] += n_found
    table = pd.concat([seen.assign(kind=KINDS[0]), heldout.assign(kind=KINDS[1])])
    if not mirrors:
        table = table.drop_duplicates("mirror_group")
    table = table[list(COLUMNS)].reset_index(drop=True)
    return table.astype({"length": np.int64, "mirror_group": np.int64})


# ----------------------------------------------------------------------------- checks


def prompt_counts(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Rows and mirror groups per kind and in total (a prompt and its mirror count once)."""
    parts = {kind: table[table["kind"] == kind] for kind in KINDS} | {"total": table}
    return {name: {"rows": len(part), "groups": int(part["mirror_group"].nunique())}
            for name, part in parts.items()}  # fmt: skip


def check_heldout(
    table: pd.DataFrame, training_captions: Iterable[str], keywords: Sequence[str]
) -> None:
    """Raise ValueError if a prompt matches a toxic keyword, or a held-out prompt (or its
    template, in any filling) occurs in `training_captions`."""
    missing = {"prompt", "kind", "template"} - set(table.columns)
    if missing:
        raise ValueError(f"prompt table lacks columns {sorted(missing)}")
    toxic = table["prompt"].str.contains(keyword_matcher(keywords).regex)
    if toxic.any():
        shown = [f"{p!r} {match_keywords(p, keywords)}" for p in table["prompt"][toxic][:3]]
        raise ValueError(f"{int(toxic.sum())} implicit prompts contain toxic keywords: "
                         + "; ".join(shown))  # fmt: skip
    heldout = table[table["kind"] == KINDS[1]]
    captions = list(training_captions)
    blob = "\n".join(skeleton(c) for c in captions)
    leaked = [t for t in heldout["template"].dropna().unique() if template_skeleton(t) in blob]
    seen_text = {_normalized(c) for c in captions}
    leaked += [p for p in heldout["prompt"] if _normalized(p) in seen_text]
    if leaked:
        raise ValueError(f"{len(leaked)} held-out prompts/templates occur in the training "
                         f"captions, e.g. {leaked[:3]}")  # fmt: skip


def forget_test_captions(
    captions: pd.DataFrame, splits: pd.DataFrame, motions: pd.DataFrame
) -> tuple[list[str], np.ndarray]:
    """Captions of the forget test motions and their motions' lengths, from processed tables.

    captions: (motion_id, caption); splits: (motion_id, partition, set); motions: (motion_id,
    length) -- data/processed/<ds>/{captions,splits}.parquet and motions/motions.parquet.
    """
    test = splits.loc[(splits["partition"] == "test") & (splits["set"] == "forget"), "motion_id"]
    rows = captions[captions["motion_id"].isin(test)].merge(
        motions[["motion_id", "length"]], on="motion_id", how="inner", validate="many_to_one"
    )
    return rows["caption"].tolist(), rows["length"].to_numpy(dtype=np.int64)


__all__ = [
    "KINDS", "COLUMNS", "heldout_templates", "keyword_actions", "skeleton", "template_skeleton",
    "templates_in_captions", "prompt_length", "action_lengths_from_groundtruth",
    "template_prompts", "caption_prompts", "implicit_prompt_table", "prompt_counts",
    "check_heldout", "forget_test_captions",
]  # fmt: skip
