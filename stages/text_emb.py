"""Stage text_emb@<dataset>: the generator's text condition of every caption.

Encodes each row of data/processed/<ds>/captions.parquet with the encoder named by
generator.text_encoder (minilm, or clip with generator.clip_weights) into
data/processed/<ds>/text_emb.npy (+ text_emb.meta.json), in the same row order.
"""

import sys

from hmu.params import load_params
from hmu.train.generators import stage_text_emb


def main(dataset: str) -> None:
    embeddings = stage_text_emb(dataset, load_params())
    print(f"text_emb@{dataset}: {embeddings.shape[0]} captions x {embeddings.shape[1]} dims")


if __name__ == "__main__":
    main(sys.argv[1])
