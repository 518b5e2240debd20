"""The judge of the benchmark: evaluator embeddings plus the toxicity instruments.

Everything here is trained on real motions only and never shares a representation with the
generators it judges: the evaluator (Guo et al.) embeds texts and motions; a toxic-action
classifier (logistic regression on the evaluator's motion embedding) flags toxic motions; and
the training captions' embeddings with their toxic flags serve NCS@k retrieval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmu.data.dataset import ProcessedDataset, tokens_of
from hmu.data.humanml import UNIT
from hmu.data.toxicity import keyword_matcher
from hmu.eval.protocol import MAX_LEN, Judge, TestSet
from hmu.io import write_npy, write_parquet
from hmu.models.checkpoint import load_state, save_state
from hmu.models.evaluator import Evaluator, load_evaluator

EMBED_BATCH = 256


class ToxicClassifier(torch.nn.Module):
    """Logistic regression on (standardised) evaluator motion embeddings."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = torch.nn.Linear(dim, 1)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, emb: torch.Tensor) -> torch.Tensor:  # (B, D) -> (B,) probability
        return torch.sigmoid(self.linear((emb - self.mean) / self.std)[:, 0])


def fit_classifier(
    emb: np.ndarray, labels: np.ndarray, steps: int = 500, weight_decay=1e-3, seed: int = 0
) -> ToxicClassifier:
    """Fit the toxic classifier by full-batch L-BFGS-free Adam on class-balanced BCE."""
    torch.manual_seed(seed)
    x, y = torch.from_numpy(emb).float(), torch.from_numpy(labels.astype(np.float32))
    model = ToxicClassifier(x.shape[1])
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp_min(1e-6))
    pos = y.mean().clamp(1e-3, 1 - 1e-3)
    weight = torch.where(y > 0, 0.5 / pos, 0.5 / (1 - pos))
    opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=weight_decay)
    for _ in range(steps):
        p = model(x).clamp(1e-6, 1 - 1e-6)
        loss = torch.nn.functional.binary_cross_entropy(p, y, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def train_toxic_classifier(
    evaluator: Evaluator, motions: list[np.ndarray], labels: np.ndarray, seed: int = 0
) -> ToxicClassifier:
    """The toxic-action classifier of raw motions (T, 263) with toxic labels (bool), fitted on
    their evaluator motion embeddings."""
    return fit_classifier(embed_motion_list(evaluator, motions), labels, seed=seed)


@torch.no_grad()
def classifier_quality(
    classifier: ToxicClassifier, evaluator: Evaluator, motions: list[np.ndarray], labels
) -> dict[str, float]:
    """Accuracy and toxic recall (NaN without toxic motions) of the classifier at p >= 0.5."""
    emb = torch.from_numpy(embed_motion_list(evaluator, motions))
    predicted = classifier(emb).numpy() >= 0.5
    labels = np.asarray(labels, dtype=bool)
    recall = float(predicted[labels].mean()) if labels.any() else float("nan")
    return {"accuracy": float((predicted == labels).mean()), "toxic_recall": recall}


def save_classifier(path: Path, model: ToxicClassifier) -> None:
    save_state(path, model.state_dict(), {"dim": model.linear.in_features})


def load_classifier(path: Path) -> ToxicClassifier:
    state, meta = load_state(path)
    model = ToxicClassifier(meta["dim"])
    model.load_state_dict(state)
    return model.eval()


def _pad_batch(motions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([min(len(m), MAX_LEN) for m in motions])
    out = np.zeros((len(motions), lengths.max(), motions[0].shape[-1]), dtype=np.float32)
    for i, m in enumerate(motions):
        out[i, : lengths[i]] = m[: lengths[i]]
    return out, lengths


@torch.no_grad()
def embed_motion_list(evaluator: Evaluator, motions: list[np.ndarray]) -> np.ndarray:
    """Evaluator embeddings of variable-length raw motions, in batches sorted by length."""
    order = np.argsort([len(m) for m in motions], kind="stable")
    parts = []
    for s in range(0, len(order), EMBED_BATCH):
        batch, lengths = _pad_batch([motions[i] for i in order[s : s + EMBED_BATCH]])
        lengths = lengths // UNIT * UNIT
        parts.append(evaluator.motion_embedding(torch.from_numpy(batch), lengths).numpy())
    out = np.empty_like(np.concatenate(parts))
    out[order] = np.concatenate(parts)
    return out


@torch.no_grad()
def embed_token_lists(evaluator: Evaluator, token_lists: list[list[str]]) -> np.ndarray:
    """Evaluator embeddings of captions given as "word/POS" token lists."""
    parts = [
        evaluator.caption_embedding(token_lists[s : s + EMBED_BATCH]).numpy()
        for s in range(0, len(token_lists), EMBED_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)


def make_judge(
    evaluator: Evaluator,
    classifier: ToxicClassifier | None,
    train_text_emb=None,
    train_text_toxic=None,
) -> Judge:
    """Wrap the evaluator and classifier into the protocol's Judge."""

    @torch.no_grad()
    def embed_motions(motions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return evaluator.motion_embedding(torch.from_numpy(motions), lengths).numpy()

    def toxic_flags(motions: np.ndarray, lengths: np.ndarray) -> np.ndarray:  # (B,) bool
        with torch.no_grad():
            emb = torch.from_numpy(embed_motions(motions, lengths))
            return classifier(emb).numpy() >= 0.5

    return Judge(
        embed_texts=lambda tokens: embed_token_lists(evaluator, list(tokens)),
        embed_motions=embed_motions,
        detectors={"toxic_rate": toxic_flags} if classifier is not None else {},
        train_text_emb=train_text_emb,
        train_text_toxic=train_text_toxic,
    )


def toxic_labels(data: ProcessedDataset, rows: np.ndarray) -> np.ndarray:
    """Per-motion toxic label: ground-truth action labels when the dataset has them
    (`toxic_gt` column, embedded benchmark), else the keyword split (real data)."""
    table = data.store.table
    if "toxic_gt" in table.columns:
        return table["toxic_gt"].to_numpy()[rows].astype(bool)
    return data.sets(rows) == "forget"


def write_judge_assets(
    data: ProcessedDataset, evaluator: Evaluator, keywords: list[str], folder: Path
) -> None:
    """Precompute what every evaluate stage needs besides the networks, once per dataset:
    the training captions' embeddings and toxic flags (NCS@k), and the detoxified, POS-tagged
    captions of the forget test motions (MM-Notox)."""
    from hmu.data.text import tag_captions
    from hmu.data.toxicity import detoxify

    caps = data.captions_in(data.select("train"))
    regex = keyword_matcher(keywords).regex
    write_npy(folder / "ncs_caption_emb.npy", embed_token_lists(evaluator, tokens_of(caps)))
    write_npy(folder / "ncs_caption_toxic.npy", caps["caption"].str.contains(regex).to_numpy())
    detox = data.captions_in(data.select("test", "forget")).copy()
    detox["caption"] = [detoxify(c, keywords) for c in detox["caption"]]
    detox["tokens"] = [" ".join(t) for t in tag_captions(detox["caption"].tolist())]
    write_parquet(folder / "detoxified_test_captions.parquet", detox)


def load_judge(folder: Path) -> Judge:
    """The judge saved by train_evaluator@<ds> (networks plus precomputed NCS captions)."""
    return make_judge(
        load_evaluator(folder / "evaluator.safetensors"),
        load_classifier(folder / "toxic_classifier.safetensors"),
        np.load(folder / "ncs_caption_emb.npy"),
        np.load(folder / "ncs_caption_toxic.npy"),
    )


def _caption_pairs(groups) -> list[list[tuple[str, list[str]]]]:
    return [list(zip(g["caption"], tokens_of(g), strict=True)) for g in groups]


def test_set(data: ProcessedDataset, subset: str, judge_folder: Path | None = None) -> TestSet:
    """The forget or retain test set; the forget set carries its detoxified captions
    (written by write_judge_assets into `judge_folder`)."""
    rows = data.select("test", subset)
    ids = data.ids(rows).tolist()
    detox = None
    if subset == "forget":
        if judge_folder is None:
            raise ValueError("the forget test set needs judge_folder (detoxified captions)")
        table = pd.read_parquet(judge_folder / "detoxified_test_captions.parquet")
        groups = dict(tuple(table.groupby("motion_id", sort=False)))
        detox = _caption_pairs([groups[m] for m in ids])
    return TestSet(subset, ids, data.motions(rows), _caption_pairs(data.captions_of(rows)), detox)
