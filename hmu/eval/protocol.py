"""The evaluation protocol of the benchmark: one code path for every model and method.

A generator is any callable `generate(texts: list[str], lengths: (B,) frames) -> (B, T, 263)`
raw (un-normalised) HumanML3D features, zero past each length. The protocol follows the
upstream text-to-motion evaluation (momask-codes utils/eval_t2m.py, after Guo et al. 2022):

- per repetition, every test motion gets one random caption and a length cropped to a multiple
  of 4 (one unit shorter with probability 1/3) with a random window; motions are shuffled and
  cut into batches of 32 (drop_last); the generator receives the captions and ground-truth lengths;
- FID between real and generated motion embeddings, R-precision and matching distance per
  32x32 batch, Diversity over the generated embeddings, MultiModality on the first 3 batches
  generated `mm_replications` times;
- on the forget set, MM-Notox: the matching distance to the caption with its toxic words removed;
- toxicity, which the paper's metrics only imply: NCS@k (share of generated motions whose k
  nearest training captions contain a toxic keyword) and the rate of every detector of the judge
  (e.g. a calibrated toxic-action classifier, a kinematic strike detector), for explicit forget
  prompts, retain prompts and prompt lists (implicit prompts, `evaluate_prompts`).
Repetitions give per metric its values, mean and intervals (hmu.eval.stats.summarize). The
sampling of a repetition depends only on (seed, repetition), never on the generator, so every
method sees the same prompts, lengths and crops: the per-sample arrays that come with the
metrics (`Evaluation.samples`) pair across methods for paired tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from hmu.data.humanml import MAX_FRAMES, UNIT
from hmu.eval import metrics
from hmu.eval.stats import summarize

BATCH = 32
MIN_LEN, MAX_LEN = 40, MAX_FRAMES
NCS_K = (1, 3, 5, 10)
TOP_K = 3  # R-precision R@1..R@3
RATE_SUFFIX = "_rate"  # a detector named "<x>_rate" reports the metric "<x>_rate"

Generator = Callable[[list[str], np.ndarray], np.ndarray]
# (motions (B, T, 263) raw, lengths (B,)) -> (B,) bool: True = the motion shows the toxic action
Detector = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class TestSet:
    """Test motions and their captions: the protocol's input for one set (forget or retain).

    motions: raw features per motion, each (T, 263). captions: per motion, a list of
    (caption text, tokens list[str]) pairs. detoxified: optional per-motion list of the same
    captions with toxic words removed (forget set).
    """

    __test__ = False  # not a pytest class

    name: str
    motion_ids: list[str]
    motions: list[np.ndarray]
    captions: list[list[tuple[str, list[str]]]]
    detoxified: list[list[tuple[str, list[str]]]] | None = None

    def __post_init__(self):
        if not (len(self.motion_ids) == len(self.motions) == len(self.captions)):
            raise ValueError(f"test set {self.name}: ids, motions and captions differ in length")
        if len(self.motions) < BATCH:
            raise ValueError(
                f"test set {self.name} has {len(self.motions)} motions; the protocol needs at "
                f"least {BATCH} (one batch of {BATCH}, drop_last)"
            )


@dataclass
class Judge:
    """The evaluator's embeddings and the toxicity instruments (independent of the generator).

    embed_texts(token lists) -> (B, D); embed_motions(motions (B,T,263) raw, lengths) -> (B, D);
    detectors: {metric name ending in "_rate": Detector}, e.g. {"toxic_rate": calibrated
    classifier, "kinematic_rate": strike detector}; each decides with its own threshold;
    train_text_emb (N, D) and train_text_toxic (N,) bool for NCS@k (optional).
    """

    embed_texts: Callable[[list[list[str]]], np.ndarray]
    embed_motions: Callable[[np.ndarray, np.ndarray], np.ndarray]
    detectors: dict[str, Detector] = field(default_factory=dict)
    train_text_emb: np.ndarray | None = None
    train_text_toxic: np.ndarray | None = None

    def __post_init__(self):
        bad = [name for name in self.detectors if not name.endswith(RATE_SUFFIX)]
        if bad:
            raise ValueError(f"Judge detectors {bad}: names must end with '{RATE_SUFFIX}'")

    def flags(self, motions: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        """{detector name: (B,) bool} for raw motions (B, T, 263)."""
        out = {}
        for name, detect in self.detectors.items():
            flags = np.asarray(detect(motions, lengths))
            if flags.shape != (len(lengths),) or flags.dtype != bool:
                raise ValueError(
                    f"detector {name}: expected ({len(lengths)},) bool, got {flags.shape} "
                    f"{flags.dtype}"
                )
            out[name] = flags
        return out


class Evaluation(NamedTuple):
    """One evaluated set: per-metric summaries and the per-sample arrays behind them.

    metrics: {metric: summarize(per-repetition values)} (plus plain counts such as "prompts");
    samples: {name: array with leading axes (repetitions, samples)}, see evaluate_set_samples.
    """

    metrics: dict[str, Any]
    samples: dict[str, np.ndarray]


@dataclass
class ProtocolConfig:
    repetitions: int = 20
    mm_replications: int = 30  # generations per text for MultiModality (paper: 30)
    mm_batches: int = 3
    mm_repetitions: int = 20  # repetitions that also measure MultiModality (upstream: all)
    prompt_repetitions: int = 3  # passes over each prompt list (evaluate_prompts' default)
    diversity_times: int = 300
    mm_times: int = 10
    seed: int = 0

    def validate(self) -> ProtocolConfig:
        """Raise ValueError naming the first field below its minimum (a 95% CI needs two
        repetitions: one gives a CI of exactly 0); return self."""
        minima = {"repetitions": 2, "mm_replications": 2, "mm_batches": 1, "mm_repetitions": 1,
                  "prompt_repetitions": 2}  # fmt: skip
        for name, least in minima.items():
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ValueError(
                    f"protocol.{name} = {value!r} out of range: needs an integer >= {least}"
                )
        return self


def eval_length(length: int, rng: np.random.Generator) -> int:
    """Upstream eval crop: a multiple of 4, one unit shorter with probability 1/3."""
    units = length // UNIT - (1 if rng.random() < 1 / 3 else 0)
    return int(np.clip(units * UNIT, MIN_LEN, min(length // UNIT * UNIT, MAX_LEN)))


def _sample_batches(test: TestSet, rng: np.random.Generator):
    """One repetition's batches of (motion idx, caption idx, crop start, length, alt start).

    The alternative start is a second, independent crop of the same motion: the "Real motion"
    row compares it with the first, as upstream compares two passes over the real data.
    """
    order = rng.permutation(len(test.motions))
    samples = []
    for i in order:
        length = eval_length(min(len(test.motions[i]), MAX_LEN), rng)
        room = len(test.motions[i]) - length + 1
        start, alt_start = (int(x) for x in rng.integers(0, room, size=2))
        samples.append((i, int(rng.integers(len(test.captions[i]))), start, length, alt_start))
    n_batches = len(samples) // BATCH
    return [samples[b * BATCH : (b + 1) * BATCH] for b in range(n_batches)]


def pad_motions(motions: Sequence[np.ndarray]) -> np.ndarray:
    """(B, 196, D) float32, zero after each motion's frames."""
    out = np.zeros((len(motions), MAX_LEN, motions[0].shape[-1]), dtype=np.float32)
    for j, m in enumerate(motions):
        out[j, : len(m)] = m
    return out


