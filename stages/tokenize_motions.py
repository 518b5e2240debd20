"""Stage tokenize@<dataset>-<subset>: codes of every stored motion with models/<ds>/vq_<subset>.

(Not named tokenize.py: a script in stages/ puts that folder first on sys.path, and a
tokenize.py there would shadow the standard library module every stage imports.)

Writes data/processed/<ds>/tokens_<subset>.npz: tokens (N, 49, Q) int16 (-1 = padding),
n_tokens (N,) and nb_code, in store order and for all partitions (LCR needs forget and retain
codes; the transformers train on the train partition).
"""

import sys

from hmu.params import load_params
from hmu.train.generators import stage_tokenize


def main(target: str) -> None:
    dataset, subset = target.rsplit("-", 1)
    summary = stage_tokenize(dataset, subset, load_params())
    print(f"tokenize@{target}: {summary}")


if __name__ == "__main__":
    main(sys.argv[1])
