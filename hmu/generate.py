"""Text-to-motion generation with a trained (or unlearned) MoMask / BAMM model.

`T2MGenerator` assembles the pieces: the text encoder, the base-layer token model (MoMask's
masked transformer or BAMM's), the residual transformer, and the RVQ-VAE decoder with the
mean/std its features are normalised with. Calling it with texts and lengths (frames) returns
raw HumanML3D features, which is the generator interface of the evaluation protocol.
`load_generator` builds one from models/<ds>/<model>/<method>/method.json, the file every
unlearning method writes, applying an LCR codebook delta when the method has one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmu.data.humanml import MAX_FRAMES, UNIT
from hmu.io import write_json
from hmu.models.bamm import BAMMTransformer
from hmu.models.checkpoint import default_device, load_module, load_vq, read_lcr_delta
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.models.rvq import RVQVAE
from hmu.models.text import LazyTextEncoder, TextEncoder, load_text_encoder
from hmu.params import PARAMS_FILE, load_params


@dataclass
class GenerationConfig:
    """Sampling settings (params.yaml `generation.*`); defaults are the paper's evaluation ones."""

    timesteps: int = 10  # MoMask iterative decoding steps
    cond_scale: float = 4.0  # classifier-free guidance of the base-layer model
    res_cond_scale: float = 5.0  # guidance of the residual transformer
    refine_cond_scale: float = 3.0  # BAMM's second (refinement) pass
    temperature: float = 1.0
    topk: float = 0.9  # keep the top (1 - topk) share of the logits
    batch_size: int = 256  # prompts decoded together

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> GenerationConfig:
        """Build from a `generation` params block, rejecting unknown keys."""
        params = dict(params or {})
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown generation params: {sorted(unknown)}")
        cfg = cls(**params)
        if cfg.timesteps < 1 or cfg.batch_size < 1 or cfg.temperature <= 0:
            raise ValueError(f"generation: timesteps, batch_size, temperature must be > 0: {cfg}")
        return cfg


