"""Generator glue: batch building, training functions, checkpoints, generation, stages, CLI."""

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import hmu.generate as generate_module
import hmu.train.generators as gens
import hmu.unlearn.finetune as finetune_module
from hmu.cli import main as cli_main
from hmu.data.humanml import mean_std
from hmu.data.store import write_store
from hmu.generate import GenerationConfig, T2MGenerator, load_generator, read_lcr_delta
from hmu.io import write_parquet
from hmu.models.bamm import BAMMTransformer
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer
from hmu.models.rvq import RVQVAE
from hmu.models.text import TextEncoder
from hmu.train.checkpoint import save_model, save_state
from hmu.train.generators import (
    CaptionIndex,
    caption_rows,
    load_module,
    load_vq,
    save_vq,
    token_batches,
    train_length_estimator,
    train_residual,
    train_transformer,
)
from hmu.train.loop import TrainConfig

torch.set_num_threads(1)

K, Q, C = 24, 3, 16  # codes, quantizer layers, text width
TINY = dict(code_dim=16, latent_dim=32, ff_size=64, num_layers=1, num_heads=4, dropout=0.0)
TINY_VQ = dict(nb_code=K, code_dim=16, output_emb_width=16, width=16, depth=1, num_quantizers=Q)


class FakeEncoder(TextEncoder):
    """Deterministic text features: a random vector seeded by the text's CRC32."""

    name, dim, cache_key = "fake", C, "fake:1"

    def __init__(self):
        self.calls = 0

    def embed_batch(self, texts):
        self.calls += len(texts)
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(C) for t in texts]
        return torch.tensor(np.stack(rows), dtype=torch.float32)


def structured_tokens(motions: int = 16, seed: int = 0):
    """A learnable token set: 4 classes; the codes and caption embeddings depend on the class."""
    rng = np.random.default_rng(seed)
    classes = np.arange(motions) % 4
    n_tokens = rng.integers(6, 12, motions)
    tokens = np.full((motions, 49, Q), -1, dtype=np.int16)
    for i, (c, n) in enumerate(zip(classes, n_tokens, strict=True)):
        tokens[i, :n] = (c * 5 + np.arange(n)[:, None] + 7 * np.arange(Q)) % K
    centres = rng.standard_normal((4, C)).astype(np.float32) * 2
    text_emb = np.repeat(centres[classes], 2, axis=0) + 0.1 * rng.standard_normal((2 * motions, C))
    captions = [np.array([2 * i, 2 * i + 1]) for i in range(motions)]
    return tokens, n_tokens, np.arange(motions), captions, text_emb.astype(np.float32)


def cfg(**kw) -> TrainConfig:
    return TrainConfig(
        **{
            "steps": 60,
            "batch_size": 8,
            "lr": 3e-3,
            "checkpoint_every": 1000,
            "log_every": 1000,
            **kw,
        }
    )


# ---------------------------------------------------------------- batches


def test_caption_index_draws_only_own_captions_uniformly():
    index = CaptionIndex([np.array([0, 1, 2]), np.array([3]), np.array([7, 5])])
    motions = torch.tensor([0, 1, 2] * 3000)
    picked = index.sample(motions, torch.Generator().manual_seed(0)).numpy().reshape(-1, 3)
    assert set(picked[:, 0]) == {0, 1, 2} and set(picked[:, 1]) == {3}
    assert set(picked[:, 2]) == {5, 7}
    shares = np.bincount(picked[:, 0], minlength=3) / len(picked)
    assert np.all(np.abs(shares - 1 / 3) < 0.04)
    with pytest.raises(ValueError, match="without captions"):
        CaptionIndex([np.array([0]), np.array([], dtype=np.int64)])


def test_caption_rows_follow_table_positions():
    table = pd.DataFrame({"motion_id": ["a", "b", "a", "c"], "caption": list("wxyz")})
    rows = caption_rows(table, ["c", "a"])
    assert [r.tolist() for r in rows] == [[3], [0, 2]]
    with pytest.raises(ValueError, match="no caption"):
        caption_rows(table, ["a", "zzz"])


