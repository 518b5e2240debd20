"""Stage unlearn@<ds>-<model>-<method>: the unlearned model of base, retrain, finetune or lcr.

base is the model trained on all data and retrain the D_r reference (both point at trained
pieces, `<method>.subset`); finetune trains the base transformers further on D_r (block
finetune); lcr (Latent Code Replacement, block lcr) replaces VQ codes, saved as a small delta
applied at load time. The closed-form edits UCE and RECE have their own stage, unlearn_edit.
Writes models/<ds>/<model>/<method>/method.json (+ artefacts) and
metrics/<ds>/<model>/<method>_unlearn.json.
"""

import shutil
import sys
import time

from hmu.data.dataset import ProcessedDataset
from hmu.models.checkpoint import load_module, load_state, save_lcr_delta, save_module, vq_file
from hmu.params import load_params, section
from hmu.train.finetune import finetune, finetune_config
from hmu.train.generators import training_data
from hmu.train.runs import work_dir
from hmu.unlearn.artefacts import base_pieces, method_dir, write_method
from hmu.unlearn.lcr import lcr_delta


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
    )
    save_lcr_delta(out / "lcr_delta.safetensors", delta, {"layers": sorted(delta), **cfg})
    return {**pieces, "lcr_delta": str(out / "lcr_delta.safetensors")}


def run_finetune(cfg: dict, dataset: str, model: str, out) -> dict:
    """The base transformers fine-tuned on D_r's motions, tokenised by the base VQ-VAE."""
    pieces = base_pieces(dataset, model)
    data = training_data(ProcessedDataset.open(dataset), "retain", codebook="all")
    train_cfg = finetune_config(cfg["epochs"], cfg["train"], len(data.rows))
    # resumable state, keyed by everything that defines the run; removed once saved
    work = work_dir(
        dataset, f"finetune_{model}", vars(train_cfg), cfg, data.table.tokens, data.rows
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
    cfg = section(load_params(), method)
    out = method_dir(dataset, model, method)
    start = time.perf_counter()
    if method in ("base", "retrain"):
        pieces = base_pieces(dataset, model, cfg["subset"])
    elif method == "lcr":
        pieces = run_lcr(cfg, dataset, model, out)
    elif method == "finetune":
        pieces = run_finetune(cfg, dataset, model, out)
    else:
        raise ValueError(f"unlearn: unknown method {method!r} (uce and rece: stage unlearn_edit)")
    seconds = time.perf_counter() - start
    write_method(dataset, model, method, pieces, seconds)
    print(f"unlearn@{target}: {seconds:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1])