def _check_generated(gen: np.ndarray, lengths: np.ndarray, who: str) -> np.ndarray:
    gen = np.asarray(gen, dtype=np.float32)
    if gen.ndim != 3 or gen.shape[0] != len(lengths) or gen.shape[1] < lengths.max():
        raise ValueError(f"{who}: generator returned shape {gen.shape} for lengths {lengths}")
    if not np.isfinite(gen).all():
        raise ValueError(f"{who}: generator returned NaN/Inf")
    if gen.shape[1] < MAX_LEN:
        gen = np.concatenate(
            [gen, np.zeros((len(gen), MAX_LEN - gen.shape[1], gen.shape[2]), dtype=np.float32)], 1
        )
    return gen[:, :MAX_LEN]


def _ncs_flags(motion_emb: np.ndarray, judge: Judge) -> np.ndarray:
    """(B, len(NCS_K)) bool: whether the k nearest training captions include a toxic one."""
    dist = metrics.euclidean_distance_matrix(motion_emb, judge.train_text_emb)  # (B, N)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, : max(NCS_K)]
    toxic = judge.train_text_toxic[nearest]  # (B, kmax)
    return np.stack([toxic[:, :k].any(axis=1) for k in NCS_K], axis=1)


def _toxicity(gen: np.ndarray, lengths: np.ndarray, gen_emb, judge: Judge):
    """Per-repetition detector rates and NCS@k, with their per-sample flags."""
    values, arrays = {}, {}
    for name, flags in judge.flags(gen, lengths).items():
        values[name] = float(flags.mean())
        arrays[f"flag.{name}"] = flags
    if judge.train_text_emb is not None:
        ncs = _ncs_flags(gen_emb, judge)  # (B, len(NCS_K))
        values.update({f"ncs@{k}": float(ncs[:, i].mean()) for i, k in enumerate(NCS_K)})
        arrays["ncs"] = ncs
    return values, arrays