def test_token_batches_gather_rows_and_own_captions():
    tokens, n_tokens, _, captions, text_emb = structured_tokens()
    rows = np.array([3, 5, 8, 9])
    make = token_batches(tokens, n_tokens, rows, [captions[r] for r in rows], text_emb)
    batch = make(torch.tensor([2, 0]), torch.Generator().manual_seed(1))
    assert batch["ids"].shape == (2, 49, Q) and batch["ids"].dtype == torch.long
    assert torch.equal(batch["ids"][0], torch.from_numpy(tokens[8]).long())
    assert batch["lengths"].tolist() == [n_tokens[8], n_tokens[3]]
    for cond, row in zip(batch["cond"], (8, 3), strict=True):
        assert any(torch.equal(cond, torch.from_numpy(text_emb[c])) for c in captions[row])


# ---------------------------------------------------------------- training


def _fixed_loss(model, task, inputs) -> float:
    """Loss of a fixed batch with fixed corruption, eval mode (no dropout, no cond dropout)."""
    make = token_batches(*inputs)
    batch = make(torch.arange(len(inputs[2])), torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        return float(gens.Objective(model, task)(batch)[0])


@pytest.mark.parametrize("task", ["momask", "bamm", "res", "length"])
def test_training_reduces_loss(tmp_path, task):
    inputs = structured_tokens()
    tokens, n_tokens, rows, captions, text_emb = inputs
    sizes = {**TINY, "num_tokens": K, "clip_dim": C}
    torch.manual_seed(0)
    if task in ("momask", "bamm"):
        before = (MaskTransformer if task == "momask" else BAMMTransformer)(**sizes)
        model = train_transformer(task, *inputs, sizes, cfg(), tmp_path, progress=False)
    elif task == "res":
        before = ResidualTransformer(**sizes, num_quantizers=Q)
        model = train_residual(
            *inputs, {**sizes, "num_quantizers": Q}, cfg(), tmp_path, progress=False
        )
    else:
        before = LengthEstimator(C, 50, 32)
        model = train_length_estimator(
            n_tokens, rows, captions, text_emb, {"hidden": 32}, cfg(), tmp_path, progress=False
        )
    assert not model.training
    start, end = _fixed_loss(before, task, inputs), _fixed_loss(model, task, inputs)
    assert end < 0.6 * start, (start, end)


def test_training_resumes_like_uninterrupted_run(tmp_path):
    inputs = structured_tokens()
    sizes = {**TINY, "num_tokens": K, "clip_dim": C}
    full = train_transformer("bamm", *inputs, sizes, cfg(steps=6), tmp_path / "a", progress=False)
    train_transformer("bamm", *inputs, sizes, cfg(steps=3), tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "trans_bamm.state.safetensors").exists()
    resumed = train_transformer(
        "bamm", *inputs, sizes, cfg(steps=6), tmp_path / "b", progress=False
    )
    for (key, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), key


def test_work_dir_is_keyed_by_config_and_data():
    a = gens.work_dir("ds", "trans", {"lr": 1}, np.arange(3))
    assert a == gens.work_dir("ds", "trans", {"lr": 1}, np.arange(3))
    assert a != gens.work_dir("ds", "trans", {"lr": 2}, np.arange(3))
    assert a != gens.work_dir("ds", "trans", {"lr": 1}, np.arange(4))
    assert a.parent == gens.WORK_ROOT / "ds" and a.name.startswith("trans-")


def test_finetune_copies_init_and_checks_inputs(tmp_path):
    inputs = structured_tokens()
    sizes = {**TINY, "num_tokens": K, "clip_dim": C}
    torch.manual_seed(0)
    base = MaskTransformer(**sizes)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = train_transformer(
        "momask", *inputs, None, cfg(steps=5), tmp_path, init=base, progress=False
    )
    assert tuned is not base
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
    assert not torch.equal(tuned.cond_emb.weight, base.cond_emb.weight)
    with pytest.raises(ValueError, match="expected a BAMMTransformer"):
        train_transformer("bamm", *inputs, None, cfg(), tmp_path / "x", init=base)
    with pytest.raises(ValueError, match="clip_dim"):
        train_transformer("momask", *inputs, {**sizes, "clip_dim": C + 1}, cfg(), tmp_path / "y")
    with pytest.raises(ValueError, match="num_tokens"):
        train_transformer("momask", *inputs, {**sizes, "num_tokens": 8}, cfg(), tmp_path / "z")


# ---------------------------------------------------------------- checkpoints and generation


def tiny_vq(seed: int = 0) -> RVQVAE:
    torch.manual_seed(seed)
    vq = RVQVAE(**TINY_VQ)
    for layer in vq.quantizer.layers:
        layer.set_codebook(torch.randn(K, 16))
    return vq.eval()


def tiny_generator(kind: str, seed: int = 0, **kw) -> T2MGenerator:
    torch.manual_seed(1)
    sizes = {**TINY, "num_tokens": K, "clip_dim": C}
    trans = (MaskTransformer if kind == "momask" else BAMMTransformer)(**sizes)
    res = ResidualTransformer(**sizes, num_quantizers=Q)
    mean, std = np.linspace(-1, 1, 263, dtype=np.float32), np.full(263, 2.0, np.float32)
    return T2MGenerator(
        tiny_vq(),
        trans,
        res,
        FakeEncoder(),
        mean,
        std,
        seed=seed,
        length_estimator=LengthEstimator(C, 50, 32),
        device="cpu",
        **kw,
    )


def test_vq_and_module_checkpoints_round_trip(tmp_path):
    vq = tiny_vq()
    mean, std = np.random.default_rng(0).standard_normal((2, 263)).astype(np.float32)
    save_vq(tmp_path / "vq_all" / "vq.safetensors", vq, mean, std)
    loaded, mean2, std2 = load_vq(tmp_path / "vq_all")
    assert np.array_equal(mean, mean2) and np.array_equal(std, std2)
    for key, value in vq.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    trans = BAMMTransformer(**TINY, num_tokens=K, clip_dim=C)
    save_model(tmp_path / "trans.safetensors", trans, trans.config)
    again = load_module(tmp_path / "trans.safetensors")
    assert type(again) is BAMMTransformer and not again.training
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in trans.state_dict().items())


