"""Stage unlearn_edit@<ds>-<model>-<method>: UCE or RECE, closed-form edits of `cond_emb`.

Both edit the text projection `cond_emb` of the base masked/BAMM transformer and of the
residual transformer with the settings they share (block edit) and their own (block uce or
rece: the target prompt; RECE's adversarial rounds). Erased: the dataset's toxic keywords;
preserved: edit.preserve_words (+ sampled captions). Writes models/<ds>/<model>/<method>/
(method.json, trans/res.safetensors) and metrics/<ds>/<model>/<method>_unlearn.json.
"""

import sys
import time

import torch

from hmu.data.dataset import ProcessedDataset
from hmu.errors import exits_on_bad_input
from hmu.models.checkpoint import load_module, save_module
from hmu.models.text import load_text_encoder
from hmu.params import load_params, section
from hmu.params_schema import check_params
from hmu.unlearn.artefacts import base_pieces, method_dir, write_method
from hmu.unlearn.prompts import edit_embeddings, sampled_captions
from hmu.unlearn.rece import rece_edit
from hmu.unlearn.uce import edit_cond_embs

METHODS = ("uce", "rece")


def main(target: str) -> None:
    dataset, model, method = target.split("-")
    check_params("edit", method, "generator", f"toxicity.{dataset}.keywords")
    if method not in METHODS:
        raise ValueError(f"unlearn_edit: method must be one of {METHODS}, got {method!r}")
    params = load_params()
    edit, cfg, gen = (section(params, key) for key in ("edit", method, "generator"))
    keywords = section(params, f"toxicity.{dataset}.keywords")
    torch.set_num_threads(gen["threads"])
    out = method_dir(dataset, model, method)
    start = time.perf_counter()
    pieces = base_pieces(dataset, model)
    trans, res = load_module(pieces["trans"]), load_module(pieces["res"])
    encoder = load_text_encoder(gen["text_encoder"], weights_path=gen["clip_weights"])
    data = ProcessedDataset.open(dataset)
    seed = edit["seed"]
    erase_texts = keywords + sampled_captions(data, "forget", edit["erase_captions"], seed)
    keep_texts = edit["preserve_words"] + sampled_captions(
        data, "retain", edit["preserve_captions"], seed
    )
    erase, target_emb, preserve = edit_embeddings(encoder, erase_texts, cfg["target"], keep_texts)
    uce_params = {k: edit[k] for k in ("lam", "erase_scale", "preserve_scale", "values")}
    with torch.no_grad():
        if method == "uce":
            edit_cond_embs([trans, res], erase, target_emb, preserve, **uce_params)
        else:
            rece_edit(
                [trans, res],
                erase,
                target_emb,
                preserve,
                cfg["epochs"],
                cfg["reg"],
                uce_params,
                paper_code=cfg["paper_code"],
            )
    save_module(out / "trans.safetensors", trans)
    save_module(out / "res.safetensors", res)
    pieces = {
        **pieces,
        "trans": str(out / "trans.safetensors"),
        "res": str(out / "res.safetensors"),
    }
    seconds = time.perf_counter() - start
    write_method(dataset, model, method, pieces, {"method": method, **cfg, "edit": edit}, seconds)
    print(f"unlearn_edit@{target}: {seconds:.2f} s")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
