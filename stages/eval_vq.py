"""Stage eval_vq@<dataset>-<subset>: reconstruction quality of the RVQ-VAE on the test set.

Writes metrics/<ds>/vq_<subset>.json: MPJPE in mm and reconstruction FID (evaluator space) over
all test motions (forget and retain), and, where the dataset has ground-truth action segments
(the embedded benchmark), how much of each toxic action's signature survives encode/decode
("signatures": ankle-height difference for kicks, wrist reach for strikes, the kinematic
detector's rate, before and after).
"""

import sys
from pathlib import Path

import torch

from hmu.data.dataset import ProcessedDataset
from hmu.data.groundtruth import load_groundtruth
from hmu.errors import exits_on_bad_input
from hmu.eval.judge import load_judge
from hmu.eval.reconstruction import reconstruct, reconstruction_metrics, signature_survival
from hmu.io import write_json
from hmu.models.checkpoint import load_vq
from hmu.params import load_params, section
from hmu.params_schema import check_params
from hmu.pretrained import absent_reason


def main(target: str) -> None:
    dataset, subset = target.rsplit("-", 1)
    check_params("evaluator.threads", f"data.{dataset}.root")
    params = load_params()
    torch.set_num_threads(section(params, "evaluator.threads"))
    reason = absent_reason(Path("models") / dataset / f"vq_{subset}")
    if reason is not None:  # no VQ-VAE for this subset (retain under source kind none)
        return write_json(f"metrics/{dataset}/vq_{subset}.json", {"absent": reason})
    data = ProcessedDataset.open(dataset)
    vq, mean, std = load_vq(Path("models") / dataset / f"vq_{subset}")
    judge = load_judge(Path("models") / dataset / "evaluator")
    rows = data.select("test")
    motions = data.motions(rows)
    recons = reconstruct(vq, motions, mean, std)
    result = reconstruction_metrics(vq, motions, mean, std, judge.embed_motions, recons)
    truth = load_groundtruth(section(params, f"data.{dataset}.root"))
    if truth is not None:
        segments = truth.loc[data.ids(rows), "segments"].tolist()
        result["signatures"] = signature_survival(motions, recons, segments)
    write_json(f"metrics/{dataset}/vq_{subset}.json", result)
    print(f"eval_vq@{target}: {result}")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
