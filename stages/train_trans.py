"""Stage train_trans@<dataset>-<model>-<subset>: MoMask's masked or BAMM's transformer.

Trains on the layer-0 codes of tokens_<subset>.npz (train partition of the subset), each sample
conditioned on one of its captions' text_emb rows, with sizes/optimisation from
trans.<model>.<profile>; then the length estimator (length.<profile>). Writes
models/<ds>/<model>_<subset>/ (trans.safetensors/.json, length.safetensors/.json, live/,
train.json).
"""

import sys

from hmu.params import load_params
from hmu.train.generators import stage_train_trans


def main(target: str) -> None:
    dataset, model, subset = target.rsplit("-", 2)
    summary = stage_train_trans(dataset, model, subset, load_params())
    print(f"train_trans@{target}: {summary}")


if __name__ == "__main__":
    main(sys.argv[1])
