"""The judge of the benchmark: evaluator embeddings plus the toxicity instruments.

Everything here is trained on real motions only and never shares a representation with the
generators it judges: the evaluator (Guo et al.) embeds texts and motions; two calibrated
toxicity instruments (hmu.eval.instruments: the action classifier and the kinematic strike
detector) flag toxic motions; and the training captions' embeddings with their toxic flags
serve NCS@k retrieval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hmu.data.dataset import ProcessedDataset, tokens_of
from hmu.data.humanml import UNIT
from hmu.data.toxicity import keyword_matcher
from hmu.eval.instruments import load_detectors, pad
from hmu.eval.protocol import MAX_LEN, Judge, TestSet
from hmu.io import write_npy, write_parquet
from hmu.models.evaluator import Evaluator, load_evaluator

EMBED_BATCH = 256


@torch.no_grad()
def embed_motion_list(evaluator: Evaluator, motions: list[np.ndarray]) -> np.ndarray:
    """Evaluator embeddings of variable-length raw motions, in batches sorted by length;
    motions longer than the evaluator's max_motion_length are cut to it (as upstream's loader)."""
    order = np.argsort([len(m) for m in motions], kind="stable")
    parts = []
    for s in range(0, len(order), EMBED_BATCH):
        batch, lengths = pad([motions[i][:MAX_LEN] for i in order[s : s + EMBED_BATCH]])
        lengths = np.minimum(lengths, evaluator.max_motion_length) // UNIT * UNIT
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
    detectors: dict | None = None,
    train_text_emb=None,
    train_text_toxic=None,
) -> Judge:
    """Wrap the evaluator and the toxicity detectors (hmu.eval.instruments) into the
    protocol's Judge."""

    @torch.no_grad()
    def embed_motions(motions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return evaluator.motion_embedding(torch.from_numpy(motions), lengths).numpy()

    return Judge(
        embed_texts=lambda tokens: embed_token_lists(evaluator, list(tokens)),
        embed_motions=embed_motions,
        detectors=dict(detectors or {}),
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
        load_detectors(folder),
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
