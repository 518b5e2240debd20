"""Generation: T2MGenerator, load_generator (LCR deltas included), the CLI, official imports."""

import json

import numpy as np
import pytest
import torch
from tiny_setup import (
    TINY,
    C,
    FakeEncoder,
    K,
    Q,
    tiny_generator,
    tiny_vq,
    write_method,
    write_tiny_models,
)

import hmu.generate as generate_module
from hmu.cli import main as cli_main
from hmu.generate import GenerationConfig, load_generator
from hmu.models.checkpoint import read_lcr_delta, save_state
from hmu.models.momask import LengthEstimator, MaskTransformer, ResidualTransformer

torch.set_num_threads(1)


# ---------------------------------------------------------------- generation


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
