"""Bring your own checkpoints: where the generator pieces and the judge come from.

params `source.<ds>.<subset>` (subset `all` = the base model, `retain` = the D_r reference)
chooses for each dataset and subset:

    train       the stages train_vq / train_trans / train_res train the pieces (the default)
    pretrained  the same stages import upstream MoMask/BAMM files (hmu.models.official) into
                the same output folders, in HMU's format, and train nothing; tokenize, unlearn,
                evaluate and report run unchanged on the imported weights
    none        (retain only) no D_r reference: the retain stages write a marker (absent.json,
                or {"absent": reason} in a metrics file) instead of their artefacts, the
                method retrain is absent, the other methods' `excess` blocks are null with
                the reason in meta.excess, and the report says that "-> D_r" has no reference

DVC cannot drop stages by a param, so the switch lives inside the stages, and the checkpoint
paths are params (a new path reruns the import; a file replaced at the same path does not:
each import records the files' sha256 in import.json, which it writes instead of train.json).
`evaluator.checkpoint` likewise makes train_evaluator load the released judge instead of
training one (`upstream_evaluator`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from hmu.data.dataset import ProcessedDataset
from hmu.errors import one_line
from hmu.io import atomic_path, write_json
from hmu.models import official
from hmu.models.checkpoint import save_module, save_vq

SOURCE_KINDS = ("train", "pretrained", "none")
TRANSFORMER_KINDS = {"momask": "mask_transformer", "bamm": "bamm_transformer"}


def source(params: dict[str, Any], dataset: str, subset: str) -> dict[str, Any]:
    """The block source.<ds>.<subset> with its kind (train when the block is absent)."""
    block = ((params.get("source") or {}).get(dataset) or {}).get(subset) or {}
    return {"kind": "train", **block}


def _kind(params: dict[str, Any], dataset: str, subset: str) -> str:
    kind = source(params, dataset, subset)["kind"]
    if kind not in SOURCE_KINDS:
        raise ValueError(f"params.yaml source.{dataset}.{subset}.kind = {kind!r}: {SOURCE_KINDS}")
    if kind == "none" and subset != "retain":
        raise ValueError(
            f"params.yaml source.{dataset}.{subset}.kind = none: only the D_r reference "
            f"(source.{dataset}.retain) can be left out; set train or pretrained"
        )
    return kind


def is_pretrained(params: dict[str, Any], dataset: str, subset: str) -> bool:
    """True when the pair's pieces are imported, False when trained or left out (kind none)."""
    return _kind(params, dataset, subset) == "pretrained"


def is_left_out(params: dict[str, Any], dataset: str, subset: str) -> bool:
    """True when the subset has no model at all (source.<ds>.retain.kind none: no D_r)."""
    return _kind(params, dataset, subset) == "none"


ABSENT_FILE = "absent.json"


def no_reference_reason(dataset: str) -> str:
    """Why a D_r artefact is absent, in the words every marker and the report use."""
    return f"no D_r reference: params.yaml source.{dataset}.retain.kind is none"


def write_absent(folder: str | Path, reason: str) -> None:
    """Mark an output folder as deliberately empty: folder/absent.json {"absent": reason}."""
    write_json(Path(folder) / ABSENT_FILE, {"absent": reason})


def absent_reason(*paths: str | Path) -> str | None:
    """The reason of the first marker among `paths` (a folder with absent.json, a JSON or .npz
    file holding "absent"), None when none is a marker."""
    for path in map(Path, paths):
        if (path / ABSENT_FILE).is_file():
            return json.loads((path / ABSENT_FILE).read_text(encoding="utf-8"))["absent"]
        if path.suffix == ".json" and path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "absent" in data:
                return data["absent"]
        if path.suffix == ".npz" and path.is_file():
            with np.load(path) as npz:
                if "absent" in npz.files:
                    return str(npz["absent"])
    return None


