"""Training the text-to-motion generators (MoMask, BAMM) on cached tokens, and their stages.

The token models train on the codes `tokenize` cached once per VQ-VAE (tokens (N, 49, Q) int16,
-1 padded), never on features: a batch is one gather from preloaded tensors. The text condition
of a sample is the cached embedding of one of its motion's captions, picked at random for every
batch with one vectorised draw (`CaptionIndex`); condition dropout happens inside the models.

Every training goes through `hmu.train.loop.train` (seeded, resumable, DVCLive). The `stage_*`
functions are the bodies of the DVC stages (text_emb, train_vq, tokenize, train_trans, train_res):
they read the processed dataset and a params dict, and write the artefacts:

    data/processed/<ds>/text_emb.npy (+ .meta.json)      text condition per captions.parquet row
    models/<ds>/vq_<subset>/vq.safetensors (+ .json)     RVQ-VAE, with the mean/std it uses
    data/processed/<ds>/tokens_<subset>.npz              tokens, n_tokens of every stored motion
    models/<ds>/<model>_<subset>/trans.safetensors       MaskTransformer / BAMMTransformer
    models/<ds>/<model>_<subset>/length.safetensors      LengthEstimator (free generation)
    models/<ds>/res_<subset>/res.safetensors             ResidualTransformer (MoMask and BAMM)

Resumable state lives in WORK_ROOT/<ds>/<name>-<hash>, the hash covering the configuration and
the training data, so an interrupted stage resumes while a changed one starts afresh; it is
removed once the artefacts are written.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from hmu.data.dataset import ProcessedDataset, frames_tensor
from hmu.data.humanml import momask_vq_std
from hmu.data.store import MotionStore
from hmu.io import atomic_path, write_json
from hmu.models.bamm import BAMMTransformer
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.models.rvq import PAPER_CONFIG, RVQVAE
from hmu.models.text import encode_captions_cached, load_text_encoder
from hmu.params import processed_dir, section
from hmu.train.checkpoint import check_keys, load_state, save_model, save_state
from hmu.train.loop import TrainConfig, train
from hmu.train.vq import MAX_FRAMES, UNIT, tokenize, train_vq

TRANSFORMERS: dict[str, type[nn.Module]] = {"momask": MaskTransformer, "bamm": BAMMTransformer}
MODULE_CLASSES: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (RVQVAE, MaskTransformer, BAMMTransformer, ResidualTransformer, LengthEstimator)
}
SUBSETS = ("all", "retain")
MODELS_ROOT = Path("models")
WORK_ROOT = Path(os.environ.get("HMU_WORK", ".work"))
LENGTH_CLASSES = MAX_FRAMES // UNIT + 1  # token lengths 0..49


# ---------------------------------------------------------------- batches


class CaptionIndex:
    """Caption rows of each motion in CSR form: one vectorised random pick per batch."""

    def __init__(self, rows_per_motion: Sequence[np.ndarray]):
        counts = np.array([len(r) for r in rows_per_motion], dtype=np.int64)
        if len(counts) == 0 or (counts == 0).any():
            empty = np.flatnonzero(counts == 0)[:5].tolist()
            raise ValueError(f"caption_rows_per_motion: motions without captions at {empty}")
        self.flat = torch.from_numpy(np.concatenate(rows_per_motion).astype(np.int64))
        self.offsets = torch.from_numpy(np.cumsum(counts) - counts)
        self.counts = torch.from_numpy(counts)

    def __len__(self) -> int:
        return len(self.counts)

    def sample(self, motions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One caption row per motion index (B,), uniformly among its captions -> (B,)."""
        pick = (torch.rand(len(motions), generator=generator) * self.counts[motions]).long()
        return self.flat[self.offsets[motions] + pick]


def caption_rows(captions: pd.DataFrame, motion_ids: Sequence[str]) -> list[np.ndarray]:
    """Positions in `captions` (= rows of text_emb) of each motion's captions, in motion order."""
    groups = captions.groupby("motion_id", sort=False).indices
    missing = [m for m in motion_ids if m not in groups]
    if missing:
        raise ValueError(f"captions: {len(missing)} motions have no caption, e.g. {missing[:5]}")
    return [np.asarray(groups[m], dtype=np.int64) for m in motion_ids]


