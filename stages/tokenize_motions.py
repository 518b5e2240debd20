"""Stage tokenize@<dataset>-<subset>: codes of every stored motion with models/<ds>/vq_<subset>.

(Not named tokenize.py: a script in stages/ puts that folder first on sys.path, and a
tokenize.py there would shadow the standard library module every stage imports.)

Writes data/processed/<ds>/tokens_<subset>.npz: tokens (N, 49, Q) int16 (-1 = padding),
n_tokens (N,) and nb_code, in store order and for all partitions (LCR needs forget and retain
codes; the transformers train on the train partition). Without the subset's VQ-VAE (retain
under source kind none) the file holds only the reason ("absent").
"""

import sys
import time
from pathlib import Path

import torch

from hmu.data.dataset import write_tokens
from hmu.data.store import MotionStore
from hmu.errors import exits_on_bad_input
from hmu.models.checkpoint import load_vq
from hmu.params import load_params, processed_dir, section
from hmu.params_schema import check_params
from hmu.pretrained import absent_reason, write_absent_npz
from hmu.train.vq import tokenize


def main(target: str) -> None:
    dataset, subset = target.rsplit("-", 1)
    check_params("generator.threads")
    torch.set_num_threads(section(load_params(), "generator.threads"))
    out = processed_dir(dataset) / f"tokens_{subset}.npz"
    reason = absent_reason(Path("models") / dataset / f"vq_{subset}")
    if reason is not None:  # no VQ-VAE for this subset: the tokens file says why
        return write_absent_npz(out, reason)
    model, mean, std = load_vq(Path("models") / dataset / f"vq_{subset}")
    store = MotionStore.open(processed_dir(dataset) / "motions")
    start = time.perf_counter()
    table = tokenize(model, store, mean, std)
    write_tokens(out, table)
    seconds = round(time.perf_counter() - start, 1)
    print(f"tokenize@{target}: {len(table.tokens)} motions in {seconds} s")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
