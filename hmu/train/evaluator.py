"""Train a Guo et al. text-motion evaluator on our own data (no GloVe needed).

Two phases as upstream: (a) the movement encoder is pretrained as a motion autoencoder on
random windows; (b) with it frozen, the text and motion encoders learn a co-embedding with
the contrastive (Hadsell) loss, negatives made by shifting the batch, keeping the weights of
the best validation loss. Motion crops follow the upstream evaluation loader (unit-length
multiples, one unit shorter with p = 1/3).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils import clip_grad_norm_
from tqdm.auto import tqdm

from hmu.data.dataset import ProcessedDataset, tokens_of
from hmu.models.evaluator import (
    FOOT_CONTACT_DIMS,
    MAX_TEXT_LEN,
    Evaluator,
    MovementConvDecoder,
    WordVectorizer,
)

DEFAULT_PARAMS = {
    # sizes (upstream: 512, 512, 512, 1024, 512)
    "dim_movement_hidden": 128,
    "dim_movement_latent": 128,
    "dim_text_hidden": 128,
    "dim_motion_hidden": 128,
    "dim_coemb": 512,
    "min_count": 1,  # learned vocabulary: words seen fewer times become 'unk'
    # (a) movement autoencoder
    "ae_epochs": 3,
    "ae_batch_size": 64,
    "ae_window": 40,
    "ae_lr": 1e-3,
    "lambda_sparsity": 0.001,
    "lambda_smooth": 0.001,
    # (b) co-embedding
    "epochs": 6,
    "batch_size": 32,
    "lr": 1e-4,
    "margin": 10.0,
    "grad_clip": 0.5,
    "val_fraction": 0.1,  # held-out share of pairs when no validation set is given
    "unit_length": 4,
    "max_motion_len": 196,
}


def caption_pairs(data: ProcessedDataset, rows: np.ndarray):
    """(motions, token lists): one pair per caption of the given store rows, a motion repeated
    once per caption (the same array object, stored once by `train_evaluator`)."""
    motions, tokens = [], []
    for motion, caps in zip(data.motions(rows), data.captions_of(rows), strict=True):
        for t in tokens_of(caps):
            motions.append(motion)
            tokens.append(t)
    return motions, tokens


@dataclass
class _MotionBank:
    """All distinct motions stacked into one frame array, with per-motion offsets."""

    frames: np.ndarray  # (sum T, D) float32
    offsets: np.ndarray  # (M,)
    lengths: np.ndarray  # (M,)

    def gather(self, index: np.ndarray, starts: np.ndarray, crops: np.ndarray) -> torch.Tensor:
        """Windows (B, max crop, D) of motions `index`, zeros beyond each crop length."""
        steps = np.arange(crops.max())[None, :]  # (1, W)
        valid = steps < crops[:, None]  # (B, W)
        rows = np.where(valid, self.offsets[index, None] + starts[:, None] + steps, 0)
        return torch.from_numpy(self.frames[rows] * valid[..., None])


def _motion_bank(motions: Sequence[np.ndarray], name: str, min_len: int):
    """Stack motions (each (T, D)); repeated array objects are stored once.
    Returns the bank and, per input, the index of its motion in the bank."""
    unique: dict[int, int] = {}
    arrays = []
    for i, motion in enumerate(motions):
        if id(motion) not in unique:
            arr = np.asarray(motion, dtype=np.float32)
            dim = arrays[0].shape[1] if arrays else arr.shape[-1]
            if arr.ndim != 2 or arr.shape[0] < min_len or arr.shape[1] != dim:
                raise ValueError(f"{name}[{i}]: expected (T >= {min_len}, {dim}), "
                                 f"got shape {arr.shape}")  # fmt: skip
            if not np.isfinite(arr).all():
                raise ValueError(f"{name}[{i}]: contains NaN or Inf")
            unique[id(motion)] = len(arrays)
            arrays.append(arr)
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    bank = _MotionBank(np.concatenate(arrays), offsets, lengths)
    return bank, np.array([unique[id(m)] for m in motions], dtype=np.int64)


def _random_crops(lengths: np.ndarray, rng: np.random.Generator, unit: int, max_len: int):
    """Upstream eval-loader crops: a multiple of `unit` frames (<= max_len), one unit
    shorter with probability 1/3, at a random start. Returns (starts, crop lengths)."""
    units = np.minimum(lengths, max_len) // unit
    shorter = (rng.random(len(lengths)) < 1 / 3) & (units > 1)
    crops = (units - shorter) * unit
    starts = rng.integers(0, lengths - crops + 1)
    return starts, crops


def _batches(order: np.ndarray, batch_size: int, drop_last: bool) -> list[np.ndarray]:
    """Split an index order into batches (one batch if fewer than batch_size items)."""
    if drop_last:
        count = max(1, len(order) // batch_size)
        return list(order[: count * batch_size].reshape(count, -1)) if len(order) else []
    return np.array_split(order, max(1, -(-len(order) // batch_size)))


def _pretrain_movement(model: Evaluator, bank: _MotionBank, cfg: dict, rng, progress: bool):
    """Phase (a): train the movement encoder as an autoencoder on normalised windows."""
    unit, device = cfg["unit_length"], model.mean.device
    window = min(cfg["ae_window"], int(bank.lengths.max()) // unit * unit)
    eligible = np.flatnonzero(bank.lengths >= window)
    encoder = model.movement_encoder
    decoder = MovementConvDecoder(
        cfg["dim_movement_latent"], cfg["dim_movement_hidden"], model.mean.shape[0]
    ).to(device)
    params = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg["ae_lr"])
    encoder.train()
    bar = tqdm(range(cfg["ae_epochs"]), desc="evaluator: movement AE", disable=not progress)
    for _ in bar:
        for batch in _batches(rng.permutation(eligible), cfg["ae_batch_size"], drop_last=True):
            starts = rng.integers(0, bank.lengths[batch] - window + 1)
            crops = np.full(len(batch), window)
            target = (bank.gather(batch, starts, crops).to(device) - model.mean) / model.std
            latents = encoder(target[..., :-FOOT_CONTACT_DIMS])  # (B, W/4, H)
            loss = (
                F.l1_loss(decoder(latents), target)
                + cfg["lambda_sparsity"] * latents.abs().mean()
                + cfg["lambda_smooth"] * F.l1_loss(latents[:, 1:], latents[:, :-1])
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    encoder.eval()


def _contrastive_loss(text: torch.Tensor, motion: torch.Tensor, shift: int, margin: float):
    """Hadsell loss: matched pairs pulled together, pairs shifted by `shift` pushed to
    at least `margin` apart."""
    positive = F.pairwise_distance(text, motion).pow(2).mean()
    negative_dist = F.pairwise_distance(text, motion.roll(-shift, dims=0))
    negative = (margin - negative_dist).clamp(min=0).pow(2).mean()
    return positive + negative


def _pair_loss(model, bank, motion_index, text, batch, cfg, rng) -> torch.Tensor:
    """Contrastive loss of one batch of (caption, random motion crop) pairs."""
    device = model.mean.device
    ids, pos_onehot, cap_lens = (t[batch] for t in text)
    starts, crops = _random_crops(
        bank.lengths[motion_index[batch]], rng, cfg["unit_length"], cfg["max_motion_len"]
    )
    motion = bank.gather(motion_index[batch], starts, crops).to(device)  # (B, T, D)
    motion_emb = model.motion_embedding(motion, torch.from_numpy(crops))
    text_emb = model.text_embedding(model.word_emb(ids.to(device)), pos_onehot.to(device), cap_lens)
    shift = int(rng.integers(1, len(batch)))
    return _contrastive_loss(text_emb, motion_emb, shift, cfg["margin"])


def _validation_loss(model, bank, motion_index, text, cfg, seed: int) -> float:
    """Mean validation loss with a fixed crop/shift draw, so epochs compare fairly."""
    rng = np.random.default_rng(seed)
    batches = _batches(np.arange(len(motion_index)), cfg["batch_size"], drop_last=False)
    model.eval()
    with torch.no_grad():
        losses = [_pair_loss(model, bank, motion_index, text, b, cfg, rng) for b in batches]
    return float(torch.stack(losses).mean())


def _normalization(bank: _MotionBank, mean, std) -> tuple[np.ndarray, np.ndarray]:
    """Given mean/std, or per-dimension statistics of the training frames."""
    if (mean is None) != (std is None):
        raise ValueError("train_evaluator: give both mean and std or neither")
    if mean is not None:
        return np.asarray(mean), np.asarray(std)
    std = bank.frames.std(axis=0)
    return bank.frames.mean(axis=0), np.where(std < 1e-6, 1.0, std)


def train_evaluator(
    motions: Sequence[np.ndarray],
    token_lists: Sequence[Sequence[str]],
    params: dict | None = None,
    seed: int = 0,
    val_motions: Sequence[np.ndarray] | None = None,
    val_token_lists: Sequence[Sequence[str]] | None = None,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
    glove_dir: str | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Evaluator:
    """Train an evaluator on (motion (T, 263), caption tokens ["word/POS", ...]) pairs.

    Several captions of one motion are given by repeating the motion (the same array object
    is stored once). Without a validation set, `val_fraction` of the pairs is held out.
    `mean`/`std` (263,) default to per-dimension statistics of the training motions; the
    vocabulary is learned from the training captions unless `glove_dir` holds upstream GloVe
    files. Deterministic for a given seed; returns the model in eval mode.
    """
    unknown = set(params or {}) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"params: unknown keys {sorted(unknown)}")
    cfg = {**DEFAULT_PARAMS, **(params or {})}
    if len(motions) != len(token_lists):
        raise ValueError(f"{len(motions)} motions but {len(token_lists)} token lists")
    if (val_motions is None) != (val_token_lists is None):
        raise ValueError("give both val_motions and val_token_lists or neither")
    rng = np.random.default_rng(seed)
    if val_motions is None:
        order = rng.permutation(len(motions))
        wanted = int(round(cfg["val_fraction"] * len(motions)))
        n_val = max(2, wanted) if cfg["val_fraction"] > 0 and len(motions) >= 4 else 0
        val_motions = [motions[i] for i in order[:n_val]]
        val_token_lists = [token_lists[i] for i in order[:n_val]]
        motions = [motions[i] for i in order[n_val:]]
        token_lists = [token_lists[i] for i in order[n_val:]]
    if len(motions) < 2:
        raise ValueError(f"need at least 2 training pairs, got {len(motions)}")
    if len(val_motions) == 1:
        raise ValueError("need at least 2 validation pairs (or none)")

    unit = cfg["unit_length"]
    if cfg["ae_window"] < unit or cfg["ae_window"] % unit:
        raise ValueError(f"params.ae_window={cfg['ae_window']}: need a multiple of {unit}")
    bank, motion_index = _motion_bank(motions, "motions", unit)
    vectorizer = (
        WordVectorizer.from_glove(glove_dir)
        if glove_dir is not None
        else WordVectorizer.from_tokens(token_lists, cfg["min_count"])
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Evaluator(
            dim_pose=bank.frames.shape[1],
            dim_movement_hidden=cfg["dim_movement_hidden"],
            dim_movement_latent=cfg["dim_movement_latent"],
            dim_text_hidden=cfg["dim_text_hidden"],
            dim_motion_hidden=cfg["dim_motion_hidden"],
            dim_coemb=cfg["dim_coemb"],
            unit_length=unit,
        )
        model.set_word_vectors(vectorizer, freeze=True)
        model.set_normalization(*_normalization(bank, mean, std))
        model.to(device)
        _pretrain_movement(model, bank, cfg, rng, progress)
        _train_coembedding(
            model, (bank, motion_index, vectorizer.encode_batch(token_lists, MAX_TEXT_LEN)),
            (val_motions, val_token_lists), cfg, rng, seed, progress,
        )  # fmt: skip
    return model.eval()


def _train_coembedding(model, train, val, cfg, rng, seed, progress) -> None:
    """Phase (b): contrastive co-embedding with the movement encoder frozen; keeps the
    weights with the lowest validation loss (the last ones if there is no validation set)."""
    bank, motion_index, text = train
    val_motions, val_tokens = val
    validation = None
    if len(val_motions):
        val_bank, val_index = _motion_bank(val_motions, "val_motions", cfg["unit_length"])
        val_text = model.vectorizer.encode_batch(val_tokens, MAX_TEXT_LEN)
        validation = (val_bank, val_index, val_text)
    model.movement_encoder.requires_grad_(False)
    text_params = [p for p in [*model.text_encoder.parameters(), *model.word_emb.parameters()]
                   if p.requires_grad]  # fmt: skip
    motion_params = list(model.motion_encoder.parameters())
    optimizers = [torch.optim.Adam(p, lr=cfg["lr"]) for p in (text_params, motion_params)]
    best_loss, best_state = np.inf, None
    bar = tqdm(range(cfg["epochs"]), desc="evaluator: co-embedding", disable=not progress)
    for epoch in bar:
        model.train()
        model.movement_encoder.eval()
        order = rng.permutation(len(motion_index))
        for batch in _batches(order, cfg["batch_size"], drop_last=True):
            loss = _pair_loss(model, bank, motion_index, text, batch, cfg, rng)
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.backward()
            for group in (text_params, motion_params):
                clip_grad_norm_(group, cfg["grad_clip"])
            for optimizer in optimizers:
                optimizer.step()
        if validation is None:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            continue
        val_loss = _validation_loss(model, *validation, cfg, seed + 1)
        bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val_loss:.3f}", epoch=epoch)
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    model.movement_encoder.requires_grad_(True)
