"""Tiny models (and their method.json), a tiny processed dataset and params for the tests.

Not a test module: the tests import it (pytest puts tests/ on sys.path).
"""

import importlib.util
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmu.data.humanml import mean_std
from hmu.data.store import write_store
from hmu.generate import T2MGenerator
from hmu.io import write_parquet
from hmu.models.bamm import BAMMTransformer
from hmu.models.checkpoint import save_module, save_vq
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.models.rvq import RVQVAE
from hmu.models.text import TextEncoder

K, Q, C = 24, 3, 16  # codes, quantizer layers, text width
TINY = dict(code_dim=16, latent_dim=32, ff_size=64, num_layers=1, num_heads=4, dropout=0.0)
TINY_VQ = dict(nb_code=K, code_dim=16, output_emb_width=16, width=16, depth=1, num_quantizers=Q)
STAGES = Path(__file__).resolve().parents[1] / "stages"


class FakeEncoder(TextEncoder):
    """Deterministic text features: a random vector seeded by the text's CRC32."""

    name, dim, cache_key = "fake", C, "fake:1"

    def __init__(self):
        self.calls = 0

    def embed_batch(self, texts):
        self.calls += len(texts)
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(C) for t in texts]
        return torch.tensor(np.stack(rows), dtype=torch.float32)


def tiny_vq(seed: int = 0) -> RVQVAE:
    """A tiny RVQ-VAE with random codebooks, eval mode."""
    torch.manual_seed(seed)
    vq = RVQVAE(**TINY_VQ)
    for layer in vq.quantizer.layers:
        layer.set_codebook(torch.randn(K, 16))
    return vq.eval()


def tiny_generator(kind: str, seed: int = 0, **kw) -> T2MGenerator:
    torch.manual_seed(1)
    sizes = {**TINY, "num_tokens": K, "clip_dim": C}
    trans = (MaskTransformer if kind == "momask" else BAMMTransformer)(**sizes)
    res = ResidualTransformer(**sizes, num_quantizers=Q)
    mean, std = np.linspace(-1, 1, 263, dtype=np.float32), np.full(263, 2.0, np.float32)
    return T2MGenerator(
        tiny_vq(),
        trans,
        res,
        FakeEncoder(),
        mean,
        std,
        seed=seed,
        length_estimator=LengthEstimator(C, 50, 32),
        device="cpu",
        **kw,
    )


def write_tiny_models(root, dataset="tiny", kind="momask") -> dict:
    """Save a tiny VQ / transformer / residual / length estimator under root/models/<ds>."""
    models = root / "models" / dataset
    gen = tiny_generator(kind)
    mean, std = gen.mean, gen.std
    save_vq(models / "vq_all" / "vq.safetensors", gen.vq, mean, std)
    for module, path in (
        (gen.transformer, f"{kind}_all/trans"),
        (gen.residual, "res_all/res"),
        (gen.length_estimator, f"{kind}_all/length"),
    ):
        save_module(models / f"{path}.safetensors", module)
    return {
        "vq": f"models/{dataset}/vq_all",
        "trans": f"models/{dataset}/{kind}_all/trans.safetensors",
        "res": f"models/{dataset}/res_all/res.safetensors",
        "lcr_delta": None,
    }


def write_method(root, pieces, dataset="tiny", kind="momask", method="base"):
    folder = root / "models" / dataset / kind / method
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "method.json").write_text(json.dumps({**pieces, "info": {}}))