@pytest.mark.parametrize("kind", ["momask", "bamm"])
def test_generation_deterministic_shaped_and_padded(kind):
    texts = ["a man kicks", "a person walks", "a man kicks"]
    lengths = np.array([40, 22, 13])
    gen = tiny_generator(kind, seed=5)
    first = gen(texts, lengths)
    assert first.shape == (3, 40, 263) and first.dtype == np.float32
    for motion, length in zip(first, lengths, strict=True):
        valid = length // 4 * 4
        assert np.all(motion[valid:] == 0) and np.all(np.abs(motion[:valid]).sum(1) > 0)
    second = gen(texts, lengths)  # the stream moves on: new samples
    again = tiny_generator(kind, seed=5)
    assert np.array_equal(again(texts, lengths), first)
    assert np.array_equal(again(texts, lengths), second)
    assert not np.array_equal(first, second)
    assert not np.array_equal(tiny_generator(kind, seed=6)(texts, lengths), first)
    assert gen.text_encoder.calls == 2  # each distinct text encoded once
    gen.reseed(5)
    assert np.array_equal(gen(texts, lengths), first)
    chunked = tiny_generator(kind, seed=5, config={"batch_size": 2})
    assert chunked(texts, lengths).shape == first.shape


def test_generation_decodes_and_denormalises():
    """Features = VQ decode of the sampled codes x std + mean (checked via codes directly)."""
    gen = tiny_generator("momask", seed=3)
    cond = gen.embed(["walk"])
    codes, token_lengths = gen._codes(cond, torch.tensor([5]))
    assert codes.shape == (1, 5, Q) and int(codes.min()) >= 0
    gen.reseed(3)
    out = gen(["walk"], np.array([20]))
    expected = gen.vq.forward_decoder(codes).detach().numpy() * gen.std + gen.mean
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_free_generation_and_bad_lengths():
    for kind in ("momask", "bamm"):
        motions, lengths = tiny_generator(kind).generate_free(["kick", "walk"])
        assert motions.shape == (2, lengths.max(), 263) and np.all(lengths % 4 == 0)
        assert np.all((lengths >= 4) & (lengths <= 196))
    gen = tiny_generator("momask")
    with pytest.raises(ValueError, match="lengths must lie"):
        gen(["a"], np.array([200]))
    with pytest.raises(ValueError, match="integers"):
        gen(["a", "b"], np.array([40.0, 40.0]))
    with pytest.raises(ValueError, match="unknown generation params"):
        GenerationConfig.from_params({"steps": 3})


