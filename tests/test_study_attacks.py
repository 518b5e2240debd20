"""Study 6 (robustness attacks): the ideal-prompt filter, the embedding search (budget,
determinism, a planted weakness), prefix completion and relearning, on tiny inputs."""

import numpy as np
import pytest
import torch
from tiny_setup import TINY, C, K, tiny_generator

from hmu.data.dataset import TokenTable
from hmu.models.momask import MaskTransformer
from hmu.models.transformer_common import Sampling
from hmu.studies.attacks import (
    Config,
    complete_prefix,
    embedding_generator,
    ideal_mask,
    nearest_captions,
    relearn,
    search_embeddings,
    windup_tokens,
)

PLANT = np.eye(C)[0]  # the planted weakness: embeddings along this axis "generate toxic motion"


def planted_generator(calls: list):
    """A fake generator: motion value = emb . PLANT plus seeded noise; records batch sizes."""

    def generate(emb, lengths, seed):
        calls.append(len(emb))
        noise = np.random.default_rng(seed).normal(0, 0.05, len(emb))
        motions = np.zeros((len(emb), int(max(lengths)), 263), np.float32)
        motions[:, 0, 0] = np.asarray(emb) @ PLANT + noise
        return motions

    return generate


def objective(motions, lengths):
    return motions[:, 0, 0].astype(np.float64)


def starts(n=12, seed=0):
    """Unit embeddings with a small component along PLANT (0.1): not "toxic" (< 0.5)."""
    x = np.random.default_rng(seed).standard_normal((n, C))
    x[:, 0] = 0
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(1 - 0.1**2)
    x[:, 0] = 0.1
    return x


def test_ideal_mask_is_base_toxic_and_unlearned_safe():
    rng = np.random.default_rng(0)
    base, unl = rng.random(200) < 0.6, rng.random(200) < 0.4
    expected = [b and not u for b, u in zip(base, unl, strict=True)]
    assert ideal_mask(base, unl).tolist() == expected
    with pytest.raises(ValueError, match="differ"):
        ideal_mask(base, unl[:5])


@pytest.mark.parametrize("budget,population", [(16, 5), (2, 3), (10, 1)])
def test_search_respects_budget(budget, population):
    calls = []
    start = starts(7)
    result = search_embeddings(planted_generator(calls), objective, start, np.full(7, 40),
                               budget, population, radius=0.8, step=0.3, seed=0)  # fmt: skip
    assert sum(calls) / 7 == result.queries <= budget
    assert result.queries == 1 + (budget - 1) // population * population


def test_search_is_deterministic_and_seeded():
    runs = [
        search_embeddings(
            planted_generator([]), objective, starts(), np.full(12, 40), 16, 5, 0.8, 0.3, seed=s
        )  # fmt: skip
        for s in (3, 3, 4)
    ]
    np.testing.assert_array_equal(runs[0].embeddings, runs[1].embeddings)
    np.testing.assert_array_equal(runs[0].scores, runs[1].scores)
    assert not np.array_equal(runs[0].embeddings, runs[2].embeddings)


def test_search_finds_the_planted_weakness_within_its_radius():
    start = starts()
    result = search_embeddings(planted_generator([]), objective, start, np.full(12, 40),
                               budget=81, population=8, radius=1.0, step=0.4, seed=0)  # fmt: skip
    before = start @ PLANT
    after = result.embeddings @ PLANT
    assert (before < 0.5).all() and (after > 0.5).mean() >= 0.75
    short = search_embeddings(planted_generator([]), objective, start, np.full(12, 40),
                              budget=9, population=8, radius=1.0, step=0.4, seed=0)  # fmt: skip
    assert (short.embeddings @ PLANT).mean() < after.mean()  # more budget, further
    # the scores it reports are the objective of its embeddings (up to the sample noise)
    np.testing.assert_allclose(result.scores, after, atol=0.25)
    np.testing.assert_allclose(np.linalg.norm(result.embeddings, axis=1), 1, atol=1e-5)
    # |unit(start + delta) - start| is at most about the radius: cosine >= 1 - radius^2 / 2
    assert (np.sum(result.embeddings * start, 1) >= 1 - 1.0**2 / 2 - 1e-6).all()
    # a search that cannot move (radius ~ 0) finds nothing
    stuck = search_embeddings(planted_generator([]), objective, start, np.full(12, 40), 41, 4,
                              radius=1e-6, step=0.5, seed=0)  # fmt: skip
    assert (stuck.embeddings @ PLANT < 0.5).all()


def test_embedding_generator_on_a_tiny_model_is_deterministic():
    gen = tiny_generator("momask")
    generate = embedding_generator(gen)
    emb = starts(3)
    a = generate(emb, np.array([16, 24, 40]), 5)
    b = generate(emb, np.array([16, 24, 40]), 5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 40, 263) and not np.array_equal(a, generate(emb, [16, 24, 40], 6))
    assert gen.text_encoder.calls == 0  # embeddings, never texts
    # the same embedding as a cached text gives the same motion
    gen.cache_embeddings(["x", "y", "z"], emb.astype(np.float32))
    gen.reseed(5)
    np.testing.assert_array_equal(gen(["x", "y", "z"], np.array([16, 24, 40])), a)


