"""Stage unlearn@<ds>-<model>-<method>: produce the unlearned model of one method.

Methods: base (the model trained on all data), retrain (the D_r reference), finetune (base
transformers fine-tuned on D_r), uce and rece (closed-form edits of the text projection
`cond_emb` of the masked/BAMM and residual transformers), lcr (Latent Code Replacement in the
VQ codebook, saved as a small delta applied at load time). Writes
models/<ds>/<model>/<method>/method.json (+ artefacts) and
metrics/<ds>/<model>/<method>_unlearn.json.
"""

import sys
import time

import numpy as np
import torch

from hmu.data.dataset import ProcessedDataset
from hmu.io import write_json
from hmu.models.text import load_text_encoder, pooled_word_embedding
from hmu.params import load_params, processed_dir, section
from hmu.train.checkpoint import load_state, save_model, save_state
from hmu.train.generators import load_module
from hmu.unlearn import lcr
from hmu.unlearn.artefacts import base_pieces, method_dir, write_method
from hmu.unlearn.rece import rece_edit
from hmu.unlearn.uce import edit_cond_embs


def _sampled_captions(dataset: str, subset: str, count: int, seed: int) -> list[str]:
    """`count` random training captions of the forget or retain set (none if count is 0)."""
    if count <= 0:
        return []
    data = ProcessedDataset.open(dataset)
    ids = set(data.store.table["motion_id"].to_numpy()[data.select("train", subset)])
    captions = data.captions[data.captions["motion_id"].isin(ids)]["caption"]
    return captions.sample(min(count, len(captions)), random_state=seed).tolist()


def _edit_embeddings(params, dataset, cfg):
    """erase / target / preserve text embeddings for UCE and RECE.

    erase: the concept's keywords (+ `erase_captions` forget captions); target: cfg.target
    ("" by default); preserve: `preserve_words` (+ `preserve_captions` retain captions).
    """
    gen = section(params, "generator")
    encoder = load_text_encoder(gen["text_encoder"], weights_path=gen["clip_weights"])
    keywords = section(params, f"toxicity.{dataset}.keywords")
    erase_texts = keywords + _sampled_captions(
        dataset, "forget", cfg["erase_captions"], cfg["seed"]
    )
    preserve_texts = cfg["preserve_words"] + _sampled_captions(
        dataset, "retain", cfg["preserve_captions"], cfg["seed"]
    )
    erase = pooled_word_embedding(erase_texts, encoder)
    target = pooled_word_embedding([cfg["target"]], encoder)[0]
    preserve = pooled_word_embedding(preserve_texts, encoder) if preserve_texts else None
    return erase, target, preserve


def _closed_form(params, dataset, model, method, out):
    cfg = section(params, method)
    pieces = base_pieces(dataset, model)
    trans, res = load_module(pieces["trans"]), load_module(pieces["res"])
    erase, target, preserve = _edit_embeddings(params, dataset, cfg)
    uce_params = {k: cfg[k] for k in ("lam", "erase_scale", "preserve_scale", "values")}
    with torch.no_grad():
        if method == "uce":
            edit_cond_embs([trans, res], erase, target, preserve, **uce_params)
        else:
            rece_edit(
                [trans, res],
                erase,
                target,
                preserve,
                cfg["epochs"],
                cfg["reg"],
                uce_params,
                paper_code=cfg["paper_code"],
            )
    save_model(out / "trans.safetensors", trans, trans.config)
    save_model(out / "res.safetensors", res, res.config)
    return {**pieces, "trans": str(out / "trans.safetensors"), "res": str(out / "res.safetensors")}


def _lcr(params, dataset, model, out):
    cfg = section(params, "lcr")
    pieces = base_pieces(dataset, model)
    data = ProcessedDataset.open(dataset)
    cached = np.load(processed_dir(dataset) / "tokens_all.npz")
    tokens = cached["tokens"]
    forget, retain = data.select("train", "forget"), data.select("train", "retain")
    vq_state, _ = load_state(f"{pieces['vq']}/vq.safetensors")
    delta = lcr.lcr_delta(
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
    flat = {}
    for layer, (indices, vectors) in delta.items():
        flat[f"{layer}.indices"] = torch.as_tensor(indices)
        flat[f"{layer}.vectors"] = torch.as_tensor(vectors)
    save_state(out / "lcr_delta.safetensors", flat, {"layers": sorted(delta), **cfg})
    return {**pieces, "lcr_delta": str(out / "lcr_delta.safetensors")}


def main(target: str) -> None:
    dataset, model, method = target.split("-")
    params = load_params()
    out = method_dir(dataset, model, method)
    start = time.perf_counter()
    if method in ("base", "retrain"):
        pieces = base_pieces(dataset, model, section(params, f"{method}.subset"))
    elif method in ("uce", "rece"):
        pieces = _closed_form(params, dataset, model, method, out)
    elif method == "lcr":
        pieces = _lcr(params, dataset, model, out)
    elif method == "finetune":
        from hmu.unlearn.finetune import finetune

        pieces = finetune(params, dataset, model, out)
    else:
        raise ValueError(f"unknown unlearning method {method!r}")
    seconds = time.perf_counter() - start
    write_method(dataset, model, method, pieces, {"seconds": seconds})
    write_json(f"metrics/{dataset}/{model}/{method}_unlearn.json", {"unlearn_seconds": seconds})
    print(f"unlearn@{target}: {seconds:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1])
