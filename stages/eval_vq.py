"""Stage eval_vq@<dataset>-<subset>: reconstruction quality of the RVQ-VAE on the test set.

Writes metrics/<ds>/vq_<subset>.json: MPJPE in mm and reconstruction FID (evaluator space) over
all test motions (forget and retain).
"""

import sys
from pathlib import Path

import torch

from hmu.data.dataset import ProcessedDataset
from hmu.eval.judge import load_judge
from hmu.eval.reconstruction import reconstruction_metrics
from hmu.io import write_json
from hmu.models.checkpoint import load_vq
from hmu.params import load_params, section


def main(target: str) -> None:
    dataset, subset = target.rsplit("-", 1)
    torch.set_num_threads(section(load_params(), "evaluator.threads"))
    data = ProcessedDataset.open(dataset)
    vq, mean, std = load_vq(Path("models") / dataset / f"vq_{subset}")
    judge = load_judge(Path("models") / dataset / "evaluator")
    motions = data.motions(data.select("test"))
    result = reconstruction_metrics(vq, motions, mean, std, judge.embed_motions)
    write_json(f"metrics/{dataset}/vq_{subset}.json", result)
    print(f"eval_vq@{target}: {result}")


if __name__ == "__main__":
    main(sys.argv[1])