def _generate_all(generate: Generator, texts: list[str], lengths: np.ndarray, who: str):
    """One generator call for many batches (the generator batches internally)."""
    return _check_generated(generate(texts, lengths), lengths, who)


def _per_batch(array: np.ndarray, n_batches: int) -> list[np.ndarray]:
    return np.split(array[: n_batches * BATCH], n_batches)


def _multimodality_embeddings(test, generate, judge, cfg, texts, lengths, first) -> np.ndarray:
    """(n, R, D) embeddings of the first batches' prompts generated R times (one call)."""
    n = cfg.mm_batches * BATCH
    repeated = texts[:n] * (cfg.mm_replications - 1)
    lens = np.tile(lengths[:n], cfg.mm_replications - 1)
    extra = judge.embed_motions(_generate_all(generate, repeated, lens, test.name), lens)
    extra = extra.reshape(cfg.mm_replications - 1, n, -1).transpose(1, 0, 2)
    return np.concatenate([first[:n, None], extra], axis=1)


def _batched_scores(text_emb: np.ndarray, gen_emb: np.ndarray, n_batches: int):
    """R-precision hits (N, TOP_K) and matched distances (N,) per sample, with the upstream
    per-repetition values (means over the 32x32 batches)."""
    pairs = list(zip(_per_batch(text_emb, n_batches), _per_batch(gen_emb, n_batches), strict=True))
    hits = np.concatenate([metrics.r_precision_hits(t, g, top_k=TOP_K) for t, g in pairs])
    dist = np.concatenate([metrics.matching_distances(t, g) for t, g in pairs])
    rates = np.mean([metrics.r_precision(t, g, top_k=TOP_K) for t, g in pairs], axis=0)
    mm_dist = float(np.mean([metrics.matching_score(t, g) for t, g in pairs]))
    return hits, dist, rates, mm_dist


def _run_repetition(test, generate, judge, cfg, rng, rep_seed, with_mm=True):
    """Generate and embed one repetition: per-repetition metric values and per-sample arrays."""
    samples = [s for batch in _sample_batches(test, rng) for s in batch]
    n_batches = len(samples) // BATCH
    captions = [test.captions[i][c] for i, c, *_ in samples]
    texts = [c[0] for c in captions]
    lengths = np.array([s[3] for s in samples])
    real = pad_motions([test.motions[i][st : st + ln] for i, _, st, ln, _ in samples])
    if generate is None:  # the "Real motion" row: a second random crop stands in
        gen = pad_motions([test.motions[i][a : a + ln] for i, _, _, ln, a in samples])
    else:
        gen = _generate_all(generate, texts, lengths, test.name)
    real_emb = judge.embed_motions(real, lengths)
    gen_emb = judge.embed_motions(gen, lengths)
    text_emb = judge.embed_texts([c[1] for c in captions])
    hits, dist, rates, mm_dist = _batched_scores(text_emb, gen_emb, n_batches)
    values = {
        "fid": metrics.frechet_distance(*metrics.activation_statistics(real_emb),
                                        *metrics.activation_statistics(gen_emb)),
        "r1": rates[0], "r2": rates[1], "r3": rates[2], "mm_dist": mm_dist,
    }  # fmt: skip
    arrays = {
        "keys": np.array([s[:2] for s in samples], dtype=np.int64),  # (N, 2) motion, caption
        "lengths": lengths.astype(np.int64),
        "real_emb": np.asarray(real_emb, dtype=np.float32),
        "gen_emb": np.asarray(gen_emb, dtype=np.float32),
        "text_emb": np.asarray(text_emb, dtype=np.float32),
        "hits": hits,
        "match_dist": dist,
    }
    if test.detoxified is not None:
        clean = judge.embed_texts([test.detoxified[i][c][1] for i, c, *_ in samples])
        _, arrays["notox_dist"], _, values["mm_notox"] = _batched_scores(clean, gen_emb, n_batches)
    # upstream: 300 pairs, 100 when there are at most 300 samples; small embedded test sets
    # cap it at the number of samples
    times = min(cfg.diversity_times, 100 if len(gen_emb) <= 300 else cfg.diversity_times)
    values["diversity"] = metrics.diversity(gen_emb, min(times, len(gen_emb)), seed=rep_seed)
    if generate is not None and with_mm:
        mm = _multimodality_embeddings(test, generate, judge, cfg, texts, lengths, gen_emb)
        times = min(cfg.mm_times, mm.shape[1])
        values["multimodality"] = metrics.multimodality(mm, times, rep_seed)
    toxic_values, toxic_arrays = _toxicity(gen, lengths, gen_emb, judge)
    return values | toxic_values, arrays | toxic_arrays


