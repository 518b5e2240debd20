"""The schema of params.yaml: types, ranges and allowed values of every key.

Stages call `check_params(<their blocks>)` first thing, so a bad value (`dvc exp run -S
lcr.r=abc`) stops the stage with one line naming the key, the value and what is allowed,
instead of failing deep inside it; `hmu check-params` checks the whole file.

Blocks are strict (no int from a string, no int from 3.5; a float key accepts an int) and
forbid unknown keys, which catches typos: a new params key needs its field here. Optional
fields (default None) are the ones whose stage has a default of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hmu.params import PARAMS_FILE, load_params

Seed = Annotated[int, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
Threads = Annotated[int, Field(ge=1, le=256)]
Share = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Words = Annotated[list[str], Field(min_length=1)]

METHODS = Literal["retrain", "base", "finetune", "finetune_all", "uce", "rece", "lcr"]
LAYOUTS = Literal["humanml3d", "motionx"]


class ParamsError(ValueError):
    """A params.yaml value outside the schema; the message is one line."""


class Block(BaseModel):
    """A params block: strict types, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class SynthBlock(Block):
    """synth.<ds>: the embedded benchmark (hmu.data.synth.SynthConfig checks action names)."""

    layout: LAYOUTS
    motions: Positive
    seed: Seed
    mirror: bool | None = None
    toxic_share: Share
    implicit_share: Share | None = None
    two_toxic_share: Share | None = None
    actions_per_motion: Annotated[list[NonNegative], Field(min_length=3, max_length=3)] | None = (
        None
    )
    test_forget: Count
    test_retain: Count
    val_share: Share | None = None
    toxic_mix: dict[str, NonNegative] | None = None
    safe_mix: dict[str, NonNegative] | None = None
    keywords: Literal["", "humanml3d", "motionx"] | None = None
    up_axis: Literal["y", "z"] | None = None
    subsets: Words | None = None
    random_facing: bool | None = None
    groundtruth_joints: bool | None = None
    workers: Threads | None = None


class DataBlock(Block):
    """data.<ds>: where a dataset lives and how its import treats bad clips."""

    format: LAYOUTS
    root: Annotated[str, Field(min_length=1)]
    on_error: Literal["skip", "fail"]
    body_model: str | None = None
    gender: Literal["neutral", "male", "female"] | None = None
    up_axis: Literal["y", "z"] | None = None


class TextBlock(Block):
    retag: bool
    batch_size: Positive


class ToxicityBlock(Block):
    keywords: Words
    concept: Annotated[str, Field(min_length=1)]


class EvaluatorTrainBlock(Block):
    """evaluator.train: overrides of hmu.train.evaluator.DEFAULT_PARAMS."""

    dim_movement_hidden: Positive | None = None
    dim_movement_latent: Positive | None = None
    dim_text_hidden: Positive | None = None
    dim_motion_hidden: Positive | None = None
    dim_coemb: Positive | None = None
    min_count: Positive | None = None
    ae_epochs: Count | None = None
    ae_batch_size: Positive | None = None
    ae_window: Positive | None = None
    ae_lr: PositiveFloat | None = None
    lambda_sparsity: NonNegative | None = None
    lambda_smooth: NonNegative | None = None
    epochs: Count | None = None
    batch_size: Annotated[int, Field(ge=2)] | None = None
    lr: PositiveFloat | None = None
    margin: PositiveFloat | None = None
    grad_clip: NonNegative | None = None
    val_fraction: Annotated[float, Field(gt=0, lt=1)] | None = None
    unit_length: Positive | None = None
    max_motion_len: Positive | None = None


class InstrumentsBlock(Block):
    """hmu.eval.instruments: the calibration rule and the action classifier's overrides."""

    max_fpr: Annotated[float, Field(ge=0, lt=1)]
    classifier: dict[str, Any] = {}


class EvaluatorBlock(Block):
    seed: Seed
    threads: Threads
    glove_dir: str | None = None
    checkpoint: str | None = None  # released finest.tar: load it, train no evaluator
    instruments: InstrumentsBlock
    train: EvaluatorTrainBlock


