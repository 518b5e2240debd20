"""Stage text_emb@<dataset>: the generator's text condition of every caption.

Encodes each row of data/processed/<ds>/captions.parquet with the encoder named by
generator.text_encoder (minilm, or clip with generator.clip_weights) into
data/processed/<ds>/text_emb.npy (+ text_emb.meta.json), in the same row order.
"""

import sys

import pandas as pd

from hmu.models.text import encode_captions_cached, load_text_encoder
from hmu.params import load_params, processed_dir, section


def main(dataset: str) -> None:
    gen = section(load_params(), "generator")
    folder = processed_dir(dataset)
    captions = pd.read_parquet(folder / "captions.parquet", columns=["caption"])["caption"]
    encoder = load_text_encoder(gen["text_encoder"], weights_path=gen["clip_weights"])
    emb = encode_captions_cached(captions.tolist(), encoder, folder / "text_emb.npy")
    print(f"text_emb@{dataset}: {emb.shape[0]} captions x {emb.shape[1]} dims")


if __name__ == "__main__":
    main(sys.argv[1])