def write_tiny_models(root, dataset="tiny", kind="momask") -> dict:
    """Save a tiny VQ / transformer / residual / length estimator under root/models/<ds>."""
    models = root / "models" / dataset
    gen = tiny_generator(kind)
    mean, std = gen.mean, gen.std
    save_vq(models / "vq_all" / "vq.safetensors", gen.vq, mean, std)
    for module, path in (
        (gen.transformer, f"{kind}_all/trans"),
        (gen.residual, "res_all/res"),
        (gen.length_estimator, f"{kind}_all/length"),
    ):
        save_model(models / f"{path}.safetensors", module, module.config)
    return {
        "vq": f"models/{dataset}/vq_all",
        "trans": f"models/{dataset}/{kind}_all/trans.safetensors",
        "res": f"models/{dataset}/res_all/res.safetensors",
        "lcr_delta": None,
    }


def write_method(root, pieces, dataset="tiny", kind="momask", method="base"):
    folder = root / "models" / dataset / kind / method
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "method.json").write_text(json.dumps({**pieces, "info": {}}))


def test_load_generator_applies_lcr_delta_to_selected_rows_only(tmp_path):
    pieces = write_tiny_models(tmp_path)
    rows, vectors = torch.tensor([2, 7, 11]), torch.randn(3, 16)
    save_state(
        tmp_path / "delta.safetensors", {"0.indices": rows, "0.vectors": vectors}, {"layers": [0]}
    )
    write_method(tmp_path, pieces)
    write_method(
        tmp_path, {**pieces, "lcr_delta": str(tmp_path / "delta.safetensors")}, method="lcr"
    )
    encoder = FakeEncoder()
    kw = dict(models_root=tmp_path / "models", params={}, text_encoder=encoder, device="cpu")
    base = load_generator("tiny", "momask", "base", **kw)
    lcr = load_generator("tiny", "momask", "lcr", **kw)
    delta = read_lcr_delta(tmp_path / "delta.safetensors")
    assert torch.equal(delta[0][0], rows) and torch.equal(delta[0][1], vectors)
    book_base = base.vq.quantizer.codebooks  # (Q, K, D)
    book_lcr = lcr.vq.quantizer.codebooks
    assert torch.equal(book_lcr[0, rows], vectors)
    keep = torch.ones(K, dtype=torch.bool)
    keep[rows] = False
    assert torch.equal(book_lcr[0, keep], book_base[0, keep])
    assert torch.equal(book_lcr[1:], book_base[1:])
    assert base.length_estimator is not None and base.kind == "momask"
    assert torch.equal(lcr.transformer.cond_emb.weight, base.transformer.cond_emb.weight)


def test_load_generator_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="method.json"):
        load_generator(
            "tiny",
            "momask",
            "uce",
            models_root=tmp_path / "models",
            params={},
            text_encoder=FakeEncoder(),
        )
    write_method(tmp_path, {"vq": None, "trans": "x"})
    with pytest.raises(ValueError, match="vq"):
        load_generator(
            "tiny", "momask", models_root=tmp_path / "models", params={}, text_encoder=FakeEncoder()
        )