def write_absent_npz(path: str | Path, reason: str) -> None:
    """An .npz output that holds only the reason it is empty (array "absent")."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, absent=np.array(reason))


class _Source:
    """The files of one source block, each read with an error naming its param."""

    def __init__(self, params: dict[str, Any], dataset: str, subset: str):
        self.block = source(params, dataset, subset)
        self.prefix = f"source.{dataset}.{subset}"
        self.used: dict[str, Path] = {}

    def path(self, field: str, required: bool = True) -> Path | None:
        """The file of `field` (dotted, e.g. 'trans.momask'); None when optional and empty."""
        value: Any = self.block
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not value:
            if not required:
                return None
            raise ValueError(
                f"params.yaml {self.prefix}.{field} is empty: set it (kind pretrained)"
            )
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"params.yaml {self.prefix}.{field} = {path}: file not found")
        self.used[field] = path
        return path

    def load(self, field: str, kind: str, required: bool = True) -> nn.Module | None:
        """Our module of `kind` from the upstream file of `field` (None if optional and empty)."""
        path = self.path(field, required)
        if path is None:
            return None
        try:
            return official.load(path, kind)
        except ValueError as err:
            raise ValueError(
                f"params.yaml {self.prefix}.{field} = {path}: {one_line(err)}"
            ) from None

    def check(self, field: str, what: str, got: int, expected: int, fix: str) -> None:
        """One-line error when the imported `what` differs from what the data expects."""
        if got != expected:
            raise ValueError(
                f"params.yaml {self.prefix}.{field} = {self.used.get(field)}: {what} {got}, "
                f"but {expected} expected ({fix})"
            )

    def record(self, out: Path) -> None:
        """out/import.json: the imported files and their sha256 (in place of train.json)."""
        files = {name: {"path": str(p), "sha256": _sha256(p)} for name, p in self.used.items()}
        write_json(out / "import.json", {"source": "pretrained", "files": files})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stats(src: _Source, field: str, width: int) -> np.ndarray:
    """meta/mean.npy or meta/std.npy of the upstream VQ: (width,) float32."""
    path = src.path(field)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"params.yaml {src.prefix}.{field} = {path}: not a .npy ({err})") from None
    if not isinstance(array, np.ndarray):  # an .npz or zip archive
        raise ValueError(f"params.yaml {src.prefix}.{field} = {path}: not a single .npy array")
    array = array.astype(np.float32)
    src.check(field, "length", int(array.size), width, "the VQ's meta/mean.npy and meta/std.npy")
    return array.reshape(width)


def import_vq(params: dict[str, Any], dataset: str, subset: str, out: Path) -> None:
    """train_vq under kind pretrained: the upstream RVQ-VAE (source.vq) with the mean/std its
    inputs and outputs are normalised with (source.mean/std) -> out/vq.safetensors."""
    src = _Source(params, dataset, subset)
    vq = src.load("vq", "rvq")
    width = vq.hparams["input_width"]
    save_vq(out / "vq.safetensors", vq, _stats(src, "mean", width), _stats(src, "std", width))
    src.record(out)


def _data_sizes(dataset: str, subset: str) -> dict[str, int]:
    """What the imported transformers must fit: the codebook and layers of the subset's tokens
    (made by the imported VQ) and the width of the text features (text_emb.npy)."""
    data = ProcessedDataset.open(dataset)
    table = data.tokens(subset)
    emb = np.load(data.folder / "text_emb.npy", mmap_mode="r")
    return {
        "nb_code": table.nb_code,
        "layers": int(table.tokens.shape[2]),
        "clip_dim": emb.shape[1],
    }


TEXT_FIX = "generator.text_encoder must be clip with generator.clip_weights set, as upstream"


def _check_body(src: _Source, field: str, config: dict, sizes: dict[str, int]) -> None:
    src.check(field, "codebook size", config["num_tokens"], sizes["nb_code"], "source vq")
    src.check(field, "text width", config["clip_dim"], sizes["clip_dim"], TEXT_FIX)


def import_transformer(
    params: dict[str, Any], dataset: str, model: str, subset: str, out: Path
) -> None:
    """train_trans under kind pretrained: MoMask's masked or BAMM's transformer
    (source.trans.<model>) -> out/trans.safetensors, and the length estimator (source.length,
    optional: only free generation needs it) -> out/length.safetensors."""
    src, sizes = _Source(params, dataset, subset), _data_sizes(dataset, subset)
    field = f"trans.{model}"
    net = src.load(field, TRANSFORMER_KINDS[model])
    _check_body(src, field, net.config, sizes)
    save_module(out / "trans.safetensors", net)
    estimator = src.load("length", "length_estimator", required=False)
    if estimator is not None:
        got = estimator.config["input_size"]
        src.check("length", "text width", got, sizes["clip_dim"], TEXT_FIX)
        save_module(out / "length.safetensors", estimator)
    src.record(out)


def import_residual(params: dict[str, Any], dataset: str, subset: str, out: Path) -> None:
    """train_res under kind pretrained: the residual transformer (source.res) ->
    out/res.safetensors."""
    src, sizes = _Source(params, dataset, subset), _data_sizes(dataset, subset)
    net = src.load("res", "residual_transformer")
    _check_body(src, "res", net.config, sizes)
    src.check("res", "quantizer layers", net.config["num_quantizers"], sizes["layers"], "source vq")
    save_module(out / "res.safetensors", net)
    src.record(out)


def upstream_evaluator(cfg: dict[str, Any], mean: np.ndarray, std: np.ndarray):
    """The released judge (evaluator.checkpoint, text_mot_match finest.tar) with the GloVe
    vocabulary it was trained on (evaluator.glove_dir) and the dataset's Mean/Std (upstream's
    evaluator meta equals HumanML3D's), or None when evaluator.checkpoint is empty."""
    from hmu.models.evaluator import load_official

    path = cfg.get("checkpoint")
    if not path:
        return None
    if not cfg.get("glove_dir"):
        raise ValueError(
            "params.yaml evaluator.checkpoint needs evaluator.glove_dir (the folder of "
            "our_vab_data.npy/_words.pkl/_idx.pkl the released text encoder reads)"
        )
    if not Path(path).is_file():
        raise FileNotFoundError(f"params.yaml evaluator.checkpoint = {path}: file not found")
    try:
        return load_official(path, cfg["glove_dir"], mean, std)
    except (ValueError, FileNotFoundError) as err:
        where = f"evaluator.checkpoint = {path} (glove_dir {cfg['glove_dir']})"
        raise ValueError(f"params.yaml {where}: {one_line(err)}") from None
