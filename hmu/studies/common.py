"""Shared helpers of the issue-14 studies (hmu.studies.<study>, stages/studies/<study>.py).

The studies reuse the main pipeline's models, judge and protocol: `load_method` loads a
method's generator and the judge of its dataset; `toxic_rates` measures both instruments on a
prompt list, `retain_quality` the retain FID and R@1 of the existing protocol; `interval` and
`paired_test` wrap hmu.eval.stats; `CodeReplay` samples a generator's codes once and decodes them
again with edited codebooks (LCR-style studies: the transformers never see the codebook, so an
edited model samples exactly the base model's codes); `study_params` validates a study's params
sub-block; `save_figure` writes a PNG atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ValidationError

from hmu.data.dataset import ProcessedDataset
from hmu.data.humanml import UNIT
from hmu.eval import stats
from hmu.eval.judge import load_judge, test_set
from hmu.eval.protocol import Judge, ProtocolConfig, evaluate_prompts, evaluate_set_samples
from hmu.io import atomic_path, write_json, write_text
from hmu.params import load_params, processed_dir
from hmu.params_schema import ParamsError
from hmu.timings import record_timing, since

INSTRUMENTS = ("toxic_rate", "kinematic_rate")  # classifier, kinematic strike detector
STUDIES_DIR = Path("metrics/studies")  # <study>/: <study>.json, figures, section.md
SAMPLES_DIR = Path("eval/studies")  # <study>/: per-sample arrays (DVC-cached)
REFERENCE = "retrain"  # the D_r model the excess rates are measured against


def study_dir(study: str, root: str | Path = STUDIES_DIR) -> Path:
    """metrics/studies/<study>: the study's JSON, figures and section.md."""
    return Path(root) / study


def write_study(study: str, result: dict, sections: Sequence[str], start: float) -> None:
    """A study's outputs: <study>.json (metrics, no timings) and section.md (its part of
    metrics/studies.md) in study_dir(study); its wall time goes to timings/ only."""
    write_json(study_dir(study) / f"{study}.json", result)
    write_text(study_dir(study) / "section.md", "\n\n".join(sections) + "\n")
    record_timing(f"studies/{study}", seconds=since(start))
    print(f"studies {study}: {since(start):.0f} s")


def study_params(study: str, config: type[BaseModel], params: dict | None = None):
    """(validated `studies.<study>` block as `config`, `studies.quick`) from params.yaml.

    Bad values raise ParamsError with one line naming the key, e.g.
    'params.yaml: studies.lcr_ablation.repetitions = 1: should be greater than or equal to 2'."""
    params = load_params() if params is None else params
    block = (params.get("studies") or {}) if isinstance(params, dict) else {}
    quick = block.get("quick", False)
    if not isinstance(quick, bool):
        raise ParamsError(f"params.yaml: studies.quick = {quick!r}: should be true or false")
    if study not in block:
        raise ParamsError(f"params.yaml: missing block studies.{study}")
    try:
        return config.model_validate(block[study]), quick
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in (study, *first["loc"]))
        value = f" = {first['input']!r}" if first["type"] != "missing" else ""
        msg = first["msg"].replace("Input should", "should").removeprefix("Value error, ")
        raise ParamsError(f"params.yaml: studies.{key}{value}: {msg}") from None


def protocol_config(params: dict, **overrides: int) -> ProtocolConfig:
    """The main pipeline's `protocol` block as a ProtocolConfig, with some fields replaced
    (e.g. fewer repetitions: the first repetitions then sample exactly as the main run's)."""
    return ProtocolConfig(**{**params["protocol"], **overrides}).validate()


def judge_folder(dataset: str) -> Path:
    """models/<ds>/evaluator: the judge trained by train_evaluator@<ds>."""
    return Path("models") / dataset / "evaluator"


def load_method(dataset: str, model: str, method: str, seed: int = 0, threads: int = 2):
    """(generator, judge) of models/<ds>/<model>/<method>, as the evaluate stage loads them
    (cached caption features of stage text_emb@<ds>, generation params of params.yaml)."""
    from hmu.generate import load_generator

    torch.set_num_threads(threads)
    data = ProcessedDataset.open(dataset)
    cache = (data.captions["caption"].tolist(), np.load(processed_dir(dataset) / "text_emb.npy"))
    generator = load_generator(dataset, model, method, seed=seed, text_cache=cache)
    return generator, load_judge(judge_folder(dataset))


