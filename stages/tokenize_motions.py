"""Stage tokenize@<dataset>-<subset>: codes of every stored motion with models/<ds>/vq_<subset>.

(Not named tokenize.py: a script in stages/ puts that folder first on sys.path, and a
tokenize.py there would shadow the standard library module every stage imports.)

Writes data/processed/<ds>/tokens_<subset>.npz: tokens (N, 49, Q) int16 (-1 = padding),
n_tokens (N,) and nb_code, in store order and for all partitions (LCR needs forget and retain
codes; the transformers train on the train partition).
"""

import sys
import time
from pathlib import Path

import torch

from hmu.data.dataset import write_tokens
from hmu.data.store import MotionStore
from hmu.models.checkpoint import load_vq
from hmu.params import load_params, processed_dir, section
from hmu.train.vq import tokenize


def main(target: str) -> None:
    dataset, subset = target.rsplit("-", 1)
    torch.set_num_threads(section(load_params(), "generator.threads"))
    model, mean, std = load_vq(Path("models") / dataset / f"vq_{subset}")
    store = MotionStore.open(processed_dir(dataset) / "motions")
    start = time.perf_counter()
    table = tokenize(model, store, mean, std)
    write_tokens(processed_dir(dataset) / f"tokens_{subset}.npz", table)
    seconds = round(time.perf_counter() - start, 1)
    print(f"tokenize@{target}: {len(table.tokens)} motions in {seconds} s")


if __name__ == "__main__":
    main(sys.argv[1])