class ProtocolBlock(Block):
    """protocol: a 95% CI needs at least two repetitions (one gives a CI of exactly 0)."""

    repetitions: Annotated[int, Field(ge=2)]
    mm_replications: Annotated[int, Field(ge=2)]
    mm_batches: Positive
    diversity_times: Positive
    mm_times: Positive
    mm_repetitions: Positive
    prompt_repetitions: Annotated[int, Field(ge=2)]
    seed: Seed


class SubsetBlock(Block):
    subset: Literal["all", "retain"]


class EditBlock(Block):
    preserve_words: list[str]
    preserve_captions: Count
    erase_captions: Count
    seed: Seed
    lam: NonNegative
    erase_scale: NonNegative
    preserve_scale: NonNegative
    values: Literal["target", "orthogonal"]


class UceBlock(Block):
    target: str


class ReceBlock(Block):
    target: str
    epochs: Count
    reg: NonNegative
    paper_code: bool


class LcrBlock(Block):
    r: Positive
    alpha: NonNegative
    layers: Annotated[list[Count], Field(min_length=1)]
    rule: Literal["ratio", "union"]
    absent_guard: Literal["paper", "clamp", "add_one"]
    one_target: bool
    min_support: Positive
    seed: Seed


class TrainBlock(Block):
    """A training schedule (hmu.train.loop.TrainConfig); unset keys keep its defaults."""

    steps: Positive | None = None
    batch_size: Positive | None = None
    lr: PositiveFloat | None = None
    weight_decay: NonNegative | None = None
    betas: Annotated[list[Share], Field(min_length=2, max_length=2)] | None = None
    warmup_steps: Count | None = None
    milestones: list[Count] | None = None
    gamma: PositiveFloat | None = None
    grad_clip: NonNegative | None = None
    checkpoint_every: Positive | None = None
    log_every: Positive | None = None
    seed: Seed | None = None


class TrainingSeedBlock(Block):
    """train: the training-seed offset of a pipeline run (hmu.params.train_seed)."""

    seed: Seed = 0


class FinetuneBlock(Block):
    epochs: PositiveFloat
    residual: bool
    train: TrainBlock


class GeneratorBlock(Block):
    text_encoder: Literal["minilm", "clip"]
    clip_weights: str | None = None
    threads: Threads


class SourceBlock(Block):
    """source.<ds>.<subset>: train the generator pieces, or import upstream files (hmu.pretrained;
    the paths are checked by the stages, which name the empty or missing one)."""

    kind: Literal["train", "pretrained", "none"] = "train"
    vq: str | None = None  # net_best_fid.tar of the RVQ-VAE
    mean: str | None = None  # its meta/mean.npy
    std: str | None = None  # its meta/std.npy
    res: str | None = None  # residual transformer .tar
    trans: dict[Literal["momask", "bamm"], str | None] = {}  # masked / BAMM transformer .tar
    length: str | None = None  # length estimator finest.tar (optional: free generation only)


class SourcesBlock(Block):
    """source.<ds>: the base model (all) and the D_r reference (retain)."""

    all: SourceBlock = SourceBlock()
    retain: SourceBlock = SourceBlock()

    @model_validator(mode="after")
    def _all_is_not_none(self) -> SourcesBlock:
        if self.all.kind == "none":
            raise ValueError("all.kind = none: the base model is needed (train or pretrained)")
        return self


class ProfileBlock(Block):
    """<model>.<profile>: constructor overrides (checked by the model) and a schedule."""

    model: dict[str, Any] | None = None
    train: TrainBlock


class ProfilesBlock(Block):
    """<model>: one block per profile (the stage needs the active one)."""

    small: ProfileBlock | None = None
    paper: ProfileBlock | None = None


class VqBlock(ProfilesBlock):
    window: Annotated[int, Field(ge=4, multiple_of=4)]


class PromptsBlock(Block):
    """Stage prompts@<ds> (hmu.data.prompts.implicit_prompt_table)."""

    seed: Seed
    seen: Count
    heldout: Count
    mirrors: bool


