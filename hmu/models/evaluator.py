"""Guo et al. (2022) text-motion evaluator: movement, text and motion encoders.

Parameter names follow the upstream modules so the official checkpoint
(text_mot_match/model/finest.tar: keys movement_encoder, text_encoder, motion_encoder) loads
key-for-key. Our own evaluators (trained without GloVe) add a learned word-embedding table and
its vocabulary, and every evaluator carries the mean/std its motion inputs are normalised with.

Over 450 lines because the three encoders, their vocabulary and the official loader share
the upstream key layout.
"""

from __future__ import annotations

import os
import pickle
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from hmu.models.checkpoint import load_checked, load_state, save_state

POS_CLASSES = (
    "VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV",
    "Loc_VIP", "Body_VIP", "Obj_VIP", "Act_VIP", "Desc_VIP", "OTHER",
)  # fmt: skip
POS_INDEX = {name: i for i, name in enumerate(POS_CLASSES)}

# Words whose POS class is overridden by a "very important" class, as upstream.
# fmt: off
VIP_WORDS = {
    "Loc_VIP": ("left", "right", "clockwise", "counterclockwise", "anticlockwise", "forward",
                "back", "backward", "up", "down", "straight", "curve"),
    "Body_VIP": ("arm", "chin", "foot", "feet", "face", "hand", "mouth", "leg", "waist", "eye",
                 "knee", "shoulder", "thigh"),
    "Obj_VIP": ("stair", "dumbbell", "chair", "window", "floor", "car", "ball", "handrail",
                "baseball", "basketball"),
    "Act_VIP": ("walk", "run", "swing", "pick", "bring", "kick", "put", "squat", "throw", "hop",
                "dance", "jump", "turn", "stumble", "dance", "stop", "sit", "lift", "lower",
                "raise", "wash", "stand", "kneel", "stroll", "rub", "bend", "balance", "flap",
                "jog", "shuffle", "lean", "rotate", "spin", "spread", "climb"),
    "Desc_VIP": ("slowly", "carefully", "fast", "careful", "slow", "quickly", "happy", "angry",
                 "sad", "happily", "angrily", "sadly"),
}
# fmt: on
VIP_CLASS = {word: cls for cls, words in reversed(VIP_WORDS.items()) for word in words}

MAX_TEXT_LEN = 20  # word tokens kept per caption; sos + words + eos, padded to 22
FOOT_CONTACT_DIMS = 4
CHECKPOINT_PARTS = ("movement_encoder", "text_encoder", "motion_encoder")


def init_weight(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases for linear/conv layers (upstream init)."""
    if isinstance(module, nn.Linear | nn.Conv1d | nn.ConvTranspose1d):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MovementConvEncoder(nn.Module):
    """Two strided convolutions: (B, T, input_size) -> (B, T/4, output_size) movement units."""

    def __init__(self, input_size: int = 259, hidden_size: int = 512, output_size: int = 512):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)
        self.apply(init_weight)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.main(inputs.transpose(1, 2)).transpose(1, 2)  # (B, T/4, H)
        return self.out_net(hidden)


class MovementConvDecoder(nn.Module):
    """Inverse of MovementConvEncoder for its autoencoder pretraining: (B, T/4, in) ->
    (B, T, output_size)."""

    def __init__(self, input_size: int = 512, hidden_size: int = 512, output_size: int = 263):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose1d(input_size, hidden_size, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose1d(hidden_size, output_size, 4, 2, 1),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)
        self.apply(init_weight)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.main(inputs.transpose(1, 2)).transpose(1, 2)  # (B, T, D)
        return self.out_net(hidden)


class _BiGRUCo(nn.Module):
    """Shared body of the co-embedding encoders: input projection, BiGRU with a learned
    initial state over packed sequences, and an MLP on the two final hidden states."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int):
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(hidden_size * 2, hidden_size),
            nn.LayerNorm(hidden_size),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_size, output_size),
        )
        self.input_emb.apply(init_weight)
        self.output_net.apply(init_weight)
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))

    def _encode(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.input_emb(inputs)  # (B, L, H)
        h0 = self.hidden.expand(-1, inputs.shape[0], -1).contiguous()  # (2, B, H)
        packed = pack_padded_sequence(
            embedded, lengths.to("cpu", torch.int64), batch_first=True, enforce_sorted=False
        )
        _, last = self.gru(packed, h0)  # (2, B, H), back in input order
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))  # (B, out)


