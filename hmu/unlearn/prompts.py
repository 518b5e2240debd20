"""The texts UCE and RECE erase, preserve and map to, as text-encoder embeddings.

erase: the concept's toxic keywords, plus optionally a sample of forget training captions;
preserve: safe words, plus optionally a sample of retain training captions; target: the prompt
the erased concept should behave like ("" = the empty prompt, as in the paper, Supp. Sec. 1).
"""

from __future__ import annotations

import numpy as np

from hmu.data.dataset import ProcessedDataset
from hmu.models.text import TextEncoder, pooled_word_embedding


def sampled_captions(data: ProcessedDataset, subset: str, count: int, seed: int) -> list[str]:
    """`count` random training captions of the forget or retain set (none if count is 0)."""
    if count <= 0:
        return []
    captions = data.captions_in(data.select("train", subset))["caption"]
    return captions.sample(min(count, len(captions)), random_state=seed).tolist()


def edit_embeddings(
    encoder: TextEncoder, erase: list[str], target: str, preserve: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Embeddings of the erased texts (n, C), the target (C,) and the preserved texts (m, C)
    (None when there are none), each text pooled like a caption."""
    preserved = pooled_word_embedding(preserve, encoder) if preserve else None
    return (
        pooled_word_embedding(erase, encoder),
        pooled_word_embedding([target], encoder)[0],
        preserved,
    )