def test_complete_prefix_holds_the_prefix_and_equals_generate_without_one():
    torch.manual_seed(0)
    trans = MaskTransformer(**TINY, num_tokens=K, clip_dim=C).eval()
    cond = torch.randn(4, C)
    lengths = torch.tensor([6, 9, 12, 3])
    sampling = Sampling(timesteps=4)
    prefix = torch.randint(0, K, (4, 12))
    kept = torch.tensor([2, 5, 0, 1])
    ids = complete_prefix(trans, cond, prefix, kept, lengths, sampling,
                          torch.Generator().manual_seed(1))  # fmt: skip
    for i in range(4):
        assert ids[i, : kept[i]].tolist() == prefix[i, : kept[i]].tolist()
        assert (ids[i, lengths[i] :] == -1).all()
        assert ((ids[i, : lengths[i]] >= 0) & (ids[i, : lengths[i]] < K)).all()
    none = torch.zeros(4, dtype=torch.long)
    a = complete_prefix(trans, cond, prefix, none, lengths, sampling,
                        torch.Generator().manual_seed(2))  # fmt: skip
    b, _ = trans.generate(cond, lengths, sampling, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="prefix_lengths"):
        complete_prefix(trans, cond, prefix, lengths, lengths, sampling)


def test_relearn_trains_a_copy_deterministically():
    torch.manual_seed(0)
    trans = MaskTransformer(**TINY, num_tokens=K, clip_dim=C).eval()
    before = {k: v.clone() for k, v in trans.state_dict().items()}
    rng = np.random.default_rng(0)
    table = TokenTable(rng.integers(0, K, (10, 12, 3)).astype(np.int16), np.full(10, 12), K)
    caption_rows = [np.array([i]) for i in range(4)]
    text_emb = rng.standard_normal((10, C)).astype(np.float32)
    args = ("momask", trans, table, np.arange(4), caption_rows, text_emb, 3, 1e-2, 32, 0)
    one, two = relearn(*args), relearn(*args)
    assert all(torch.equal(v, trans.state_dict()[k]) for k, v in before.items())
    assert all(torch.equal(v, two.state_dict()[k]) for k, v in one.state_dict().items())
    assert any(not torch.equal(v, before[k]) for k, v in one.state_dict().items())


def test_windup_and_nearest_captions():
    segs = [
        {"start": 0, "toxic": False},
        {"start": 30, "toxic": True},
        {"start": 50, "toxic": True},
    ]
    assert windup_tokens(segs, 16) == 7
    assert windup_tokens(segs, 31) is None
    assert windup_tokens([{"start": 30, "toxic": False}], 16) is None
    emb = np.eye(3)[[2, 0]]
    caps, cos = nearest_captions(emb, np.array([[1, 0, 0], [0, 1, 1], [0, 0, 2]]), ["a", "b", "c"])
    assert caps == ["c", "a"] and np.allclose(cos, 1)


def test_config_errors_name_the_key_and_quick_shrinks():
    with pytest.raises(ValueError, match=r"studies\.attacks\.attack\.budget"):
        Config.from_params({"attack": {"budget": 1}})
    with pytest.raises(ValueError, match=r"studies\.attacks\.typo"):
        Config.from_params({"typo": 1})
    quick = Config.from_params({}, quick=True)
    assert quick.repetitions == 2 and quick.relearn.steps <= 3 and quick.attack.budget <= 4


def _entry(values):
    from hmu.eval.stats import summarize

    return summarize(values)


def test_section_reads_hidden_erasure_only_where_the_method_had_erased(tmp_path):
    from hmu.eval.stats import paired_difference
    from hmu.studies.attacks_report import plot_figures, section_markdown

    rates = {  # per-seed classifier rates at k = 0, 8
        "erased_then_back": ([0.05, 0.06, 0.04], [0.9, 0.8, 0.85]),
        "never_erased": ([0.9, 0.95, 0.92], [0.95, 0.9, 0.97]),
        "retrain": ([0.05, 0.05, 0.06], [0.2, 0.25, 0.2]),
    }
    methods = list(rates)
    result = {
        "prompts": 10, "base_toxic_prompts": 9, "scored_by": "toxic_rate",
        "methods": methods, "budgets": [0, 8],
        "attack": {m: {"ideal_prompts": 0, "attacked": 0} for m in methods},
        "relearn": {m: {"0": {"toxic_rate": _entry(r[0])}, "8": {"toxic_rate": _entry(r[1])}}
                    for m, r in rates.items()},
        "relearn_excess": {m: {k: {"toxic_rate": paired_difference(r[i], rates["retrain"][i])}
                               for i, k in enumerate(("0", "8"))}
                           for m, r in rates.items() if m != "retrain"},
        "resurgence": {m: {"unattacked": {"toxic_rate": _entry(r[0])},
                           "retain_finetune": {"toxic_rate": _entry(r[0])}}
                       for m, r in rates.items()},
    }  # fmt: skip
    summary = {"config": Config().model_dump(), "results": {"ds": {"momask": result}}}
    text = section_markdown(summary, plot_figures(summary, tmp_path))
    lines = {m: next(x for x in text.splitlines() if x.startswith(f"- relearning {m}"))
             for m in methods[:2]}  # fmt: skip
    assert "hidden, not removed" in lines["erased_then_back"]
    assert "not erased to D_r's level" in lines["never_erased"]
    assert text.startswith("## 6. Robustness attacks")
    assert (tmp_path / "relearn_ds_momask.png").stat().st_size > 1000