def write_tiny_dataset(root: Path, dataset: str = "tiny", motions: int = 24) -> None:
    """data/processed/<ds>: store, Mean/Std, captions.parquet (2 per motion, stored in reverse
    order), splits.parquet (2/3 train, every third motion in the forget set)."""
    rng = np.random.default_rng(0)
    folder = root / "data" / "processed" / dataset
    ids = [f"m{i:03d}" for i in range(motions)]
    arrays = [
        np.cumsum(rng.standard_normal((int(n), 263)) * 0.1, 0).astype(np.float32)
        for n in rng.integers(36, 70, motions)
    ]
    write_store(folder / "motions", ids, arrays)
    mean, std = mean_std(arrays)
    np.save(folder / "motions" / "Mean.npy", mean)
    np.save(folder / "motions" / "Std.npy", std)
    captions = pd.DataFrame(
        {
            "motion_id": np.repeat(ids, 2),
            "caption_index": [0, 1] * motions,
            "caption": [f"caption {i} of {m}" for m in ids for i in (0, 1)],
            "tokens": [f"caption/NOUN {i}/NUM" for _ in ids for i in (0, 1)],
        }
    )
    write_parquet(folder / "captions.parquet", captions.iloc[::-1].reset_index(drop=True))
    partition = np.where(np.arange(motions) < motions * 2 // 3, "train", "test")
    sets = np.where(np.arange(motions) % 3 == 0, "forget", "retain")
    splits = {"motion_id": ids, "partition": partition, "set": sets, "matched": "", "concept": "x"}
    write_parquet(folder / "splits.parquet", pd.DataFrame(splits))


def tiny_params() -> dict:
    """A params.yaml for the generator and unlearning stages at tiny sizes."""
    train = {"steps": 4, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 2, "log_every": 2}
    small = {**TINY, "num_heads": 2}
    return {
        "profile": "small",
        "generator": {"text_encoder": "minilm", "clip_weights": None, "threads": 1},
        "vq": {"window": 32, "small": {"model": TINY_VQ, "train": train}},
        "trans": {"small": {"model": small, "train": train}},
        "res": {"small": {"model": small, "train": train}},
        "length": {"small": {"model": {"hidden": 32}, "train": train}},
        "generation": {"timesteps": 3},
        "precision": {"train": "fp32", "generate": "fp32"},
        "toxicity": {"tiny": {"keywords": ["kick", "punch"]}},
        "base": {"subset": "all"},
        "retrain": {"subset": "retain"},
        "finetune": {"epochs": 1, "residual": True, "train": {"batch_size": 4, "lr": 1e-4}},
        "finetune_all": {"subset": "all"},
        "lcr": {
            "r": 3,
            "alpha": 1.0,
            "layers": [0, 1],
            "rule": "ratio",
            "absent_guard": "paper",
            "one_target": False,
            "min_support": 1,
            "seed": 0,
        },  # fmt: skip
        "edit": {
            "preserve_words": ["walk"],
            "preserve_captions": 2,
            "erase_captions": 1,
            "seed": 0,
            "lam": 0.1,
            "erase_scale": 1.0,
            "preserve_scale": 0.1,
            "values": "target",
        },  # fmt: skip
        "uce": {"target": ""},
        "rece": {"target": "", "epochs": 1, "reg": 1e-3, "paper_code": False},
    }


def load_stage(name: str):
    """The stage script stages/<name>.py as a module (its main(target) runs the stage)."""
    spec = importlib.util.spec_from_file_location(f"stage_{name}", STAGES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_stage(name: str, *target: str, monkeypatch=None, **patches):
    """Run stages/<name>.py as DVC does (main(target), params.yaml in the working directory),
    with module attributes of the stage replaced by `patches` (needs `monkeypatch`)."""
    stage = load_stage(name)
    for attr, value in patches.items():
        monkeypatch.setattr(stage, attr, value)
    return stage.main(*target)


def run_generator_stages(monkeypatch, dataset: str = "tiny") -> None:
    """Every generator and unlearning stage of `dataset`, in dvc.yaml's order, in the working
    directory: text_emb, train_vq / tokenize / train_res / train_trans per subset, then unlearn
    (with the control finetune_all) and unlearn_edit for both models. Text features come from
    FakeEncoder."""
    fake = {"load_text_encoder": lambda *a, **k: FakeEncoder()}
    run_stage("text_emb", dataset, monkeypatch=monkeypatch, **fake)
    for subset in ("all", "retain"):
        run_stage("train_vq", f"{dataset}-{subset}")
        run_stage("tokenize_motions", f"{dataset}-{subset}")
        run_stage("train_res", f"{dataset}-{subset}")
        for model in ("momask", "bamm"):
            run_stage("train_trans", f"{dataset}-{model}-{subset}")
    for model in ("momask", "bamm"):
        for method in ("base", "retrain", "finetune", "finetune_all", "lcr"):
            run_stage("unlearn", f"{dataset}-{model}-{method}")
        for method in ("uce", "rece"):
            run_stage(
                "unlearn_edit", f"{dataset}-{model}-{method}", monkeypatch=monkeypatch, **fake
            )
