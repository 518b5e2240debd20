"""Stage train_trans@<dataset>-<model>-<subset>: MoMask's masked or BAMM's transformer.

Trains on the layer-0 codes of tokens_<subset>.npz (train partition of the subset), each sample
conditioned on one of its captions' text_emb rows, with sizes/optimisation from
trans.<profile> (one block for both models); then the length estimator (length.<profile>).
Writes models/<ds>/<model>_<subset>/ (trans.safetensors/.json, length.safetensors/.json, live/,
train.json).
With source.<ds>.<subset>.kind pretrained it imports the upstream transformer (and length
estimator) into the same folder instead, training nothing (hmu.pretrained, docs/pretrained.md); with
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
    import_transformer,
    is_left_out,
    is_pretrained,
    no_reference_reason,
    write_absent,
)
from hmu.timings import record_timing, since
from hmu.train.generators import train_length_estimator, train_transformer, training_data
from hmu.train.loop import TrainConfig
from hmu.train.runs import finish_run, is_main, work_dir


def main(target: str) -> None:
    dataset, model, subset = target.rsplit("-", 2)
    check_params("profile", "trans", "length", "generator.threads", "precision", "source", "train")
    params = load_params()
    precision = section(params, "precision.train")  # fp32 | bf16
    out = Path("models") / dataset / f"{model}_{subset}"
    if is_left_out(params, dataset, subset):  # no D_r reference: a marker, no model
        return write_absent(out, no_reference_reason(dataset))
    if is_pretrained(params, dataset, subset):
        return import_transformer(params, dataset, model, subset, out)
    torch.set_num_threads(section(params, "generator.threads"))
    data = training_data(ProcessedDataset.open(dataset), subset)
    model_params, train_params = profile_block(params, "trans")
    sizes = {"num_tokens": data.table.nb_code, "clip_dim": int(data.text_emb.shape[1])}
    model_cfg = set_by_data(model_params, "trans", **sizes)
    train_cfg = TrainConfig.from_params(train_params, precision, train_seed(params))
    length_cfg, length_params = profile_block(params, "length")
    length_train = TrainConfig.from_params(length_params, precision, train_seed(params))
    work = work_dir(dataset, f"{model}_{subset}", model_cfg, vars(train_cfg), *data.identity)
    length_work = work_dir(
        dataset, f"length_{model}_{subset}", length_cfg, vars(length_train), *data.identity
    )
    start = time.perf_counter()
    net = train_transformer(model, data, model_cfg, train_cfg, work, log_dir=out / "live")
    record_timing(f"{dataset}/{model}_{subset}_trans", seconds=since(start))
    estimator = train_length_estimator(data, length_cfg, length_train, length_work)
    if not is_main():
        return
    save_module(out / "trans.safetensors", net)
    save_module(out / "length.safetensors", estimator)
    summary = finish_run(
        out,
        start,
        train_cfg.steps,
        [work, length_work],
        motions=len(data.rows),
    )
    print(f"train_trans@{target}: {summary}")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