class GalleryBlock(Block):
    """Stage gallery (hmu.viz.gallery)."""

    per_kind: Positive
    seed: Seed
    fps: Literal[1, 2, 4, 5, 10, 20]


class PrecisionBlock(Block):
    train: Literal["fp32", "bf16"]
    generate: Literal["fp32", "bf16"]


class BammBlock(Block):
    refine: Literal["upstream", "cached"]


class GenerationBlock(Block):
    timesteps: Positive
    cond_scale: float
    res_cond_scale: float
    refine_cond_scale: float
    temperature: PositiveFloat
    topk: Annotated[float, Field(gt=0, le=1)]
    batch_size: Positive


class Params(Block):
    """The whole params.yaml. A new top-level block needs a field here."""

    datasets: Words
    models: Annotated[list[Literal["momask", "bamm"]], Field(min_length=1)]
    methods: Annotated[list[METHODS], Field(min_length=1)]
    profile: Literal["small", "paper"]
    synth: dict[str, SynthBlock] = {}
    data: dict[str, DataBlock]
    text: TextBlock
    toxicity: dict[str, ToxicityBlock]
    evaluator: EvaluatorBlock
    protocol: ProtocolBlock
    prompts: PromptsBlock
    base: SubsetBlock
    finetune_all: SubsetBlock
    retrain: SubsetBlock
    edit: EditBlock
    uce: UceBlock
    rece: ReceBlock
    lcr: LcrBlock
    finetune: FinetuneBlock
    train: TrainingSeedBlock = TrainingSeedBlock()
    generator: GeneratorBlock
    source: dict[str, SourcesBlock] = {}
    vq: VqBlock
    trans: ProfilesBlock
    res: ProfilesBlock
    length: ProfilesBlock
    generation: GenerationBlock
    bamm: BammBlock
    gallery: GalleryBlock
    precision: PrecisionBlock
    studies: dict[str, Any] = {}  # validated per study by hmu.studies.<study>.Config

    @model_validator(mode="after")
    def _datasets_are_configured(self) -> Params:
        for name in self.datasets:
            for block in ("data", "toxicity"):
                if name not in getattr(self, block):
                    raise ValueError(f"datasets lists {name!r} but {block}.{name} is missing")
        return self


def _describe(error: dict, source: str) -> str:
    """'<file>: <key> = <value>: <what is allowed>' for one pydantic error."""
    key = ".".join(str(part) for part in error["loc"]) or "<top>"
    if error["type"] == "extra_forbidden":
        return (
            f"{source}: unknown key {key} (a typo? new keys need a field in hmu/params_schema.py)"
        )
    if error["type"] == "missing":
        return f"{source}: missing key {key}"
    if not error["loc"]:
        return f"{source}: {error['msg'].removeprefix('Value error, ')}"
    value = error.get("input")
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return f"{source}: {key} = {shown}: {error['msg'].replace('Input should', 'should')}"


def _matches(error: dict, blocks: tuple[str, ...]) -> bool:
    loc = [str(part) for part in error["loc"]]
    return any(loc[: len(b.split("."))] == b.split(".") for b in blocks)


def validate_params(params: dict[str, Any], *blocks: str, source: str = "params.yaml") -> None:
    """Raise ParamsError (one line per problem, joined by '; ') unless `params` fits the schema.

    With `blocks` (dotted keys, e.g. "lcr", "toxicity.humanml3d") only problems inside them
    count, so a stage is not stopped by a block it does not read.
    """
    if not isinstance(params, dict):
        raise ParamsError(f"{source}: expected a mapping of blocks, got {type(params).__name__}")
    try:
        Params.model_validate(params)
    except ValidationError as err:
        problems = [e for e in err.errors() if not blocks or _matches(e, blocks)]
        if problems:
            raise ParamsError("; ".join(_describe(e, source) for e in problems)) from None


def check_params(*blocks: str, path: str | Path = PARAMS_FILE) -> None:
    """Load params.yaml and validate `blocks` of it (all of it without blocks): the first line
    of every stage, before it touches an output."""
    try:
        params = load_params(path)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    validate_params(params, *blocks, source=str(path))