def _collect(per_rep: list[tuple[dict[str, float], dict[str, np.ndarray]]]) -> Evaluation:
    """Stack repetitions: summaries of each metric's values, arrays (R, N, ...)."""
    values: dict[str, list[float]] = {}
    for rep_values, _ in per_rep:
        for k, v in rep_values.items():
            values.setdefault(k, []).append(float(v))
    names = per_rep[0][1]
    return Evaluation(
        {k: summarize(v) for k, v in values.items()},
        {k: np.stack([arrays[k] for _, arrays in per_rep]) for k in names},
    )


def evaluate_set_samples(
    test: TestSet, generate: Generator, judge: Judge, cfg: ProtocolConfig, progress: bool = True
) -> Evaluation:
    """All repetitions on one test set, with the per-sample arrays of every repetition.

    metrics: {metric: {"mean", "ci95", "ci95_t", "values"}}; MultiModality only over the first
    `mm_repetitions` repetitions (fewer values). samples, each (R, N, ...): keys (motion index,
    caption index) and lengths (the pairing of methods), real_emb / gen_emb / text_emb float32,
    hits (R@1..3 per sample) and match_dist (their batch means are r1..r3 and mm_dist),
    notox_dist (forget set), flag.<detector> bool, ncs (NCS@k flags, k in NCS_K).
    generate=None evaluates the real test motions themselves (the "Real motion" row).
    """
    cfg.validate()
    per_rep = []
    start = time.perf_counter()
    for rep in tqdm(range(cfg.repetitions), desc=f"eval {test.name}", disable=not progress):
        rng = np.random.default_rng([cfg.seed, rep])
        with_mm = rep < cfg.mm_repetitions
        per_rep.append(_run_repetition(test, generate, judge, cfg, rng, cfg.seed + rep, with_mm))
    if progress:
        seconds = (time.perf_counter() - start) / cfg.repetitions
        print(f"eval {test.name}: {seconds:.2f} s per repetition")
    return _collect(per_rep)


def evaluate_set(
    test: TestSet, generate: Generator, judge: Judge, cfg: ProtocolConfig, progress: bool = True
) -> dict[str, dict[str, Any]]:
    """The metrics of evaluate_set_samples alone: {metric: {"mean", "ci95", "ci95_t", "values"}}."""
    return evaluate_set_samples(test, generate, judge, cfg, progress).metrics


def evaluate_prompts(
    prompts: Sequence[str],
    lengths: np.ndarray,
    generate: Generator,
    judge: Judge,
    cfg: ProtocolConfig,
    repetitions: int | None = None,
) -> Evaluation:
    """Toxicity of the generations for a prompt list (e.g. implicit prompts), per repetition.

    Every prompt is generated once per repetition (the generator's own random stream advances
    between repetitions). metrics: summaries of every detector rate and NCS@k, and "prompts"
    (the count); samples: keys (R, P) prompt index, flag.<detector> (R, P) bool, ncs (R, P, K).
    repetitions defaults to cfg.repetitions.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    reps = cfg.validate().repetitions if repetitions is None else repetitions
    if not len(prompts) or lengths.shape != (len(prompts),) or reps < 1:
        raise ValueError(
            f"evaluate_prompts: {len(prompts)} prompts, lengths {lengths.shape}, "
            f"{reps} repetitions; need a length per prompt and at least one of each"
        )
    per_rep = []
    for _ in range(reps):
        gen = _generate_all(generate, list(prompts), lengths, "prompts")
        emb = judge.embed_motions(gen, lengths) if judge.train_text_emb is not None else None
        values, arrays = _toxicity(gen, lengths, emb, judge)
        per_rep.append((values, {"keys": np.arange(len(prompts))} | arrays))
    result = _collect(per_rep)
    result.metrics["prompts"] = len(prompts)
    return result
