"""Stage train_res@<dataset>-<subset>: the residual transformer shared by MoMask and BAMM.

Trains on all code layers of tokens_<subset>.npz (train partition of the subset), conditioned
like train_trans, sizes/optimisation from res.<profile>. Writes models/<ds>/res_<subset>/
(res.safetensors/.json, live/, train.json).
With source.<ds>.<subset>.kind pretrained it imports the upstream residual transformer
into the same folder instead, training nothing (hmu.pretrained, docs/pretrained.md); with
kind none (retain only: no D_r reference) it writes only absent.json.
"""

import sys
import time
from pathlib import Path

import torch

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.models.checkpoint import save_module
from hmu.params import load_params, profile_block, section, set_by_data, train_seed
from hmu.params_schema import check_params
from hmu.pretrained import (
    import_residual,
    is_left_out,
    is_pretrained,
    no_reference_reason,
    write_absent,
)
from hmu.train.generators import train_residual, training_data
from hmu.train.loop import TrainConfig
from hmu.train.runs import finish_run, is_main, work_dir


def main(target: str) -> None:
    dataset, subset = target.rsplit("-", 1)
    check_params("profile", "res", "generator.threads", "precision", "source", "train")
    params = load_params()
    precision = section(params, "precision.train")  # fp32 | bf16
    out = Path("models") / dataset / f"res_{subset}"
    if is_left_out(params, dataset, subset):  # no D_r reference: a marker, no model
        return write_absent(out, no_reference_reason(dataset))
    if is_pretrained(params, dataset, subset):
        return import_residual(params, dataset, subset, out)
    torch.set_num_threads(section(params, "generator.threads"))
    data = training_data(ProcessedDataset.open(dataset), subset)
    model_params, train_params = profile_block(params, "res")
    sizes = {
        "num_tokens": data.table.nb_code,
        "clip_dim": int(data.text_emb.shape[1]),
        "num_quantizers": int(data.table.tokens.shape[2]),
    }
    model_cfg = set_by_data(model_params, "res", **sizes)
    train_cfg = TrainConfig.from_params(train_params, precision, train_seed(params))
    work = work_dir(dataset, f"res_{subset}", model_cfg, vars(train_cfg), *data.identity)
    start = time.perf_counter()
    net = train_residual(data, model_cfg, train_cfg, work, log_dir=out / "live")
    if not is_main():
        return
    save_module(out / "res.safetensors", net)
    summary = finish_run(out, start, train_cfg.steps, [work], motions=len(data.rows))
    print(f"train_res@{target}: {summary}")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
