"""Stage unlearn@<ds>-<model>-<method>: the unlearned model of base, retrain, finetune or lcr.

base is the model trained on all data and retrain the D_r reference (both point at trained
pieces, `<method>.subset`); finetune trains the base transformers further on D_r (block
finetune), and finetune_all, its control, as long on all training data (block finetune_all
names the subset, the rest comes from block finetune); lcr (Latent Code Replacement, block
lcr) replaces VQ codes, saved as a small delta applied at load time (metrics: how many of its
selected codes are rare, under its min_support and under the paper's rule). The closed-form
edits UCE and RECE have their own stage, unlearn_edit.
Writes models/<ds>/<model>/<method>/method.json (+ artefacts) and
metrics/<ds>/<model>/<method>_unlearn.json.
"""

import shutil
import sys
import time
from pathlib import Path

import torch

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.io import write_json
from hmu.models.checkpoint import load_module, load_state, save_lcr_delta, save_module, vq_file
from hmu.params import load_params, section, train_seed
from hmu.params_schema import check_params
from hmu.pretrained import absent_reason, write_absent
from hmu.train.finetune import finetune, finetune_config
from hmu.train.generators import training_data
from hmu.train.runs import work_dir
from hmu.unlearn.artefacts import base_pieces, method_dir, write_method
from hmu.unlearn.lcr import lcr_delta, selection_summary


def run_lcr(cfg: dict, dataset: str, model: str, out) -> dict:
    """LCR on the base model's cached tokens of the forget and retain training motions."""
    pieces = base_pieces(dataset, model)
    data = ProcessedDataset.open(dataset)
    tokens = data.tokens("all").tokens
    forget, retain = data.select("train", "forget"), data.select("train", "retain")
    vq_state, _ = load_state(vq_file(pieces["vq"]))
    delta = lcr_delta(
        tokens[forget],
        tokens[retain],
        vq_state,
        r=cfg["r"],
        alpha=cfg["alpha"],
        layers=cfg["layers"],
        rule=cfg["rule"],
        absent_guard=cfg["absent_guard"],
        seed=cfg["seed"],
        one_target=cfg["one_target"],
        min_support=cfg["min_support"],
    )
    save_lcr_delta(out / "lcr_delta.safetensors", delta, {"layers": sorted(delta), **cfg})
    # the first edited layer's selection, under the configured rule and the paper's
    rule = {k: cfg[k] for k in ("r", "rule", "absent_guard")}
    selection = {
        f"min_support_{m}": selection_summary(
            tokens[forget], tokens[retain], vq_state, cfg["layers"][0], min_support=m, **rule
        )
        for m in sorted({1, cfg["min_support"]})
    }
    return {**pieces, "lcr_delta": str(out / "lcr_delta.safetensors")}, selection


def run_finetune(
    cfg: dict,
    dataset: str,
    model: str,
    out,
    precision: str,
    subset: str = "retain",
    seed_offset: int = 0,
) -> dict:
    """The base transformers fine-tuned on `subset`'s motions (D_r: the baseline; all: the
    control "FT on all data"), tokenised by the base VQ-VAE. The step count is always that of
    `cfg["epochs"]` passes over D_r, so the control trains exactly as long as the baseline;
    seed_offset is params.yaml `train.seed`, as for the base model's training."""
    pieces = base_pieces(dataset, model)
    processed = ProcessedDataset.open(dataset)
    data = training_data(processed, subset, codebook="all")
    retain_motions = len(processed.select("train", "retain"))
    train_cfg = finetune_config(cfg["epochs"], cfg["train"], retain_motions, precision, seed_offset)
    # resumable state, keyed by everything that defines the run; removed once saved
    work = work_dir(
        dataset, f"finetune_{subset}_{model}", vars(train_cfg), cfg, data.table.tokens, data.rows
    )
    base_res = load_module(pieces["res"]) if cfg["residual"] else None
    trans, res = finetune(model, load_module(pieces["trans"]), base_res, data, train_cfg, work, out)
    save_module(out / "trans.safetensors", trans)
    result = {**pieces, "trans": str(out / "trans.safetensors")}
    if res is not None:
        save_module(out / "res.safetensors", res)
        result["res"] = str(out / "res.safetensors")
    shutil.rmtree(work, ignore_errors=True)
    return result


def main(target: str) -> None:
    dataset, model, method = target.split("-")
    extra = ["finetune"] if method == "finetune_all" else []
    check_params(method, "precision", "train", "generator.threads", *extra)
    params = load_params()
    torch.set_num_threads(section(params, "generator.threads"))
    cfg = section(params, method)
    out = method_dir(dataset, model, method)
    start = time.perf_counter()
    info = {"method": method, **cfg}
    if method in ("base", "retrain"):
        pieces = base_pieces(dataset, model, cfg["subset"])
        reason = absent_reason(*(Path(p).parent for p in (pieces["trans"], pieces["res"])))
        if reason is not None:  # no D_r reference (source kind none): a marker, no method
            write_absent(out, reason)
            return write_json(
                f"metrics/{dataset}/{model}/{method}_unlearn.json", {"absent": reason}
            )
    elif method == "lcr":
        pieces, info["selection"] = run_lcr(cfg, dataset, model, out)
    elif method == "finetune":
        precision = section(params, "precision.train")
        pieces = run_finetune(cfg, dataset, model, out, precision, seed_offset=train_seed(params))
    elif method == "finetune_all":  # the control: same steps, on the full training set
        info["finetune"] = section(params, "finetune")
        precision = section(params, "precision.train")
        pieces = run_finetune(
            info["finetune"], dataset, model, out, precision, cfg["subset"], train_seed(params)
        )
    else:
        raise ValueError(f"unlearn: unknown method {method!r} (uce and rece: stage unlearn_edit)")
    seconds = time.perf_counter() - start
    write_method(dataset, model, method, pieces, info, seconds)
    print(f"unlearn@{target}: {seconds:.2f} s")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