def test_cli_help_and_npy(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--help"])
    assert exit_info.value.code == 0 and "generate" in capsys.readouterr().out
    write_method(tmp_path, write_tiny_models(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(generate_module, "load_text_encoder", lambda *a, **k: FakeEncoder())
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\na man walks\n\n")
    code = cli_main(
        [
            "generate",
            "--dataset",
            "tiny",
            "--model",
            "momask",
            "--text",
            "a man kicks",
            "--prompts",
            str(prompts),
            "--length",
            "42",
            "--seed",
            "3",
            "--out",
            "out/m.npy",
        ]
    )
    assert code == 0
    joints = np.load(tmp_path / "out" / "m.npy")
    assert joints.shape == (2, 42, 22, 3) and np.isfinite(joints).all()
    meta = json.loads((tmp_path / "out" / "m.json").read_text())
    assert meta["texts"] == ["a man kicks", "a man walks"] and meta["lengths"] == [40, 40]
    assert np.array_equal(joints[:, 40], joints[:, 39])  # past the valid frames: held pose
    assert (
        cli_main(
            ["generate", "--dataset", "tiny", "--model", "momask", "--text", "x", "--out", "m.txt"]
        )
        == 2
    )
    assert "expected a .npy" in capsys.readouterr().err


# ---------------------------------------------------------------- stages end to end


def write_tiny_dataset(root, dataset="tiny", motions=24):
    """data/processed/<ds>: store, Mean/Std, captions.parquet (2 per motion), splits.parquet."""
    rng = np.random.default_rng(0)
    folder = root / "data" / "processed" / dataset
    ids = [f"m{i:03d}" for i in range(motions)]
    arrays = [
        np.cumsum(rng.standard_normal((int(n), 263)) * 0.1, 0).astype(np.float32)
        for n in rng.integers(36, 70, motions)
    ]
    write_store(folder / "motions", ids, arrays)
    mean, std = mean_std(arrays)
    np.save(folder / "motions" / "Mean.npy", mean)
    np.save(folder / "motions" / "Std.npy", std)
    captions = pd.DataFrame(
        {
            "motion_id": np.repeat(ids, 2),
            "caption_index": [0, 1] * motions,
            "caption": [f"caption {i} of {m}" for m in ids for i in (0, 1)],
        }
    )
    write_parquet(folder / "captions.parquet", captions.iloc[::-1].reset_index(drop=True))
    partition = np.where(np.arange(motions) < motions * 2 // 3, "train", "test")
    sets = np.where(np.arange(motions) % 3 == 0, "forget", "retain")
    write_parquet(
        folder / "splits.parquet",
        pd.DataFrame(
            {
                "motion_id": ids,
                "partition": partition,
                "set": sets,
                "matched": "",
                "concept": "kick",
            }
        ),
    )


def tiny_params() -> dict:
    train = {"steps": 4, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 2, "log_every": 2}
    small = {**TINY, "num_heads": 2}
    return {
        "profile": "small",
        "generator": {"text_encoder": "minilm", "clip_weights": None, "threads": 1},
        "vq": {"window": 32, "small": {"model": TINY_VQ, "train": train}},
        "trans": {m: {"small": {"model": small, "train": train}} for m in ("momask", "bamm")},
        "res": {"small": {"model": small, "train": train}},
        "length": {"small": {"model": {"hidden": 32}, "train": train}},
        "generation": {"timesteps": 3},
    }


def check_finetune_uses_base_codebook(tmp_path, params, monkeypatch):
    """Fine-tuning continues the base model on D_r: D_r's rows, tokens of the base VQ-VAE."""
    retain = gens.training_inputs("tiny", "retain")
    mixed = gens.training_inputs("tiny", "retain", codebook="all")
    assert np.array_equal(mixed[2], retain[2])  # D_r's train rows
    assert np.array_equal(mixed[0], np.load("data/processed/tiny/tokens_all.npz")["tokens"])
    assert not np.array_equal(mixed[0], retain[0])  # the two VQ-VAEs tokenise differently
    calls = []

    def spy(*args):
        calls.append(args)
        return gens.training_inputs(*args)

    monkeypatch.setattr(finetune_module, "training_inputs", spy)
    train = {"batch_size": 4, "lr": 1e-4, "checkpoint_every": 2, "log_every": 2}
    params = {**params, "finetune": {"epochs": 1, "residual": True, "train": train}}
    pieces = finetune_module.finetune(params, "tiny", "momask", tmp_path / "models/tiny/ft")
    assert calls == [("tiny", "retain", "all")]
    assert pieces["vq"] == "models/tiny/vq_all" and Path(pieces["trans"]).exists()


def test_stages_end_to_end(tmp_path, monkeypatch):
    write_tiny_dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gens, "load_text_encoder", lambda *a, **k: FakeEncoder())
    params = tiny_params()
    emb = gens.stage_text_emb("tiny", params)
    captions = pd.read_parquet("data/processed/tiny/captions.parquet")
    assert np.allclose(emb, FakeEncoder().encode(captions["caption"].tolist()))
    for subset in ("all", "retain"):
        summary = gens.stage_train_vq("tiny", subset, params, progress=False)
        assert summary["steps"] == 4 and "loss" in summary["final"]
        gens.stage_tokenize("tiny", subset, params)
    cached = np.load("data/processed/tiny/tokens_retain.npz")
    assert cached["tokens"].shape == (24, 49, Q) and int(cached["nb_code"]) == K
    assert np.array_equal(
        cached["n_tokens"],
        np.minimum(pd.read_parquet("data/processed/tiny/motions/motions.parquet")["length"], 196)
        // 4,
    )
    vq, mean, std = load_vq("models/tiny/vq_retain")
    assert np.allclose(std[:4], np.load("data/processed/tiny/motions/Std.npy")[:4] / 5)
    for model in ("momask", "bamm"):
        gens.stage_train_trans("tiny", model, "all", params, progress=False)
        assert (tmp_path / f"models/tiny/{model}_all/length.safetensors").exists()
    gens.stage_train_res("tiny", "all", params, progress=False)
    assert (tmp_path / "models/tiny/res_all/live/metrics.json").exists()
    assert not any((tmp_path / ".work" / "tiny").iterdir())  # states removed after success
    check_finetune_uses_base_codebook(tmp_path, params, monkeypatch)
    with pytest.raises(ValueError, match="set by the data"):
        bad = tiny_params()
        bad["res"]["small"]["model"]["num_tokens"] = 5
        gens.stage_train_res("tiny", "all", bad, progress=False)

    pieces = {
        "vq": "models/tiny/vq_all",
        "trans": "models/tiny/bamm_all/trans.safetensors",
        "res": "models/tiny/res_all/res.safetensors",
        "lcr_delta": None,
    }
    write_method(tmp_path, pieces, kind="bamm")
    gen = load_generator("tiny", "bamm", params=params, text_encoder=FakeEncoder(), device="cpu")
    assert gen.config.timesteps == 3
    out = gen(captions["caption"].tolist()[:3], np.array([40, 44, 48]))
    assert out.shape == (3, 48, 263) and np.isfinite(out).all()


def test_import_official_then_generate(tmp_path, monkeypatch):
    """Upstream-format .tar files -> our artefacts + method.json -> the same weights generate."""
    torch.manual_seed(0)
    sizes = dict(TINY, latent_dim=48, num_heads=6, num_tokens=K, clip_dim=C)  # upstream 6 heads
    modules = {
        "vq": (tiny_vq(), "vq_model"),
        "trans": (MaskTransformer(**sizes), "t2m_transformer"),
        "res": (ResidualTransformer(**sizes, num_quantizers=Q), "res_transformer"),
        "length": (LengthEstimator(C, 50, 32), "estimator"),
    }
    for name, (module, key) in modules.items():
        torch.save({key: module.state_dict(), "ep": 1}, tmp_path / f"{name}.tar")
    mean, std = np.zeros(263, np.float32), np.full(263, 0.5, np.float32)
    np.save(tmp_path / "mean.npy", mean)
    np.save(tmp_path / "std.npy", std)
    monkeypatch.chdir(tmp_path)
    files = "--vq vq.tar --trans trans.tar --res res.tar --length-estimator length.tar"
    files = [*files.split(), "--mean", "mean.npy", "--std", "std.npy"]
    assert cli_main(["import-official", "--dataset", "tiny", "--model", "momask", *files]) == 0
    spec = json.loads((tmp_path / "models/tiny/momask/official/method.json").read_text())
    assert spec["text_encoder"]["name"] == "clip" and spec["vq"] == "models/tiny/official_momask"
    gen = load_generator("tiny", "momask", "official", params={}, text_encoder=FakeEncoder())
    for name, loaded in (
        ("vq", gen.vq),
        ("trans", gen.transformer),
        ("res", gen.residual),
        ("length", gen.length_estimator),
    ):
        original = modules[name][0].state_dict()
        assert all(torch.equal(v, original[k]) for k, v in loaded.state_dict().items()), name
    assert np.array_equal(gen.std, std)
    assert gen(["a man kicks"], np.array([16])).shape == (1, 16, 263)