class T2MGenerator:
    """texts + lengths (frames) -> raw features (B, T_max, 263), reproducible under a seed.

    All randomness comes from one torch.Generator owned by the object, so the same seed and the
    same sequence of calls give identical motions. Text embeddings are cached by text.
    """

    def __init__(
        self,
        vq: RVQVAE,
        transformer: MaskTransformer | BAMMTransformer,
        residual: ResidualTransformer | None,
        text_encoder: TextEncoder,
        mean: np.ndarray,
        std: np.ndarray,
        config: GenerationConfig | Mapping[str, Any] | None = None,
        seed: int = 0,
        length_estimator: LengthEstimator | None = None,
        device: str | torch.device | None = None,
    ):
        if not isinstance(transformer, MaskTransformer | BAMMTransformer):
            raise ValueError(
                f"transformer: expected a MaskTransformer or BAMMTransformer, got "
                f"{type(transformer).__name__}"
            )
        nb_code, layers = vq.hparams["nb_code"], vq.hparams["num_quantizers"]
        if transformer.num_tokens != nb_code:
            raise ValueError(f"transformer has {transformer.num_tokens} codes, the VQ {nb_code}")
        fits = residual is None or (residual.num_tokens, residual.num_quantizers) == (
            nb_code,
            layers,
        )
        if not fits:
            raise ValueError(
                f"residual transformer ({residual.num_tokens} codes, "
                f"{residual.num_quantizers} layers) does not fit the VQ "
                f"({nb_code} codes, {layers} layers)"
            )
        if text_encoder.dim != transformer.clip_dim:
            raise ValueError(
                f"text encoder {text_encoder.name} gives {text_encoder.dim}-d "
                f"features, the transformer expects {transformer.clip_dim}"
            )
        self.device = torch.device(device) if device is not None else default_device()
        self.vq, self.transformer, self.residual = vq, transformer, residual
        self.length_estimator = length_estimator
        for module in (vq, transformer, residual, length_estimator):
            if module is not None:
                module.to(self.device).eval()
        self.text_encoder = text_encoder
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if not isinstance(config, GenerationConfig):
            config = GenerationConfig.from_params(config)
        self.config = config
        self.generator = torch.Generator(device=self.device)
        self.reseed(seed)
        self._embeddings: dict[str, np.ndarray] = {}

    @property
    def kind(self) -> str:
        """'bamm' or 'momask': which base-layer model generates."""
        return "bamm" if isinstance(self.transformer, BAMMTransformer) else "momask"

    def reseed(self, seed: int) -> None:
        """Restart the random stream: the next calls repeat those made after the last reseed."""
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def cache_embeddings(self, texts: Sequence[str], embeddings: np.ndarray) -> None:
        """Reuse precomputed text features (e.g. the text_emb stage's, same encoder)."""
        if len(texts) != len(embeddings) or embeddings.shape[1] != self.text_encoder.dim:
            raise ValueError(f"{len(texts)} texts but embeddings {embeddings.shape}")
        self._embeddings.update(zip(texts, np.asarray(embeddings, np.float32), strict=True))

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Text features (B, C) on the device; each distinct text is encoded once per object."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of str")
        new = sorted({t for t in texts if t not in self._embeddings})
        if new:
            for text, row in zip(new, self.text_encoder.encode(new), strict=True):
                self._embeddings[text] = row
        stacked = np.stack([self._embeddings[t] for t in texts]).astype(np.float32)
        return torch.from_numpy(stacked).to(self.device)

    @torch.no_grad()
    def _codes(self, cond: torch.Tensor, token_lengths: torch.Tensor | None):
        """Codes of every layer (B, N, Q) (-1 past each length) and token lengths (B,)."""
        cfg, gen = self.config, self.generator
        if self.kind == "momask":
            base = self.transformer.generate(
                cond,
                token_lengths,
                timesteps=cfg.timesteps,
                cond_scale=cfg.cond_scale,
                temperature=cfg.temperature,
                topk_filter_thres=cfg.topk,
                generator=gen,
            )
        else:
            base, token_lengths = self.transformer.generate(
                cond,
                token_lengths,
                max_len=MAX_FRAMES // UNIT,
                cond_scale=cfg.cond_scale,
                refine_cond_scale=cfg.refine_cond_scale,
                temperature=cfg.temperature,
                topk_filter_thres=cfg.topk,
                generator=gen,
            )
        if self.residual is None:
            return base[..., None], token_lengths
        codes = self.residual.generate(
            base,
            cond,
            token_lengths,
            cond_scale=cfg.res_cond_scale,
            temperature=cfg.temperature,
            topk_filter_thres=cfg.topk,
            generator=gen,
        )
        return codes, token_lengths

    @torch.no_grad()
    def _decode(self, codes: torch.Tensor, token_lengths: torch.Tensor, frames: int) -> np.ndarray:
        """Raw features (B, frames, 263): decoded, denormalised, zero past 4 x token length."""
        normed = self.vq.forward_decoder(codes).float().cpu().numpy()  # (B, 4N, 263)
        motion = normed * self.std + self.mean
        valid = np.arange(motion.shape[1])[None, :] < (token_lengths.cpu().numpy() * UNIT)[:, None]
        out = np.zeros((len(motion), frames, motion.shape[2]), dtype=np.float32)
        width = min(frames, motion.shape[1])
        out[:, :width] = (motion * valid[..., None])[:, :width]
        return out

    def _chunks(self, count: int):
        size = self.config.batch_size
        return [slice(s, min(s + size, count)) for s in range(0, count, size)]

    def __call__(self, texts: Sequence[str], lengths) -> np.ndarray:
        """Generate one motion per text with the given lengths (frames, 4..196) -> (B, T_max, 263).

        T_max = max(lengths). A motion has length // 4 tokens, i.e. 4 * (length // 4) frames;
        features are zero after that.
        """
        texts = list(texts)
        lengths = np.asarray(lengths)
        if lengths.shape != (len(texts),) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(
                f"lengths must be {len(texts)} integers (frames), got "
                f"{lengths.dtype} {lengths.shape}"
            )
        if len(texts) and (lengths.min() < UNIT or lengths.max() > MAX_FRAMES):
            raise ValueError(
                f"lengths must lie in [{UNIT}, {MAX_FRAMES}] frames, got "
                f"[{lengths.min()}, {lengths.max()}]"
            )
        frames = int(lengths.max()) if len(texts) else 0
        out = np.zeros((len(texts), frames, self.vq.hparams["input_width"]), dtype=np.float32)
        for part in self._chunks(len(texts)):
            token_lengths = torch.as_tensor(lengths[part] // UNIT, device=self.device).long()
            codes, token_lengths = self._codes(self.embed(texts[part]), token_lengths)
            out[part] = self._decode(codes, token_lengths, frames)
        return out

    def generate_free(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Generate without given lengths -> (features (B, T_max, 263), lengths (B,) frames).

        MoMask samples each token length from the length estimator; BAMM ends a motion where it
        samples its end token.
        """
        texts = list(texts)
        if self.kind == "momask" and self.length_estimator is None:
            raise ValueError("free MoMask generation needs a length estimator (length.safetensors)")
        motions, lengths = [], []
        for part in self._chunks(len(texts)):
            cond = self.embed(texts[part])
            token_lengths = None
            if self.kind == "momask":
                token_lengths = self.length_estimator.sample(cond, generator=self.generator)
                token_lengths = token_lengths.clamp(max=MAX_FRAMES // UNIT)
            codes, token_lengths = self._codes(cond, token_lengths)
            lengths.append(token_lengths.cpu().numpy() * UNIT)
            motions.append((codes, token_lengths))
        all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        frames = int(all_lengths.max()) if len(all_lengths) else 0
        features = [self._decode(codes, tl, frames) for codes, tl in motions]
        empty = np.zeros((0, frames, self.vq.hparams["input_width"]), dtype=np.float32)
        return (np.concatenate(features) if features else empty), all_lengths.astype(np.int64)

    def describe(self) -> dict[str, Any]:
        """What this generator is made of (for logs and metrics meta)."""
        return {
            "kind": self.kind,
            "seed": self.seed,
            "text_encoder": self.text_encoder.name,
            **asdict(self.config),
        }


# ---------------------------------------------------------------- loading


def _resolve(value: str | None, base: Path) -> Path | None:
    """A path from method.json: absolute as is, relative to the project root `base`."""
    if value is None:
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


def _length_estimator_path(named: Path | None, trans: Path, base_trans: Path) -> Path | None:
    """method.json's 'length' if given (must exist), else length.safetensors beside the
    transformer, else beside the base model's transformer, else None."""
    if named is not None:
        if not named.is_file():
            raise FileNotFoundError(f"length estimator named in method.json not found: {named}")
        return named
    for path in (trans.with_name("length.safetensors"), base_trans.with_name("length.safetensors")):
        if path.is_file():
            return path
    return None


def _default_params() -> dict[str, Any]:
    return load_params() if Path(PARAMS_FILE).is_file() else {}


def _text_encoder(spec: dict, params: Mapping[str, Any], root: Path) -> TextEncoder:
    """method.json's 'text_encoder' {name, weights} if present, else params `generator.*`."""
    if spec.get("text_encoder"):
        name, weights = spec["text_encoder"]["name"], spec["text_encoder"].get("weights")
        weights = _resolve(weights, root)
    else:
        gen = params.get("generator", {})
        name, weights = gen.get("text_encoder", "minilm"), gen.get("clip_weights")
    return load_text_encoder(name, weights_path=weights)


def load_generator(
    dataset: str,
    model: str,
    method: str = "base",
    models_root: str | Path = "models",
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    text_encoder: TextEncoder | None = None,
    device: str | torch.device | None = None,
    text_cache: tuple[Sequence[str], np.ndarray] | None = None,
) -> T2MGenerator:
    """The generator of models/<ds>/<model>/<method>/method.json.

    method.json: {"vq": folder of vq.safetensors, "trans": file, "res": file, "lcr_delta": file or
    null, optional "length": file, optional "text_encoder": {"name", "weights"}}; relative paths
    are taken from the project root, the parent of models_root. The LCR delta is applied to the
    VQ codebooks at load time. params (default: params.yaml when present) supply
    `generation.*` and, unless text_encoder is given or method.json names one,
    `generator.text_encoder` / `generator.clip_weights`. text_cache (texts, embeddings) are
    precomputed features of the same encoder; the encoder is then loaded only for other texts.
    """
    models_root = Path(models_root)
    method_file = models_root / dataset / model / method / "method.json"
    if not method_file.is_file():
        raise FileNotFoundError(f"{method_file} not found: run unlearn@{dataset}-{model}-{method}")
    spec = json.loads(method_file.read_text())
    missing = [k for k in ("vq", "trans") if not spec.get(k)]
    if missing:
        raise ValueError(f"{method_file}: missing {missing}")
    root = models_root.parent
    vq, mean, std = load_vq(_resolve(spec["vq"], root))
    if spec.get("lcr_delta"):
        from hmu.unlearn.lcr import apply_delta

        apply_delta(vq, read_lcr_delta(_resolve(spec["lcr_delta"], root)))
    trans_path = _resolve(spec["trans"], root)
    transformer = load_module(trans_path)
    residual = load_module(_resolve(spec["res"], root)) if spec.get("res") else None
    base_trans = models_root / dataset / f"{model}_all" / "trans.safetensors"
    length_path = _length_estimator_path(_resolve(spec.get("length"), root), trans_path, base_trans)
    estimator = load_module(length_path) if length_path is not None else None
    params = _default_params() if params is None else params
    if text_encoder is None and text_cache is not None:
        name = params.get("generator", {}).get("text_encoder", "minilm")
        text_encoder = LazyTextEncoder(
            lambda: _text_encoder(spec, params, root), name, int(text_cache[1].shape[1])
        )
    if text_encoder is None:
        text_encoder = _text_encoder(spec, params, root)
    generator = T2MGenerator(
        vq,
        transformer,
        residual,
        text_encoder,
        mean,
        std,
        config=params.get("generation"),
        seed=seed,
        length_estimator=estimator,
        device=device,
    )
    if text_cache is not None:
        generator.cache_embeddings(*text_cache)
    return generator


def import_official(
    dataset: str,
    model: str,
    vq: str | Path,
    trans: str | Path,
    mean: str | Path,
    std: str | Path,
    res: str | Path | None = None,
    length: str | Path | None = None,
    clip_weights: str | Path | None = None,
    models_root: str | Path = "models",
    method: str = "official",
) -> Path:
    """Convert official MoMask/BAMM checkpoints into a method `load_generator` can use.

    vq / trans / res / length: upstream .tar files (net_best_fid.tar, the transformers'
    latest.tar or net_best_fid.tar, length_estimator finest.tar); mean / std: the VQ's
    meta/mean.npy and meta/std.npy (what upstream denormalises generated motion with).
    Writes models_root/<ds>/official_<model>/ (our safetensors) and
    models_root/<ds>/<model>/<method>/method.json naming CLIP (clip_weights) as the text encoder.
    Returns the method.json path.
    """
    from hmu.models import official
    from hmu.models.checkpoint import save_module, save_vq

    if model not in ("momask", "bamm"):
        raise ValueError(f"model must be momask or bamm, got {model!r}")
    models_root = Path(models_root)
    out = models_root / dataset / f"official_{model}"
    stats = [np.load(path).astype(np.float32) for path in (mean, std)]
    save_vq(out / "vq.safetensors", official.load(vq, "rvq"), *stats)
    kinds = {
        "trans": (trans, "bamm_transformer" if model == "bamm" else "mask_transformer"),
        "res": (res, "residual_transformer"),
        "length": (length, "length_estimator"),
    }
    root = models_root.parent

    def named(path: Path) -> str:  # as load_generator resolves it: relative to the root
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path.resolve())

    spec: dict[str, Any] = {"vq": named(out), "res": None, "lcr_delta": None}
    for name, (path, kind) in kinds.items():
        if path is not None:
            module = official.load(path, kind)
            save_module(out / f"{name}.safetensors", module)
            spec[name] = named(out / f"{name}.safetensors")
    weights = str(Path(clip_weights).resolve()) if clip_weights else None
    spec["text_encoder"] = {"name": "clip", "weights": weights}
    method_file = models_root / dataset / model / method / "method.json"
    write_json(method_file, spec)
    return method_file
