"""The judge of the benchmark: evaluator embeddings plus the toxicity instruments.

Everything here is trained on real motions only and never shares a representation with the
generators it judges: the evaluator (Guo et al.) embeds texts and motions; a toxic-action
classifier (logistic regression on the evaluator's motion embedding) flags toxic motions; and
the training captions' embeddings with their toxic flags serve NCS@k retrieval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.data.toxicity import keyword_matcher
from hmu.eval.protocol import MAX_LEN, Judge, TestSet
from hmu.models.evaluator import Evaluator, load_evaluator
from hmu.train.checkpoint import load_state, save_state

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


def fit_classifier(emb: np.ndarray, labels: np.ndarray, steps: int = 500, weight_decay=1e-3,
                   seed: int = 0) -> ToxicClassifier:
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
    out = np.zeros((len(motions), evaluator.motion_encoder.out_net[-1].out_features), np.float32)
    for s in range(0, len(order), EMBED_BATCH):
        idx = order[s : s + EMBED_BATCH]
        batch, lengths = _pad_batch([motions[i] for i in idx])
        lengths = lengths // 4 * 4
        out[idx] = evaluator.motion_embedding(torch.from_numpy(batch), lengths).numpy()
    return out


@torch.no_grad()
def embed_token_lists(evaluator: Evaluator, token_lists: list[list[str]]) -> np.ndarray:
    """Evaluator embeddings of captions given as "word/POS" token lists."""
    parts = [
        evaluator.caption_embedding(token_lists[s : s + EMBED_BATCH]).numpy()
        for s in range(0, len(token_lists), EMBED_BATCH)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)


def make_judge(evaluator: Evaluator, classifier: ToxicClassifier | None,
               train_text_emb=None, train_text_toxic=None) -> Judge:
    """Wrap the evaluator and classifier into the protocol's Judge."""

    @torch.no_grad()
    def embed_motions(motions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return evaluator.motion_embedding(torch.from_numpy(motions), lengths).numpy()

    def toxic_probability(motions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return classifier(torch.from_numpy(embed_motions(motions, lengths))).numpy()

    return Judge(
        embed_texts=lambda tokens: embed_token_lists(evaluator, list(tokens)),
        embed_motions=embed_motions,
        toxic_probability=toxic_probability if classifier is not None else None,
        train_text_emb=train_text_emb,
        train_text_toxic=train_text_toxic,
    )


def tokens_of(frame) -> list[list[str]]:
    """Token lists from a captions frame's space-joined `tokens` column."""
    return [t.split() for t in frame["tokens"].fillna("")]


def toxic_labels(data: ProcessedDataset, rows: np.ndarray) -> np.ndarray:
    """Per-motion toxic label: ground-truth action labels when the dataset has them
    (`toxic_gt` column, embedded benchmark), else the keyword split (real data)."""
    table = data.store.table
    if "toxic_gt" in table.columns:
        return table["toxic_gt"].to_numpy()[rows].astype(bool)
    sets = table[["motion_id"]].merge(data.splits, on="motion_id", how="left")["set"]
    return sets.eq("forget").to_numpy()[rows]


def load_judge(data: ProcessedDataset, folder: Path, keywords: list[str]) -> Judge:
    """The judge saved by train_evaluator@<ds>, with NCS over the training captions."""
    evaluator = load_evaluator(folder / "evaluator.safetensors")
    classifier = load_classifier(folder / "toxic_classifier.safetensors")
    train_ids = set(data.store.table["motion_id"].to_numpy()[data.select("train")])
    caps = data.captions[data.captions["motion_id"].isin(train_ids)]
    regex = keyword_matcher(keywords).regex
    toxic = caps["caption"].str.contains(regex).to_numpy(dtype=bool)
    emb = embed_token_lists(evaluator, tokens_of(caps))
    return make_judge(evaluator, classifier, emb, toxic)


def test_set(data: ProcessedDataset, subset: str, keywords: list[str]) -> TestSet:
    """The forget or retain test set with captions (and detoxified captions for forget)."""
    from hmu.data.text import tag_captions
    from hmu.data.toxicity import detoxify

    rows = data.select("test", subset)
    groups = data.captions_of(rows)
    captions = [list(zip(g["caption"], tokens_of(g), strict=True)) for g in groups]
    detox = None
    if subset == "forget":
        flat = [detoxify(c, keywords) for g in groups for c in g["caption"]]
        pairs = iter(zip(flat, tag_captions(flat), strict=True))
        detox = [[next(pairs) for _ in range(len(g))] for g in groups]
    ids = data.store.table["motion_id"].to_numpy()[rows].tolist()
    return TestSet(subset, ids, data.motions(rows), captions, detox)
