"""Stage train_vq@<dataset>-<subset>: the RVQ-VAE of MoMask/BAMM (subset all, or retain = D_r).

Trains on random vq.window-frame windows of the subset's train partition, normalised with Mean
and MoMask's VQ std; sizes and optimisation from vq.<profile>. Writes
models/<ds>/vq_<subset>/ (vq.safetensors + vq.json with mean/std, live/ DVCLive, train.json).
With source.<ds>.<subset>.kind pretrained it imports the upstream RVQ-VAE with its meta mean/std
into the same folder instead, training nothing (hmu.pretrained, docs/pretrained.md); with
kind none (retain only: no D_r reference) it writes only absent.json.
"""

import sys
import time
from pathlib import Path

import torch

from hmu.data.dataset import ProcessedDataset, frames_tensor
from hmu.data.humanml import momask_vq_std
from hmu.errors import exits_on_bad_input
from hmu.models.checkpoint import save_vq
from hmu.models.rvq import PAPER_CONFIG
from hmu.params import load_params, profile_block, section, train_seed
from hmu.params_schema import check_params
from hmu.pretrained import (
    import_vq,
    is_left_out,
    is_pretrained,
    no_reference_reason,
    write_absent,
)
from hmu.train.loop import TrainConfig
from hmu.train.runs import finish_run, is_main, work_dir
from hmu.train.vq import train_vq


def main(target: str) -> None:
    dataset, subset = target.rsplit("-", 1)
    check_params("profile", "vq", "generator.threads", "precision", "source", "train")
    params = load_params()
    precision = section(params, "precision.train")  # fp32 | bf16
    out = Path("models") / dataset / f"vq_{subset}"
    if is_left_out(params, dataset, subset):  # no D_r reference: a marker, no model
        return write_absent(out, no_reference_reason(dataset))
    if is_pretrained(params, dataset, subset):
        return import_vq(params, dataset, subset, out)
    torch.set_num_threads(section(params, "generator.threads"))
    model_params, train_params = profile_block(params, "vq")
    model_cfg, train_cfg = (
        {**PAPER_CONFIG, **model_params},
        TrainConfig.from_params(train_params, precision, train_seed(params)),
    )
    window = int(section(params, "vq.window"))
    data = ProcessedDataset.open(dataset)
    vq_std = momask_vq_std(data.std)
    frames, offsets, lengths = frames_tensor(
        data.store, data.select("train", subset), data.mean, vq_std
    )
    work = work_dir(dataset, f"vq_{subset}", model_cfg, vars(train_cfg), window, frames, lengths)
    start = time.perf_counter()
    model = train_vq(
        frames, offsets, lengths, model_cfg, train_cfg, window, work, log_dir=out / "live"
    )
    if not is_main():
        return
    save_vq(out / "vq.safetensors", model, data.mean, vq_std)
    motions = int((lengths >= window).sum())
    summary = finish_run(out, start, train_cfg.steps, [work], motions=motions)
    print(f"train_vq@{target}: {summary}")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