def token_batches(tokens, n_tokens, rows, caption_rows_per_motion, text_emb):
    """make_batch for the loop over the motions `rows` of a token table.

    Batch: {"ids" (B, L, Q) long codes (-1 past each length), "lengths" (B,) tokens,
    "cond" (B, C) text embedding of one random caption per motion}. Sequences keep the table's
    full width L (49) like upstream's padded batches, so mask ratios are taken of L.
    """
    tokens, n_tokens, rows = np.asarray(tokens), np.asarray(n_tokens), np.asarray(rows)
    if tokens.ndim != 3 or n_tokens.shape != tokens.shape[:1]:
        raise ValueError(
            f"tokens (N, L, Q) and n_tokens (N,) expected, got {tokens.shape} and {n_tokens.shape}"
        )
    if len(caption_rows_per_motion) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(caption_rows_per_motion)} caption lists")
    lengths = torch.from_numpy(n_tokens[rows].astype(np.int64))  # (M,)
    if len(rows) == 0 or int(lengths.min()) < 1:
        raise ValueError("every training motion needs at least one token (4 frames)")
    ids = torch.from_numpy(tokens[rows].astype(np.int64))  # (M, L, Q)
    cond = torch.from_numpy(np.ascontiguousarray(text_emb, dtype=np.float32))  # (C_rows, C)
    captions = CaptionIndex(caption_rows_per_motion)
    if int(captions.flat.max()) >= len(cond):
        raise ValueError(f"caption rows exceed text_emb ({len(cond)} rows)")

    def make_batch(indices: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {
            "ids": ids[indices],
            "lengths": lengths[indices],
            "cond": cond[captions.sample(indices, generator)],
        }

    return make_batch


# ---------------------------------------------------------------- objectives


class Objective(nn.Module):
    """A model's training loss as `forward`, so the loop (and DDP) call it like a module.

    task: 'momask' / 'bamm' (layer-0 codes), 'res' (all layers), 'length' (token lengths).
    """

    def __init__(self, model: nn.Module, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        cond, lengths = batch["cond"], batch["lengths"]
        if self.task in TRANSFORMERS:
            return self.model.loss(batch["ids"][..., 0], cond, lengths)
        if self.task == "res":
            return self.model.loss(batch["ids"], cond, lengths)
        logits = self.model(cond)  # (B, classes)
        target = lengths.clamp(max=self.model.output_size - 1)
        loss = nn.functional.cross_entropy(logits, target)
        return loss, (logits.detach().argmax(-1) == target).float().mean()


def _objective_loss(objective: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    loss, accuracy = objective(batch)
    return loss, {"acc": float(accuracy)}


def _as_train_config(cfg: TrainConfig | Mapping[str, Any]) -> TrainConfig:
    return cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_params(dict(cfg))


def _fit(model, task, inputs, train_cfg, work_dir, log_dir, name, progress) -> nn.Module:
    """Train `model` on token_batches(*inputs) with the task's objective; return it (eval)."""
    make_batch = token_batches(*inputs)
    cfg = _as_train_config(train_cfg)
    objective = Objective(model, task)
    train(
        objective,
        len(inputs[2]),
        make_batch,
        _objective_loss,
        cfg,
        work_dir,
        name=name,
        log_dir=log_dir,
        progress=progress,
    )
    return model.eval()


def _start_model(cls, model_cfg, init, seed: int) -> nn.Module:
    """A fresh cls(**model_cfg) seeded by the training seed, or a copy of `init` to fine-tune."""
    if init is not None:
        if type(init) is not cls:
            raise ValueError(f"init is a {type(init).__name__}, expected a {cls.__name__}")
        return copy.deepcopy(init).train()
    if model_cfg is None:
        raise ValueError(f"model_cfg is needed to build a new {cls.__name__}")
    torch.manual_seed(seed)
    return cls(**model_cfg)


def _check_inputs(model: nn.Module, tokens, text_emb, layers: int | None = None) -> None:
    """Codes must index the model's vocabulary; embeddings must match its condition width."""
    tokens = np.asarray(tokens)
    if np.asarray(text_emb).shape[1] != model.clip_dim:
        raise ValueError(
            f"text_emb has width {np.asarray(text_emb).shape[1]} but the model's "
            f"clip_dim is {model.clip_dim}"
        )
    if tokens.size and int(tokens.max()) >= model.num_tokens:
        raise ValueError(f"tokens hold code {int(tokens.max())} >= num_tokens {model.num_tokens}")
    if layers is not None and tokens.shape[2] != layers:
        raise ValueError(f"tokens have {tokens.shape[2]} layers, the model expects {layers}")


def train_transformer(
    kind: str,
    tokens: np.ndarray,
    n_tokens: np.ndarray,
    rows: np.ndarray,
    caption_rows_per_motion: Sequence[np.ndarray],
    text_emb: np.ndarray,
    model_cfg: Mapping[str, Any] | None,
    train_cfg: TrainConfig | Mapping[str, Any],
    work_dir: str | Path,
    log_dir: str | Path | None = None,
    init: nn.Module | None = None,
    progress: bool = True,
) -> nn.Module:
    """Train MoMask's masked transformer (kind 'momask') or BAMM's ('bamm') on layer-0 codes.

    tokens (N, L, Q) / n_tokens (N,): the token table of every stored motion; rows: the motions
    to train on; caption_rows_per_motion[i]: rows of text_emb (C_rows, C) captioning rows[i].
    init: a trained transformer to fine-tune (copied; model_cfg is then ignored).
    Resumes from work_dir if interrupted; returns the model in eval mode.
    """
    if kind not in TRANSFORMERS:
        raise ValueError(f"kind={kind!r}: expected one of {sorted(TRANSFORMERS)}")
    cfg = _as_train_config(train_cfg)
    model = _start_model(TRANSFORMERS[kind], model_cfg, init, cfg.seed)
    _check_inputs(model, tokens, text_emb)
    inputs = (tokens, n_tokens, rows, caption_rows_per_motion, text_emb)
    return _fit(model, kind, inputs, cfg, work_dir, log_dir, f"trans_{kind}", progress)


def train_residual(
    tokens: np.ndarray,
    n_tokens: np.ndarray,
    rows: np.ndarray,
    caption_rows_per_motion: Sequence[np.ndarray],
    text_emb: np.ndarray,
    model_cfg: Mapping[str, Any] | None,
    train_cfg: TrainConfig | Mapping[str, Any],
    work_dir: str | Path,
    log_dir: str | Path | None = None,
    init: nn.Module | None = None,
    progress: bool = True,
) -> ResidualTransformer:
    """Train MoMask's residual transformer (shared by MoMask and BAMM) on all code layers.

    Arguments as `train_transformer`; tokens must have model_cfg['num_quantizers'] layers.
    """
    cfg = _as_train_config(train_cfg)
    model = _start_model(ResidualTransformer, model_cfg, init, cfg.seed)
    _check_inputs(model, tokens, text_emb, layers=model.num_quantizers)
    inputs = (tokens, n_tokens, rows, caption_rows_per_motion, text_emb)
    return _fit(model, "res", inputs, cfg, work_dir, log_dir, "res", progress)


def train_length_estimator(
    n_tokens: np.ndarray,
    rows: np.ndarray,
    caption_rows_per_motion: Sequence[np.ndarray],
    text_emb: np.ndarray,
    model_cfg: Mapping[str, Any] | None,
    train_cfg: TrainConfig | Mapping[str, Any],
    work_dir: str | Path,
    log_dir: str | Path | None = None,
    progress: bool = True,
) -> LengthEstimator:
    """Train the text -> token-length classifier used for free generation (MoMask's).

    model_cfg may omit input_size (= text_emb width) and output_size (= 50 token lengths).
    """
    cfg = _as_train_config(train_cfg)
    text_emb = np.asarray(text_emb)
    full_cfg = {"input_size": text_emb.shape[1], "output_size": LENGTH_CLASSES, **(model_cfg or {})}
    model = _start_model(LengthEstimator, full_cfg, None, cfg.seed)
    n_tokens = np.asarray(n_tokens)
    placeholder = np.zeros((len(n_tokens), 1, 1), dtype=np.int16)  # the estimator needs no codes
    inputs = (placeholder, n_tokens, rows, caption_rows_per_motion, text_emb)
    return _fit(model, "length", inputs, cfg, work_dir, log_dir, "length", progress)


# ---------------------------------------------------------------- checkpoints


def save_vq(path: str | Path, model: RVQVAE, mean: np.ndarray, std: np.ndarray) -> None:
    """Save an RVQ-VAE with the mean/std its inputs are normalised with (std: MoMask's VQ std)."""
    meta = {
        "class": "RVQVAE",
        "config": model.hparams,
        "mean": np.asarray(mean, dtype=np.float32).tolist(),
        "std": np.asarray(std, dtype=np.float32).tolist(),
    }
    save_state(path, model.state_dict(), meta)


def vq_file(path: str | Path) -> Path:
    """A VQ checkpoint path given either the file or its folder (models/<ds>/vq_<subset>)."""
    path = Path(path)
    return path / "vq.safetensors" if path.is_dir() or not path.suffix else path


def load_vq(path: str | Path) -> tuple[RVQVAE, np.ndarray, np.ndarray]:
    """Load what `save_vq` wrote -> (model in eval mode, mean (263,), std (263,))."""
    file = vq_file(path)
    state, meta = load_state(file)
    if "mean" not in meta or "std" not in meta:
        raise ValueError(f"{file}: no mean/std in its JSON (not written by save_vq)")
    model = RVQVAE(**meta["config"])
    check_keys(model, state, str(file))
    model.load_state_dict(state)
    mean, std = (np.asarray(meta[k], dtype=np.float32) for k in ("mean", "std"))
    return model.eval(), mean, std


def load_module(path: str | Path) -> nn.Module:
    """Rebuild any of our saved generator modules from its JSON (class + config), eval mode."""
    state, meta = load_state(path)
    name = meta.get("class")
    if name not in MODULE_CLASSES:
        raise ValueError(
            f"{path}: unknown module class {name!r}; expected {sorted(MODULE_CLASSES)}"
        )
    module = MODULE_CLASSES[name](**meta["config"])
    check_keys(module, state, str(path))
    module.load_state_dict(state)
    return module.eval()


def read_config(path: str | Path) -> dict[str, Any]:
    """The constructor config in a checkpoint's JSON, without reading the weights."""
    meta_path = Path(path).with_suffix(".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"checkpoint config missing: {meta_path}")
    return json.loads(meta_path.read_text())["config"]


def write_tokens(path: str | Path, tokens: np.ndarray, n_tokens: np.ndarray, nb_code: int) -> None:
    """Write the token table (.npz: tokens (N, L, Q) int16, n_tokens (N,), nb_code) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            tokens=tokens.astype(np.int16),
            n_tokens=n_tokens.astype(np.int64),
            nb_code=np.int64(nb_code),
        )


# ---------------------------------------------------------------- params and stages


def profile_block(params: Mapping[str, Any], name: str) -> tuple[dict[str, Any], TrainConfig]:
    """(model overrides, TrainConfig) of params[name][profile] for the active `profile`."""
    profile = section(params, "profile")
    if profile not in ("small", "paper"):
        raise ValueError(f"params.yaml: profile must be 'small' or 'paper', got {profile!r}")
    block = section(params, f"{name}.{profile}")
    return dict(block.get("model") or {}), TrainConfig.from_params(section(block, "train"))


def _set_by_data(model_cfg: dict, name: str, **values) -> dict:
    """model_cfg plus the sizes the data decides; params must not set them."""
    clash = sorted(set(values) & set(model_cfg))
    if clash:
        raise ValueError(f"params.yaml {name}: {clash} are set by the data, remove them")
    return {**model_cfg, **values}


def digest(*parts: Any) -> str:
    """Short hash of JSON-able values and numpy arrays (identity of a training run)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def work_dir(dataset: str, name: str, *identity: Any) -> Path:
    """WORK_ROOT/<dataset>/<name>-<hash of identity>: resumable state of one training run."""
    return WORK_ROOT / dataset / f"{name}-{digest(*identity)}"


def _threads(params: Mapping[str, Any]) -> None:
    threads = params.get("generator", {}).get("threads")
    if threads:
        torch.set_num_threads(int(threads))


def _open(dataset: str, captions: bool = True) -> ProcessedDataset:
    """The processed dataset; without captions for the stages that do not read them."""
    if captions:
        return ProcessedDataset.open(dataset)
    folder = processed_dir(dataset)
    motions = folder / "motions"
    return ProcessedDataset(
        name=dataset,
        store=MotionStore.open(motions),
        mean=np.load(motions / "Mean.npy"),
        std=np.load(motions / "Std.npy"),
        captions=pd.DataFrame(),
        splits=pd.read_parquet(folder / "splits.parquet"),
    )


def _check_subset(subset: str) -> None:
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")


def train_rows(data: ProcessedDataset, subset: str) -> np.ndarray:
    """Store rows of the train partition of `subset` (all, or retain = D_r), in store order.

    Same selection as ProcessedDataset.select("train", subset), written without in-place
    updates of pandas' read-only arrays (pandas 3 copy-on-write).
    """
    _check_subset(subset)
    info = data.store.table[["motion_id"]].merge(data.splits, on="motion_id", how="left")
    mask = info["partition"].eq("train").to_numpy()
    if subset != "all":
        mask = mask & info["set"].eq(subset).to_numpy()
    return np.flatnonzero(mask)


def _final_values(live_dir: Path) -> dict[str, float]:
    """The last logged training values (DVCLive's summary), e.g. {'loss': ..., 'acc': ...}."""
    summary = live_dir / "metrics.json"
    if not summary.is_file():
        return {}
    logged = json.loads(summary.read_text()).get("train", {})
    return {k: v for k, v in logged.items() if isinstance(v, int | float)}


def _is_main() -> bool:
    """False on the DDP ranks other than 0 (under torchrun), which must not write artefacts."""
    return int(os.environ.get("RANK", "0")) == 0


def _finish(out: Path, start: float, steps: int, work_dirs: Sequence[Path], **extra) -> dict:
    """Write out/train.json (wall time, speed, final logged values), drop the resumable states."""
    seconds = time.perf_counter() - start
    summary = {
        "seconds": round(seconds, 1),
        "steps": steps,
        "steps_per_second": round(steps / max(seconds, 1e-9), 2),
        "final": _final_values(out / "live"),
        **extra,
    }
    write_json(out / "train.json", summary)
    for folder in work_dirs:
        shutil.rmtree(folder, ignore_errors=True)
    return summary


def stage_text_emb(dataset: str, params: Mapping[str, Any]) -> np.ndarray:
    """text_emb@<ds>: the generator's text condition for every row of captions.parquet."""
    gen = section(params, "generator")
    folder = processed_dir(dataset)
    captions = pd.read_parquet(folder / "captions.parquet", columns=["caption"])
    encoder = load_text_encoder(gen["text_encoder"], weights_path=gen.get("clip_weights"))
    return encode_captions_cached(captions["caption"].tolist(), encoder, folder / "text_emb.npy")


def stage_train_vq(dataset: str, subset: str, params: Mapping[str, Any], progress=True) -> dict:
    """train_vq@<ds>-<subset>: RVQ-VAE on random windows of the subset's train partition."""
    _check_subset(subset)
    _threads(params)
    model_cfg, train_cfg = profile_block(params, "vq")
    model_cfg = {**PAPER_CONFIG, **model_cfg}
    window = int(section(params, "vq.window"))
    data = _open(dataset, captions=False)
    vq_std = momask_vq_std(data.std)
    frames, offsets, lengths = frames_tensor(
        data.store, train_rows(data, subset), data.mean, vq_std
    )
    out = MODELS_ROOT / dataset / f"vq_{subset}"
    work = work_dir(dataset, f"vq_{subset}", model_cfg, vars(train_cfg), window, frames, lengths)
    start = time.perf_counter()
    model = train_vq(
        frames,
        offsets,
        lengths,
        model_cfg,
        train_cfg,
        window,
        work,
        log_dir=out / "live",
        progress=progress,
    )
    if not _is_main():
        return {}
    save_vq(out / "vq.safetensors", model, data.mean, vq_std)
    return _finish(out, start, train_cfg.steps, [work], motions=int((lengths >= window).sum()))


def stage_tokenize(dataset: str, subset: str, params: Mapping[str, Any]) -> dict:
    """tokenize@<ds>-<subset>: codes of every stored motion (all partitions) with vq_<subset>."""
    _check_subset(subset)
    _threads(params)
    model, mean, std = load_vq(MODELS_ROOT / dataset / f"vq_{subset}")
    data = _open(dataset, captions=False)
    start = time.perf_counter()
    tokens, n_tokens = tokenize(model, data.store, mean, std)
    path = processed_dir(dataset) / f"tokens_{subset}.npz"
    write_tokens(path, tokens, n_tokens, model.hparams["nb_code"])
    return {"motions": len(tokens), "seconds": round(time.perf_counter() - start, 1)}


def training_inputs(dataset: str, subset: str, codebook: str | None = None) -> tuple:
    """(tokens, n_tokens, rows, caption rows per row, text_emb, nb_code) for the token models.

    rows: the train partition of `subset` (all, or retain = D_r) in the token table's order.
    codebook: whose VQ-VAE tokenised the motions (tokens_<codebook>.npz), `subset` by default:
    a model trained from scratch on a subset uses that subset's VQ-VAE, while fine-tuning the
    base model on D_r must keep the base (all) codebook, or its token ids would mean other codes.
    """
    codebook = subset if codebook is None else codebook
    _check_subset(subset)
    _check_subset(codebook)
    data = _open(dataset)
    folder = processed_dir(dataset)
    cached = np.load(folder / f"tokens_{codebook}.npz")
    tokens, n_tokens, nb_code = cached["tokens"], cached["n_tokens"], int(cached["nb_code"])
    if len(tokens) != len(data.store):
        raise ValueError(
            f"{folder}/tokens_{codebook}.npz has {len(tokens)} motions, the store "
            f"{len(data.store)}: rerun tokenize@{dataset}-{codebook}"
        )
    text_emb = np.load(folder / "text_emb.npy")
    if len(text_emb) != len(data.captions):
        raise ValueError(
            f"{folder}/text_emb.npy has {len(text_emb)} rows, captions.parquet "
            f"{len(data.captions)}: rerun text_emb@{dataset}"
        )
    rows = train_rows(data, subset)
    captions = caption_rows(data.captions, data.store.table["motion_id"].to_numpy()[rows])
    return tokens, n_tokens, rows, captions, text_emb, nb_code


def stage_train_trans(
    dataset: str, model: str, subset: str, params: Mapping[str, Any], progress: bool = True
) -> dict:
    """train_trans@<ds>-<model>-<subset>: the masked / BAMM transformer and a length estimator."""
    if model not in TRANSFORMERS:
        raise ValueError(f"model must be one of {sorted(TRANSFORMERS)}, got {model!r}")
    _threads(params)
    inputs = training_inputs(dataset, subset)
    tokens, n_tokens, rows, captions, text_emb, nb_code = inputs
    model_cfg, train_cfg = profile_block(params, f"trans.{model}")
    model_cfg = _set_by_data(
        model_cfg, f"trans.{model}", num_tokens=nb_code, clip_dim=int(text_emb.shape[1])
    )
    length_cfg, length_train = profile_block(params, "length")
    data_id = (tokens, n_tokens, rows, text_emb)
    work = work_dir(dataset, f"{model}_{subset}", model_cfg, vars(train_cfg), *data_id)
    length_work = work_dir(
        dataset, f"length_{model}_{subset}", length_cfg, vars(length_train), *data_id
    )
    out = MODELS_ROOT / dataset / f"{model}_{subset}"
    start = time.perf_counter()
    net = train_transformer(
        model, *inputs[:5], model_cfg, train_cfg, work, log_dir=out / "live", progress=progress
    )
    trans_seconds = round(time.perf_counter() - start, 1)
    estimator = train_length_estimator(
        n_tokens, rows, captions, text_emb, length_cfg, length_train, length_work, progress=progress
    )
    if not _is_main():
        return {}
    save_model(out / "trans.safetensors", net, net.config)
    save_model(out / "length.safetensors", estimator, estimator.config)
    return _finish(
        out,
        start,
        train_cfg.steps,
        [work, length_work],
        motions=len(rows),
        trans_seconds=trans_seconds,
    )


def stage_train_res(dataset: str, subset: str, params: Mapping[str, Any], progress=True) -> dict:
    """train_res@<ds>-<subset>: the residual transformer shared by MoMask and BAMM."""
    _threads(params)
    inputs = training_inputs(dataset, subset)
    tokens, n_tokens, rows, _, text_emb, nb_code = inputs
    model_cfg, train_cfg = profile_block(params, "res")
    model_cfg = _set_by_data(
        model_cfg,
        "res",
        num_tokens=nb_code,
        clip_dim=int(text_emb.shape[1]),
        num_quantizers=int(tokens.shape[2]),
    )
    out = MODELS_ROOT / dataset / f"res_{subset}"
    work = work_dir(
        dataset, f"res_{subset}", model_cfg, vars(train_cfg), tokens, n_tokens, rows, text_emb
    )
    start = time.perf_counter()
    net = train_residual(
        *inputs[:5], model_cfg, train_cfg, work, log_dir=out / "live", progress=progress
    )
    if not _is_main():
        return {}
    save_model(out / "res.safetensors", net, net.config)
    return _finish(out, start, train_cfg.steps, [work], motions=len(rows))