def toxic_rates(
    generate, judge: Judge, prompts: Sequence[str], lengths, repetitions: int, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """{instrument: summary (mean, ci95, ci95_t, values)} of the generations for `prompts`,
    each generated `repetitions` times; a T2MGenerator is reseeded first (reproducible)."""
    if hasattr(generate, "reseed"):
        generate.reseed(seed)
    proto = ProtocolConfig(repetitions=max(repetitions, 2), seed=seed)
    result = evaluate_prompts(
        list(prompts), np.asarray(lengths), generate, judge, proto, repetitions
    )
    return {name: result.metrics[name] for name in INSTRUMENTS if name in result.metrics}


def retain_quality(
    generate, judge: Judge, data: ProcessedDataset, proto: ProtocolConfig, dataset: str
) -> dict[str, dict[str, Any]]:
    """{"fid", "r1"} summaries on the retain test set with the existing protocol (a
    T2MGenerator is reseeded at proto.seed first, as the evaluate stage does)."""
    if hasattr(generate, "reseed"):
        generate.reseed(proto.seed)
    test = test_set(data, "retain", judge_folder(dataset))
    metrics = evaluate_set_samples(test, generate, judge, proto, progress=False).metrics
    return {"fid": metrics["fid"], "r1": metrics["r1"]}


def main_result(dataset: str, model: str, method: str, root: str | Path = "metrics") -> dict:
    """The main pipeline's metrics/<ds>/<model>/<method>.json (clear error when missing)."""
    path = Path(root) / dataset / model / f"{method}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run `dvc repro evaluate@{dataset}-{model}-"
                                f"{method}` (the main pipeline) first")  # fmt: skip
    return json.loads(path.read_text(encoding="utf-8"))


def interval(values) -> dict[str, Any]:
    """{"mean", "ci95", "ci95_t", "values"} of per-repetition values (hmu.eval.stats)."""
    return stats.summarize(values)


def paired_test(a_values, b_values, goal: str = "down") -> dict[str, Any]:
    """a - b per repetition (mean, t-interval) and the one-sided paired-t p-value of "a is
    better than b" (goal: down = lower is better, up = higher)."""
    return {
        "difference": stats.paired_difference(a_values, b_values),
        "p_value": stats.paired_t_p_value(a_values, b_values, goal),
    }


def save_figure(fig, path: str | Path) -> None:
    """Save a matplotlib figure (pyplot's or a bare Figure) as PNG atomically (a temp file
    renamed), without the version metadata (same bytes for the same plot), then close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


class Call(NamedTuple):
    """One generator call: its texts, lengths (frames) and sampled codes, kept per batch as
    generated: chunks [(codes (b, n, Q), token lengths (b,))] (decoding must see the same
    sequence widths, the VQ decoder being convolutional)."""

    texts: tuple[str, ...]
    lengths: np.ndarray
    chunks: list[tuple[torch.Tensor, torch.Tensor]]

    def layer_codes(self, layer: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """One layer's codes (B, N_max) int64, -1 past each motion's token length, and the
        token lengths (B,)."""
        width = max(codes.shape[1] for codes, _ in self.chunks)
        out = np.full((len(self.texts), width), -1, dtype=np.int64)
        lengths = np.concatenate([tl.cpu().numpy() for _, tl in self.chunks]).astype(np.int64)
        row = 0
        for codes, _ in self.chunks:
            out[row : row + len(codes), : codes.shape[1]] = codes[..., layer].cpu().numpy()
            row += len(codes)
        out[np.arange(width)[None, :] >= lengths[:, None]] = -1
        return out, lengths


class CodeReplay:
    """Generator interface (texts, lengths) -> raw features (B, T_max, 263) that samples each
    call's codes once with `generator`'s transformers and decodes them with its current VQ.

    The first pass records every call; after `rewind()` the same calls (checked) are decoded
    again without sampling, e.g. after editing the VQ's codebooks. Sampling splits calls into
    the generator's batches exactly as T2MGenerator.__call__ does, so a first pass after
    reseed(s) gives the same motions as the generator itself after reseed(s).
    """

    def __init__(self, generator):
        self.generator = generator
        self.calls: list[Call] = []
        self.position = 0

    def reseed(self, seed: int) -> None:
        """Reseed the generator (only matters while recording)."""
        self.generator.reseed(seed)

    def rewind(self) -> None:
        """Replay the recorded calls from the first one."""
        self.position = 0

    def _sample(self, texts: list[str], lengths: np.ndarray) -> Call:
        gen = self.generator
        chunks = []
        for part in gen._chunks(len(texts)):
            wanted = torch.as_tensor(lengths[part] // UNIT, device=gen.device).long()
            chunks.append(gen._codes(gen.embed(texts[part]), wanted))  # (b, n, Q), (b,)
        return Call(tuple(texts), lengths.copy(), chunks)

    def __call__(self, texts: Sequence[str], lengths) -> np.ndarray:
        texts, lengths = list(texts), np.asarray(lengths, dtype=np.int64)
        if self.position < len(self.calls):
            call = self.calls[self.position]
            if call.texts != tuple(texts) or not np.array_equal(call.lengths, lengths):
                raise ValueError(f"CodeReplay: call {self.position} differs from the recorded one")
        else:
            call = self._sample(texts, lengths)
            self.calls.append(call)
        self.position += 1
        return self.decode(call)

    def decode(self, call: Call) -> np.ndarray:
        """Raw features (B, max(lengths), 263) of a call's codes with the current VQ."""
        gen = self.generator
        frames = int(call.lengths.max())
        parts = [gen._decode(codes, token_lengths, frames) for codes, token_lengths in call.chunks]
        return np.concatenate(parts)
