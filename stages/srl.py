"""Stage srl@<dataset>: POS-tag captions like HumanML3D's text processing.

Reads data/processed/<ds>/captions_raw.parquet, fills `tokens` ("word/UPOS ..."), writes
data/processed/<ds>/captions.parquet. Captions that already carry tokens (real HumanML3D)
keep them unless text.retag is true.
"""

import sys
import time

import pandas as pd

from hmu.data.text import tag_captions
from hmu.errors import exits_on_bad_input
from hmu.io import write_parquet
from hmu.params import load_params, processed_dir, section
from hmu.params_schema import check_params


def main(dataset: str) -> None:
    check_params("text")
    cfg = section(load_params(), "text")
    folder = processed_dir(dataset)
    captions = pd.read_parquet(folder / "captions_raw.parquet")
    start = time.perf_counter()
    todo = captions["tokens"].fillna("").str.len().eq(0) | bool(cfg["retag"])
    tagged = tag_captions(captions.loc[todo, "caption"].tolist(), batch_size=cfg["batch_size"])
    captions.loc[todo, "tokens"] = [" ".join(t) for t in tagged]
    write_parquet(folder / "captions.parquet", captions)
    print(
        f"srl@{dataset}: tagged {int(todo.sum())} of {len(captions)} captions "
        f"in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