class TextEncoderBiGRUCo(_BiGRUCo):
    """Caption encoder: word vectors + projected POS one-hots -> (B, output_size)."""

    def __init__(
        self,
        word_size: int = 300,
        pos_size: int = 15,
        hidden_size: int = 512,
        output_size: int = 512,
    ):
        super().__init__(word_size, hidden_size, output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)
        self.pos_emb.apply(init_weight)

    def forward(
        self, word_embs: torch.Tensor, pos_onehot: torch.Tensor, cap_lens: torch.Tensor
    ) -> torch.Tensor:
        return self._encode(word_embs + self.pos_emb(pos_onehot), cap_lens)


class MotionEncoderBiGRUCo(_BiGRUCo):
    """Motion encoder over movement units (B, N, input_size) with N units valid -> (B, out)."""

    def __init__(self, input_size: int = 512, hidden_size: int = 1024, output_size: int = 512):
        super().__init__(input_size, hidden_size, output_size)

    def forward(self, inputs: torch.Tensor, m_lens: torch.Tensor) -> torch.Tensor:
        return self._encode(inputs, m_lens)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds only plain containers; any class or function reference fails."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only list/dict/str/int")


def _load_plain_pickle(path: Path, expected: type) -> list | dict:
    """Read a pickle made only of list/dict/str/int without running any code."""
    with open(path, "rb") as f:
        value = _RestrictedUnpickler(f).load()
    if not isinstance(value, expected):
        raise ValueError(f"{path}: expected a {expected.__name__}, got {type(value).__name__}")
    items = value.items() if isinstance(value, dict) else ((v, 0) for v in value)
    if not all(isinstance(k, str) and isinstance(v, int) for k, v in items):
        raise ValueError(f"{path}: unexpected entry types (want str words / int indices)")
    return value


def split_token(token: str) -> tuple[str, str]:
    """Split a "word/POS" token into (word, POS)."""
    word, sep, pos = token.rpartition("/")
    if not sep or not word:
        raise ValueError(f"token {token!r}: expected 'word/POS'")
    return word, pos


