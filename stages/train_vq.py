"""Stage train_vq@<dataset>-<subset>: the RVQ-VAE of MoMask/BAMM (subset all, or retain = D_r).

Trains on random vq.window-frame windows of the subset's train partition, normalised with Mean
and MoMask's VQ std; sizes and optimisation from vq.<profile>. Writes
models/<ds>/vq_<subset>/ (vq.safetensors + vq.json with mean/std, live/ DVCLive, train.json).
"""

import sys

from hmu.params import load_params
from hmu.train.generators import stage_train_vq


def main(target: str) -> None:
    dataset, subset = target.rsplit("-", 1)
    summary = stage_train_vq(dataset, subset, load_params())
    print(f"train_vq@{target}: {summary}")


if __name__ == "__main__":
    main(sys.argv[1])
