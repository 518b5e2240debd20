"""Upstream-format files with random weights at small sizes (no download): MoMask/BAMM
checkpoints in the upstream key layout (torch.save of {upstream key: state dict}, as
tests/data/official_keys.json lists), a tiny CLIP text state dict, the released evaluator's
finest.tar and its GloVe files.

Not a test module: the tests import it (pytest puts tests/ on sys.path).
"""

import pickle
from pathlib import Path

import numpy as np
import torch

from hmu.models.bamm import BAMMTransformer
from hmu.models.evaluator import Evaluator
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.models.rvq import RVQVAE

K, CLIP_DIM = 24, 16  # codebook size, text width of the tiny CLIP
# upstream layer counts (8 transformer layers, 6 quantizers, depth-3 ResNets): the key sets
# equal the upstream ones; only the widths are small
BODY = dict(num_tokens=K, code_dim=16, latent_dim=24, ff_size=32, num_layers=8, num_heads=6)
EVALUATOR_PARTS = ("movement_encoder", "text_encoder", "motion_encoder")


def tiny_clip_state(width: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """CLIP text-tower weights in OpenAI's key layout: one block, CLIP's vocabulary size."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen) * shape[-1] ** -0.5

    p = "transformer.resblocks.0."
    return {
        "token_embedding.weight": randn(49408, width),
        "positional_embedding": randn(77, width),
        "ln_final.weight": torch.ones(width),
        "ln_final.bias": torch.zeros(width),
        "text_projection": randn(width, CLIP_DIM),
        p + "attn.in_proj_weight": randn(3 * width, width),
        p + "attn.in_proj_bias": torch.zeros(3 * width),
        p + "attn.out_proj.weight": randn(width, width),
        p + "attn.out_proj.bias": torch.zeros(width),
        p + "ln_1.weight": torch.ones(width),
        p + "ln_1.bias": torch.zeros(width),
        p + "mlp.c_fc.weight": randn(4 * width, width),
        p + "mlp.c_fc.bias": torch.zeros(4 * width),
        p + "mlp.c_proj.weight": randn(width, 4 * width),
        p + "mlp.c_proj.bias": torch.zeros(width),
        p + "ln_2.weight": torch.ones(width),
        p + "ln_2.bias": torch.zeros(width),
    }


def upstream_files(folder: Path, seed: int) -> dict:
    """Random upstream-format checkpoints (torch.save of {upstream key: state dict}) and the
    VQ's meta mean/std -> a source block (kind pretrained) naming them."""
    torch.manual_seed(seed)
    vq = RVQVAE(nb_code=K, code_dim=16, output_emb_width=16, width=16)
    for layer in vq.quantizer.layers:
        layer.set_codebook(torch.randn(K, 16))
    nets = {
        "vq": ("vq_model", vq),
        "momask": ("t2m_transformer", MaskTransformer(**BODY, clip_dim=CLIP_DIM)),
        "bamm": ("t2m_transformer", BAMMTransformer(**BODY, clip_dim=CLIP_DIM)),
        "res": ("res_transformer", ResidualTransformer(**BODY, clip_dim=CLIP_DIM)),
        "length": ("estimator", LengthEstimator(CLIP_DIM, 50, 32)),
    }
    folder.mkdir(parents=True)
    paths = {}
    for name, (key, net) in nets.items():
        paths[name] = str(folder / f"{name}.tar")
        torch.save({key: net.state_dict(), "ep": 1}, paths[name])
    for name, value in (("mean", 0.1), ("std", 2.0)):
        paths[name] = str(folder / f"{name}.npy")
        np.save(paths[name], np.full(263, value, np.float32))
    paths["trans"] = {"momask": paths.pop("momask"), "bamm": paths.pop("bamm")}
    return {"kind": "pretrained", **paths}


def write_glove(folder: Path, words: list[str], dim: int) -> None:
    """Upstream's GloVe files: our_vab_data.npy (V, dim), _words.pkl, _idx.pkl."""
    folder.mkdir()
    np.save(
        folder / "our_vab_data.npy", np.random.default_rng(0).standard_normal((len(words), dim))
    )
    (folder / "our_vab_words.pkl").write_bytes(pickle.dumps(words))
    (folder / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(words)}))


def released_evaluator(folder: Path, words: list[str], seed: int = 0) -> dict:
    """The released judge's files, random weights: finest.tar (movement, text and motion
    encoders) and the GloVe folder -> the params block evaluator.{checkpoint, glove_dir}."""
    torch.manual_seed(seed)
    released = Evaluator(263, 16, 16, 8, 15, 16, 16, 16)
    folder.mkdir(parents=True, exist_ok=True)
    state = {part: getattr(released, part).state_dict() for part in EVALUATOR_PARTS}
    torch.save(state, folder / "finest.tar")
    write_glove(folder / "glove", words, dim=8)
    return {"checkpoint": str(folder / "finest.tar"), "glove_dir": str(folder / "glove")}
