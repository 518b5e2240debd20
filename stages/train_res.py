"""Stage train_res@<dataset>-<subset>: the residual transformer shared by MoMask and BAMM.

Trains on all code layers of tokens_<subset>.npz (train partition of the subset), conditioned
like train_trans, sizes/optimisation from res.<profile>. Writes models/<ds>/res_<subset>/
(res.safetensors/.json, live/, train.json).
"""

import sys

from hmu.params import load_params
from hmu.train.generators import stage_train_res


def main(target: str) -> None:
    dataset, subset = target.rsplit("-", 1)
    summary = stage_train_res(dataset, subset, load_params())
    print(f"train_res@{target}: {summary}")


if __name__ == "__main__":
    main(sys.argv[1])
