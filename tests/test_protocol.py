"""The generator-agnostic protocol on a toy judge whose embeddings are known in closed form."""

import numpy as np
import pytest

from hmu.eval import protocol
from hmu.eval.protocol import Judge, ProtocolConfig, TestSet, eval_length, evaluate_set

CLASSES = 8
DIM = 16


def _class_vector(k: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[k] = 3.0
    return v


def _toy_set(n=96, seed=0) -> TestSet:
    """Motion k is a constant frame whose first dims encode its class; captions name it."""
    rng = np.random.default_rng(seed)
    motions, captions, ids = [], [], []
    for i in range(n):
        k = i % CLASSES
        length = int(rng.integers(40, 196))
        frames = np.zeros((length, 263), np.float32)
        frames[:, :DIM] = _class_vector(k)
        frames += rng.normal(0, 0.05, frames.shape).astype(np.float32)
        motions.append(frames)
        captions.append([(f"class {k}", [f"{k}/NUM"]), (f"the class {k}", [f"{k}/NUM"])])
        ids.append(f"{i:06d}")
    return TestSet("toy", ids, motions, captions)


def _judge() -> Judge:
    def embed_texts(tokens):
        return np.stack([_class_vector(int(t[0].split("/")[0])) for t in tokens])

    def embed_motions(motions, lengths):
        return np.stack([m[:n, :DIM].mean(0) for m, n in zip(motions, lengths, strict=True)])

    def toxic_probability(motions, lengths):
        return (embed_motions(motions, lengths)[:, 0] > 1.5).astype(float)  # class 0 is "toxic"

    train_emb = np.stack([_class_vector(k) for k in range(CLASSES)])
    return Judge(embed_texts, embed_motions, toxic_probability, train_emb, np.arange(CLASSES) == 0)


def _faithful(texts, lengths):
    out = np.zeros((len(texts), lengths.max(), 263), np.float32)
    for i, (t, n) in enumerate(zip(texts, lengths, strict=True)):
        out[i, :n, :DIM] = _class_vector(int(t.split()[-1]))
    return out + np.random.default_rng(len(texts)).normal(0, 0.05, out.shape).astype(np.float32)


def _noise(texts, lengths):
    rng = np.random.default_rng(int(lengths.sum()))
    return rng.normal(0, 1, (len(texts), lengths.max(), 263)).astype(np.float32)


CFG = ProtocolConfig(repetitions=3, mm_replications=4, mm_batches=1, mm_times=3)


def test_eval_length_is_a_multiple_of_four_within_bounds():
    rng = np.random.default_rng(0)
    lengths = [eval_length(n, rng) for n in rng.integers(40, 197, 500)]
    assert all(n % 4 == 0 and 40 <= n <= 196 for n in lengths)
    shorter = np.mean([eval_length(100, rng) == 96 for _ in range(3000)])
    assert abs(shorter - 1 / 3) < 0.03


def test_faithful_generator_matches_real_row_and_noise_degrades():
    test, judge = _toy_set(), _judge()
    real = evaluate_set(test, None, judge, CFG, progress=False)
    good = evaluate_set(test, _faithful, judge, CFG, progress=False)
    bad = evaluate_set(test, _noise, judge, CFG, progress=False)
    # captions are ambiguous only across the 8 classes: R@1 of a faithful model equals real's
    assert good["r1"]["mean"] == pytest.approx(real["r1"]["mean"], abs=0.05)
    assert good["fid"]["mean"] < 0.5 and bad["fid"]["mean"] > 10 * max(good["fid"]["mean"], 0.1)
    assert good["r3"]["mean"] > 0.6 and bad["r3"]["mean"] < 0.3  # 4 same-class per batch
    assert bad["mm_dist"]["mean"] > good["mm_dist"]["mean"]
    # toxic rate: class 0 is 1/8 of the set
    assert good["toxic_rate"]["mean"] == pytest.approx(1 / 8, abs=0.05)
    assert good["ncs@1"]["mean"] == pytest.approx(1 / 8, abs=0.05)
    assert "multimodality" not in real and good["multimodality"]["mean"] < 1.0
    assert set(good["fid"]) == {"mean", "ci95"}


def test_repetitions_are_deterministic():
    test, judge = _toy_set(), _judge()
    a = evaluate_set(test, _faithful, judge, CFG, progress=False)
    b = evaluate_set(test, _faithful, judge, CFG, progress=False)
    assert a["fid"] == b["fid"] and a["r1"] == b["r1"]


def test_bad_generators_and_small_sets_fail_loudly():
    test, judge = _toy_set(), _judge()

    def nan_gen(texts, lengths):
        return np.full((len(texts), lengths.max(), 263), np.nan, np.float32)

    with pytest.raises(ValueError, match="NaN"):
        evaluate_set(test, nan_gen, judge, CFG, progress=False)
    with pytest.raises(ValueError, match="shape"):
        evaluate_set(test, lambda t, n: np.zeros((1, 5, 263)), judge, CFG, progress=False)
    with pytest.raises(ValueError, match="at least 32"):
        _toy_set(n=20)
    with pytest.raises(ValueError, match="out of range"):
        ProtocolConfig(repetitions=0).validate()


def test_toxic_rate_on_prompts():
    judge = _judge()
    prompts = ["class 0"] * 10 + ["class 3"] * 30
    result = protocol.toxic_rate(prompts, np.full(40, 60), _faithful, judge, CFG)
    assert result["toxic_rate"] == pytest.approx(0.25)
    assert result["prompts"] == 40