class WordVectorizer:
    """Maps "word/POS" caption tokens to word indices and POS one-hots (upstream semantics).

    The vocabulary is either GloVe's (`from_glove`, with its fixed vectors) or learned from
    training captions (`from_tokens`, vectors then come from the evaluator's `word_emb`).
    Words outside the vocabulary become 'unk' with POS OTHER; VIP words override the POS.
    """

    SPECIALS = ("unk", "sos", "eos")

    def __init__(self, vocab: Sequence[str], vectors: np.ndarray | None = None):
        self.vocab = list(vocab)
        self.index = {word: i for i, word in enumerate(self.vocab)}
        if len(self.index) != len(self.vocab):
            raise ValueError("vocab: duplicate words")
        missing = [w for w in self.SPECIALS if w not in self.index]
        if missing:
            raise ValueError(f"vocab: lacks special words {missing}")
        if vectors is not None and (vectors.ndim != 2 or vectors.shape[0] != len(self.vocab)):
            raise ValueError(f"vectors: shape {vectors.shape} does not match {len(vocab)} words")
        self.vectors = vectors

    @classmethod
    def from_glove(cls, folder: str | os.PathLike, prefix: str = "our_vab") -> WordVectorizer:
        """Load upstream GloVe files <prefix>_data.npy, <prefix>_words.pkl, <prefix>_idx.pkl."""
        folder = Path(folder)
        vectors = np.load(folder / f"{prefix}_data.npy", allow_pickle=False)
        words = _load_plain_pickle(folder / f"{prefix}_words.pkl", list)
        word2idx = _load_plain_pickle(folder / f"{prefix}_idx.pkl", dict)
        bad = [w for w in words if not 0 <= word2idx.get(w, -1) < len(vectors)]
        if bad:
            raise ValueError(f"{folder}: words without a vector row, e.g. {bad[:5]}")
        rows = np.array([word2idx[w] for w in words], dtype=np.int64)
        return cls(words, np.asarray(vectors, dtype=np.float32)[rows])

    @classmethod
    def from_tokens(cls, token_lists: Iterable[Sequence[str]], min_count: int = 1):
        """Learn a vocabulary: every word seen at least `min_count` times, most frequent first."""
        counts = Counter(split_token(t)[0] for tokens in token_lists for t in tokens)
        kept = sorted((w for w, c in counts.items() if c >= min_count and w not in cls.SPECIALS),
                      key=lambda w: (-counts[w], w))  # fmt: skip
        return cls([*cls.SPECIALS, *kept])

    def lookup(self, token: str) -> tuple[int, int]:
        """(word index, POS class index) of one "word/POS" token."""
        word, pos = split_token(token)
        if word not in self.index:
            return self.index["unk"], POS_INDEX["OTHER"]
        pos = VIP_CLASS.get(word, pos)
        return self.index[word], POS_INDEX.get(pos, POS_INDEX["OTHER"])

    def encode_batch(
        self, token_lists: Sequence[Sequence[str]], max_text_len: int = MAX_TEXT_LEN
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Word ids (B, L) int64, POS one-hots (B, L, 15) float32 and lengths (B,) with
        L = max_text_len + 2: sos + up to max_text_len words + eos, padded with unk."""
        width = max_text_len + 2
        ids = np.full((len(token_lists), width), self.index["unk"], dtype=np.int64)
        pos = np.full((len(token_lists), width), POS_INDEX["OTHER"], dtype=np.int64)
        lengths = np.zeros(len(token_lists), dtype=np.int64)
        for row, tokens in enumerate(token_lists):
            padded = ["sos/OTHER", *list(tokens)[:max_text_len], "eos/OTHER"]
            pairs = [self.lookup(t) for t in padded]
            ids[row, : len(pairs)], pos[row, : len(pairs)] = zip(*pairs, strict=True)
            lengths[row] = len(pairs)
        onehot = np.eye(len(POS_CLASSES), dtype=np.float32)[pos]  # (B, L, 15)
        return torch.from_numpy(ids), torch.from_numpy(onehot), torch.from_numpy(lengths)


def _lengths_tensor(name: str, lengths, batch: int, device) -> torch.Tensor:
    lengths = torch.as_tensor(lengths, dtype=torch.int64, device=device)
    if lengths.shape != (batch,):
        raise ValueError(f"{name}: expected shape ({batch},), got {tuple(lengths.shape)}")
    return lengths


class Evaluator(nn.Module):
    """The three evaluator encoders plus motion normalisation and (optionally) a word table.

    `text_embedding` / `motion_embedding` map captions / motions into the shared space the
    metrics are computed in; both return (B, dim_coemb) in input order.
    """

    def __init__(
        self,
        dim_pose: int = 263,
        dim_movement_hidden: int = 512,
        dim_movement_latent: int = 512,
        dim_word: int = 300,
        dim_pos: int = len(POS_CLASSES),
        dim_text_hidden: int = 512,
        dim_motion_hidden: int = 1024,
        dim_coemb: int = 512,
        unit_length: int = 4,
        vocab: Sequence[str] | None = None,
        freeze_word_emb: bool = False,
    ):
        super().__init__()
        self.config = dict(
            dim_pose=dim_pose, dim_movement_hidden=dim_movement_hidden,
            dim_movement_latent=dim_movement_latent, dim_word=dim_word, dim_pos=dim_pos,
            dim_text_hidden=dim_text_hidden, dim_motion_hidden=dim_motion_hidden,
            dim_coemb=dim_coemb, unit_length=unit_length, freeze_word_emb=freeze_word_emb,
        )  # fmt: skip
        self.unit_length = unit_length
        self.movement_encoder = MovementConvEncoder(
            dim_pose - FOOT_CONTACT_DIMS, dim_movement_hidden, dim_movement_latent
        )
        self.text_encoder = TextEncoderBiGRUCo(dim_word, dim_pos, dim_text_hidden, dim_coemb)
        self.motion_encoder = MotionEncoderBiGRUCo(
            dim_movement_latent, dim_motion_hidden, dim_coemb
        )
        self.register_buffer("mean", torch.zeros(dim_pose))
        self.register_buffer("std", torch.ones(dim_pose))
        self.vocab = list(vocab) if vocab is not None else None
        self.word_emb = nn.Embedding(len(vocab), dim_word) if vocab is not None else None
        if self.word_emb is not None:
            self.word_emb.weight.requires_grad_(not freeze_word_emb)

    def set_word_vectors(self, vectorizer: WordVectorizer, freeze: bool = True) -> None:
        """Attach a vocabulary; with GloVe vectors they initialise (and by default freeze)
        the word table, otherwise the table starts random (to be learned)."""
        dim_word = self.config["dim_word"]
        self.vocab = list(vectorizer.vocab)
        self.word_emb = nn.Embedding(len(self.vocab), dim_word).to(self.mean.device)
        if vectorizer.vectors is not None:
            if vectorizer.vectors.shape[1] != dim_word:
                raise ValueError(f"word vectors have dim {vectorizer.vectors.shape[1]}, "
                                 f"the text encoder expects {dim_word}")  # fmt: skip
            with torch.no_grad():
                self.word_emb.weight.copy_(torch.from_numpy(vectorizer.vectors))
        freeze = freeze and vectorizer.vectors is not None
        self.word_emb.weight.requires_grad_(not freeze)
        self.config["freeze_word_emb"] = freeze

    def set_normalization(self, mean, std) -> None:
        """Set the motion mean/std (dim_pose,) this evaluator normalises its inputs with."""
        for name, value in (("mean", mean), ("std", std)):
            value = torch.as_tensor(np.asarray(value), dtype=torch.float32)
            if value.shape != self.mean.shape or not torch.isfinite(value).all():
                raise ValueError(f"{name}: expected finite shape {tuple(self.mean.shape)}")
            if name == "std" and (value <= 0).any():
                raise ValueError("std: must be positive")
            getattr(self, name).copy_(value)

    @property
    def vectorizer(self) -> WordVectorizer:
        """Word/POS tokenizer for this evaluator's vocabulary."""
        if self.vocab is None:
            raise ValueError("evaluator has no vocabulary: attach one with set_word_vectors")
        cached = getattr(self, "_vectorizer", None)
        if cached is None or cached.vocab != self.vocab:
            self._vectorizer = WordVectorizer(self.vocab)
        return self._vectorizer

    def text_embedding(
        self, word_vecs: torch.Tensor, pos_onehot: torch.Tensor, lengths
    ) -> torch.Tensor:
        """Caption embeddings (B, dim_coemb) from word vectors (B, L, 300), POS one-hots
        (B, L, 15) and token counts (B,) (sos and eos included)."""
        if word_vecs.ndim != 3 or pos_onehot.shape[:2] != word_vecs.shape[:2]:
            raise ValueError(f"word_vecs {tuple(word_vecs.shape)} and pos_onehot "
                             f"{tuple(pos_onehot.shape)} must be (B, L, .) alike")  # fmt: skip
        lengths = _lengths_tensor("lengths", lengths, word_vecs.shape[0], word_vecs.device)
        if (lengths < 1).any() or (lengths > word_vecs.shape[1]).any():
            raise ValueError(f"lengths must lie in [1, {word_vecs.shape[1]}]")
        return self.text_encoder(word_vecs, pos_onehot, lengths)

    def caption_embedding(self, token_lists: Sequence[Sequence[str]]) -> torch.Tensor:
        """Caption embeddings (B, dim_coemb) straight from "word/POS" token lists."""
        if self.word_emb is None:
            raise ValueError("evaluator has no word table: attach one with set_word_vectors")
        ids, pos_onehot, lengths = self.vectorizer.encode_batch(token_lists)
        device = self.mean.device
        word_vecs = self.word_emb(ids.to(device))  # (B, L, 300)
        return self.text_embedding(word_vecs, pos_onehot.to(device), lengths)

    def motion_embedding(self, motion: torch.Tensor, lengths) -> torch.Tensor:
        """Motion embeddings (B, dim_coemb) from raw 263-dim features (B, T, 263) with
        `lengths` (B,) valid frames each (>= unit_length; units = lengths // unit_length).

        Frames beyond a motion's length are zeroed after normalisation (upstream's padding)
        and a few zero frames are appended, so a motion's embedding does not depend on how
        much padding its batch has.
        """
        dim_pose = self.mean.shape[0]
        if motion.ndim != 3 or motion.shape[-1] != dim_pose:
            raise ValueError(f"motion: expected (B, T, {dim_pose}), got {tuple(motion.shape)}")
        batch, frames = motion.shape[:2]
        lengths = _lengths_tensor("lengths", lengths, batch, motion.device)
        if (lengths < self.unit_length).any() or (lengths > frames).any():
            raise ValueError(f"lengths must lie in [{self.unit_length}, {frames}]")
        normed = (motion - self.mean) / self.std  # (B, T, D)
        valid = torch.arange(frames, device=motion.device)[None, :] < lengths[:, None]
        normed = normed * valid[..., None]
        padded_frames = -(-frames // self.unit_length) * self.unit_length + 2 * self.unit_length
        normed = nn.functional.pad(normed, (0, 0, 0, padded_frames - frames))  # (B, T', D)
        movements = self.movement_encoder(normed[..., :-FOOT_CONTACT_DIMS])  # (B, T'/4, H)
        return self.motion_encoder(movements, lengths // self.unit_length)


# ---------------------------------------------------------------- checkpoints


def _expected_keys() -> dict[str, set[str]]:
    """State-dict key names of each upstream part (names do not depend on sizes)."""
    small = Evaluator(16, 8, 8, 8, 15, 8, 8, 8)
    return {part: set(getattr(small, part).state_dict()) for part in CHECKPOINT_PARTS}


def evaluator_from_official_state(checkpoint: dict) -> Evaluator:
    """Build an Evaluator from an upstream checkpoint dict (keys movement_encoder,
    text_encoder, motion_encoder), inferring sizes from the tensors; missing or unexpected
    keys raise ValueError listing them."""
    problems = []
    for part, expected in _expected_keys().items():
        state = checkpoint.get(part)
        if not isinstance(state, dict):
            problems.append(f"missing part '{part}'")
            continue
        problems += [f"missing key {part}.{k}" for k in sorted(expected - set(state))]
        problems += [f"unexpected key {part}.{k}" for k in sorted(set(state) - expected)]
    if problems:
        raise ValueError("official evaluator checkpoint does not match: " + "; ".join(problems))
    movement, text, motion = (checkpoint[part] for part in CHECKPOINT_PARTS)
    model = Evaluator(
        dim_pose=movement["main.0.weight"].shape[1] + FOOT_CONTACT_DIMS,
        dim_movement_hidden=movement["main.0.weight"].shape[0],
        dim_movement_latent=movement["main.3.weight"].shape[0],
        dim_word=text["pos_emb.weight"].shape[0],
        dim_pos=text["pos_emb.weight"].shape[1],
        dim_text_hidden=text["input_emb.weight"].shape[0],
        dim_motion_hidden=motion["input_emb.weight"].shape[0],
        dim_coemb=text["output_net.3.weight"].shape[0],
    )
    for part in CHECKPOINT_PARTS:
        try:
            getattr(model, part).load_state_dict(checkpoint[part], strict=True)
        except RuntimeError as err:
            raise ValueError(f"official evaluator checkpoint, part '{part}': {err}") from err
    return model.eval()


def load_official(
    path: str | os.PathLike,
    glove_dir: str | os.PathLike | None = None,
    mean=None,
    std=None,
) -> Evaluator:
    """Load the official evaluator (finest.tar) with torch.load(weights_only=True).

    Optionally attach the upstream GloVe vocabulary (folder with our_vab_*) and the
    evaluator's own motion mean/std (upstream keeps them in a separate meta folder).
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    try:
        model = evaluator_from_official_state(checkpoint)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    if glove_dir is not None:
        model.set_word_vectors(WordVectorizer.from_glove(glove_dir), freeze=True)
    if (mean is None) != (std is None):
        raise ValueError("load_official: give both mean and std or neither")
    if mean is not None:
        model.set_normalization(mean, std)
    return model.eval()


def save_evaluator(model: Evaluator, path: str | os.PathLike) -> None:
    """Save weights (incl. mean/std and word table) as safetensors at `path` and the
    hyperparameters + vocabulary as JSON beside it (same name, .json)."""
    save_state(path, model.state_dict(), {"config": model.config, "vocab": model.vocab})


def load_evaluator(path: str | os.PathLike, device: str | torch.device = "cpu") -> Evaluator:
    """Load an evaluator written by `save_evaluator` (eval mode)."""
    state, meta = load_state(path)
    model = Evaluator(**meta["config"], vocab=meta["vocab"])
    return load_checked(model, state, str(path), ignore_prefixes=()).to(device).eval()
