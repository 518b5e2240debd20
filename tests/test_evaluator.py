"""Evaluator: official key layout, input-order embeddings, text preprocessing, save/load,
and training on a separable toy set."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from official_layout import official_layout

from hmu.eval.metrics import r_precision
from hmu.models import evaluator as ev
from hmu.train.evaluator import train_evaluator

torch.set_num_threads(1)


# Upstream finest.tar layout (momask-codes models/t2m_eval_modules.py, paper sizes).
_GRU = {
    f"gru.{kind}_l0{rev}": shape
    for rev in ("", "_reverse")
    for kind, shape in (("weight_ih", "3H,H"), ("weight_hh", "3H,H"), ("bias_ih", "3H"),
                        ("bias_hh", "3H"))
}  # fmt: skip


def _co_keys(hidden: int, inputs: int, out: int) -> dict[str, tuple[int, ...]]:
    dims = {"3H": 3 * hidden, "H": hidden}
    keys = {
        "hidden": (2, 1, hidden),
        "input_emb.weight": (hidden, inputs),
        "input_emb.bias": (hidden,),
        "output_net.0.weight": (hidden, 2 * hidden),
        "output_net.0.bias": (hidden,),
        "output_net.1.weight": (hidden,),
        "output_net.1.bias": (hidden,),
        "output_net.3.weight": (out, hidden),
        "output_net.3.bias": (out,),
    }
    keys.update({k: tuple(dims[d] for d in s.split(",")) for k, s in _GRU.items()})
    return keys


OFFICIAL = {
    "movement_encoder": {
        "main.0.weight": (512, 259, 4),
        "main.0.bias": (512,),
        "main.3.weight": (512, 512, 4),
        "main.3.bias": (512,),
        "out_net.weight": (512, 512),
        "out_net.bias": (512,),
    },
    "text_encoder": {
        **_co_keys(512, 300, 512),
        "pos_emb.weight": (300, 15),
        "pos_emb.bias": (300,),
    },
    "motion_encoder": _co_keys(1024, 512, 512),
}


def _small_evaluator(seed: int = 0, **kwargs) -> ev.Evaluator:
    torch.manual_seed(seed)
    sizes = dict(dim_movement_hidden=16, dim_movement_latent=12, dim_text_hidden=10,
                 dim_motion_hidden=14, dim_coemb=8)  # fmt: skip
    model = ev.Evaluator(**{**sizes, **kwargs}).eval()
    rng = np.random.default_rng(seed)
    model.set_normalization(rng.normal(size=263), rng.uniform(0.5, 2.0, size=263))
    return model


def test_constant_layout_matches_reference_json():
    for part in OFFICIAL:
        entry = official_layout(f"eval_{part}")
        assert entry["checkpoint_key"] == part
        assert {k: tuple(v) for k, v in entry["keys"].items()} == OFFICIAL[part]


def test_modules_at_official_sizes_have_official_keys():
    model = ev.Evaluator()  # defaults = upstream ctor sizes
    for part, keys in OFFICIAL.items():
        state = getattr(model, part).state_dict()
        assert {k: tuple(v.shape) for k, v in state.items()} == keys


def test_load_official_checkpoint_key_for_key(tmp_path):
    gen = torch.Generator().manual_seed(0)
    checkpoint = {
        part: {k: torch.randn(shape, generator=gen) for k, shape in keys.items()}
        for part, keys in OFFICIAL.items()
    }
    checkpoint["epoch"] = 1
    path = tmp_path / "finest.tar"
    torch.save(checkpoint, path)
    model = ev.load_official(path)
    for part, keys in OFFICIAL.items():
        state = getattr(model, part).state_dict()
        assert set(state) == set(keys)
        for key in keys:
            assert torch.equal(state[key], checkpoint[part][key]), f"{part}.{key}"
    assert not model.training


def test_load_official_reports_missing_and_unexpected_keys(tmp_path):
    small = _small_evaluator()
    checkpoint = {p: dict(getattr(small, p).state_dict()) for p in ev.CHECKPOINT_PARTS}
    del checkpoint["text_encoder"]["gru.weight_hh_l0_reverse"]
    checkpoint["motion_encoder"]["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.tar"
    torch.save(checkpoint, path)
    with pytest.raises(ValueError) as err:
        ev.load_official(path)
    assert "missing key text_encoder.gru.weight_hh_l0_reverse" in str(err.value)
    assert "unexpected key motion_encoder.extra.weight" in str(err.value)
    del checkpoint["movement_encoder"]
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="missing part 'movement_encoder'"):
        ev.load_official(path)


def _reference_motion_embedding(model, motion, lengths, pad_to=196):
    """Upstream path, one sample at a time and without packing: normalise, pad to 196 with
    zeros, movement encoder on the 259 dims, GRU over the first length // 4 units."""
    out = []
    enc = model.motion_encoder
    for sample, length in zip(motion, lengths, strict=True):
        normed = (sample[:length] - model.mean) / model.std
        padded = torch.zeros(1, pad_to, normed.shape[-1])
        padded[0, :length] = normed
        units = model.movement_encoder(padded[..., :-4])[:, : length // 4]
        _, last = enc.gru(enc.input_emb(units), enc.hidden)
        out.append(enc.output_net(torch.cat([last[0], last[1]], -1))[0])
    return torch.stack(out)


def _reference_text_embedding(model, word_vecs, pos, lengths):
    enc = model.text_encoder
    out = []
    for w, p, n in zip(word_vecs, pos, lengths, strict=True):
        inputs = enc.input_emb(w[None, :n] + enc.pos_emb(p[None, :n]))
        _, last = enc.gru(inputs, enc.hidden)
        out.append(enc.output_net(torch.cat([last[0], last[1]], -1))[0])
    return torch.stack(out)


def test_embeddings_are_in_input_order_and_match_upstream_path():
    model = _small_evaluator()
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([40, 104, 8, 64, 104, 12])  # unsorted, with a tie
    motion = torch.randn(6, 104, 263, generator=gen)
    with torch.no_grad():
        got = model.motion_embedding(motion, lengths)
        expected = _reference_motion_embedding(model, motion, lengths)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        perm = torch.tensor([3, 0, 5, 1, 2, 4])
        torch.testing.assert_close(model.motion_embedding(motion[perm], lengths[perm]), got[perm])

        cap_lens = torch.tensor([5, 22, 3, 9])
        word_vecs = torch.randn(4, 22, 300, generator=gen)
        pos = torch.randn(4, 22, 15, generator=gen)
        got = model.text_embedding(word_vecs, pos, cap_lens)
        expected = _reference_text_embedding(model, word_vecs, pos, cap_lens)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert len({tuple(row.tolist()) for row in got}) == 4


def _plain_gru(units, gru, h0, suffix):
    """One GRU direction written out step by step over (N, in) units; the final state (H,)."""
    w_ih, w_hh = getattr(gru, f"weight_ih_l0{suffix}"), getattr(gru, f"weight_hh_l0{suffix}")
    b_ih, b_hh = getattr(gru, f"bias_ih_l0{suffix}"), getattr(gru, f"bias_hh_l0{suffix}")
    h = h0
    for x in units:
        xr, xz, xn = (w_ih @ x + b_ih).chunk(3)
        hr, hz, hn = (w_hh @ h + b_hh).chunk(3)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        h = (1 - z) * torch.tanh(xn + r * hn) + z * h
    return h


def _upstream_full_length_embedding(model, sample, length, max_len=196):
    """Upstream, sequence-first and written out: normalise, zero-pad to max_len frames, two
    Conv1d(k4, s2, p1) + LeakyReLU(0.2) over time, Linear, then a BiGRU over length // 4 units."""
    padded = torch.zeros(max_len, sample.shape[-1])  # (T, D)
    padded[:length] = (sample[:length] - model.mean) / model.std
    x = padded[:, :-4].T[None]  # (1, 259, T)
    for conv in (model.movement_encoder.main[0], model.movement_encoder.main[3]):
        x = F.leaky_relu(F.conv1d(x, conv.weight, conv.bias, stride=2, padding=1), 0.2)
    units = model.movement_encoder.out_net(x[0].T)[: length // 4]  # (N, H)
    enc = model.motion_encoder
    embedded = enc.input_emb(units)
    forward = _plain_gru(embedded, enc.gru, enc.hidden[0, 0], "")
    backward = _plain_gru(embedded.flip(0), enc.gru, enc.hidden[1, 0], "_reverse")
    return enc.output_net(torch.cat([forward, backward]))


def test_full_length_motion_matches_upstream_padding():
    """A 196-frame motion gets no frames beyond 196 (upstream pads every motion to 196), also
    when its batch holds longer arrays."""
    model = _small_evaluator(seed=2)
    gen = torch.Generator().manual_seed(4)
    lengths = torch.tensor([196, 100, 192])
    motion = torch.randn(3, 203, 263, generator=gen)
    with torch.no_grad():
        expected = torch.stack(
            [
                _upstream_full_length_embedding(model, m, int(n))
                for m, n in zip(motion, lengths, strict=True)
            ]
        )
        for frames in (196, 203):
            got = model.motion_embedding(motion[:, :frames], lengths)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"lengths must lie in \[4, 196\]"):
        model.motion_embedding(motion, torch.tensor([200, 100, 192]))


def test_motion_embedding_validates_lengths():
    model = _small_evaluator()
    with pytest.raises(ValueError, match="lengths must lie"):
        model.motion_embedding(torch.zeros(2, 20, 263), torch.tensor([20, 2]))
    with pytest.raises(ValueError, match="motion: expected"):
        model.motion_embedding(torch.zeros(2, 20, 259), torch.tensor([20, 8]))


def test_vectorizer_tokens_pos_and_padding():
    vec = ev.WordVectorizer.from_tokens([["person/NOUN", "kick/VERB", "left/ADJ", "rare/ADJ"],
                                         ["person/NOUN"]], min_count=1)  # fmt: skip
    assert vec.vocab[:4] == ["unk", "sos", "eos", "person"]
    tokens = ["person/NOUN", "kick/NOUN", "left/ADJ", "zebra/NOUN", "person/XYZ"]
    ids, onehot, lengths = vec.encode_batch([tokens, ["person/NOUN"] * 30])
    assert ids.shape == (2, 22) and onehot.shape == (2, 22, 15)
    assert lengths.tolist() == [7, 22]
    idx = vec.index
    assert ids[0].tolist() == [idx[w] for w in
                               ["sos", "person", "kick", "left", "unk", "person", "eos"]] + (
        [idx["unk"]] * 15)  # fmt: skip
    pos_names = [ev.POS_CLASSES[i] for i in onehot[0].argmax(-1).tolist()]
    assert pos_names[:7] == ["OTHER", "NOUN", "Act_VIP", "Loc_VIP", "OTHER", "OTHER", "OTHER"]
    assert onehot.sum(-1).eq(1).all()
    assert ids[1, 21] == idx["eos"] and ids[1, 20] == idx["person"]  # 20 words kept
    rare = ev.WordVectorizer.from_tokens([["a/DET", "a/DET", "b/DET"]], min_count=2)
    assert rare.vocab == ["unk", "sos", "eos", "a"]
    with pytest.raises(ValueError, match="word/POS"):
        vec.encode_batch([["nopos"]])


def test_vip_lists_follow_upstream():
    assert len(ev.POS_CLASSES) == 15 and ev.POS_CLASSES[9] == "Loc_VIP"
    assert ev.VIP_CLASS["kick"] == "Act_VIP" and ev.VIP_CLASS["feet"] == "Body_VIP"
    assert ev.VIP_CLASS["handrail"] == "Obj_VIP" and ev.VIP_CLASS["sadly"] == "Desc_VIP"
    assert ev.VIP_CLASS["anticlockwise"] == "Loc_VIP"
    sizes = {k: len(set(v)) for k, v in ev.VIP_WORDS.items()}
    assert sizes == {"Loc_VIP": 12, "Body_VIP": 13, "Obj_VIP": 10, "Act_VIP": 34, "Desc_VIP": 12}


def _write_glove(folder: Path, words: list[str], rows: dict[str, int], data: np.ndarray):
    np.save(folder / "our_vab_data.npy", data)
    with open(folder / "our_vab_words.pkl", "wb") as f:
        pickle.dump(words, f)
    with open(folder / "our_vab_idx.pkl", "wb") as f:
        pickle.dump(rows, f)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_glove_files_are_read_with_restricted_unpickler(tmp_path):
    words = ["unk", "sos", "eos", "walk"]
    rows = {"walk": 0, "unk": 1, "sos": 2, "eos": 3}
    data = np.arange(4 * 300, dtype=np.float32).reshape(4, 300)
    _write_glove(tmp_path, words, rows, data)
    vec = ev.WordVectorizer.from_glove(tmp_path)
    np.testing.assert_array_equal(vec.vectors[vec.index["walk"]], data[0])
    np.testing.assert_array_equal(vec.vectors[vec.index["unk"]], data[1])

    model = _small_evaluator()
    model.set_word_vectors(vec)
    assert not model.word_emb.weight.requires_grad
    with torch.no_grad():
        assert model.caption_embedding([["walk/VERB"]]).shape == (1, 8)

    with open(tmp_path / "our_vab_words.pkl", "wb") as f:
        pickle.dump([_Evil()], f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        ev.WordVectorizer.from_glove(tmp_path)


def test_save_load_roundtrip(tmp_path):
    vec = ev.WordVectorizer.from_tokens([["a/DET", "person/NOUN", "kick/VERB"]])
    model = _small_evaluator()
    model.set_word_vectors(vec)
    path = tmp_path / "evaluator.safetensors"
    ev.save_evaluator(model, path)
    assert (tmp_path / "evaluator.json").exists()
    loaded = ev.load_evaluator(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    motion = torch.randn(2, 16, 263)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.motion_embedding(motion, [16, 8]), model.motion_embedding(motion, [16, 8])
        )
        tokens = [["person/NOUN", "kick/VERB"]]
        torch.testing.assert_close(
            loaded.caption_embedding(tokens), model.caption_embedding(tokens)
        )


def _toy_set(n: int, seed: int):
    """Four captions, each tied to its own motion pattern (offset + frequency)."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(99).normal(size=(4, 263)).astype(np.float32)
    words = ["kick", "walk", "jump", "sit"]
    motions, tokens = [], []
    for i in range(n):
        cls = i % 4
        frames = int(rng.integers(16, 41))
        t = np.arange(frames)[:, None] / 20
        wave = np.sin(2 * np.pi * (cls + 1) * 0.5 * t + rng.uniform(0, 6))
        noise = rng.normal(size=(frames, 263))
        motions.append((0.5 * base[cls] + 0.5 * wave + 0.5 * noise).astype(np.float32))
        tokens.append(["a/DET", "person/NOUN", f"{words[cls]}/VERB"])
    return motions, tokens


TOY_PARAMS = dict(dim_movement_hidden=32, dim_movement_latent=32, dim_text_hidden=32,
                  dim_motion_hidden=32, dim_coemb=16, ae_epochs=2, ae_window=16, epochs=12,
                  batch_size=16, lr=3e-3)  # fmt: skip


def test_train_evaluator_separates_toy_classes_deterministically():
    motions, tokens = _toy_set(96, seed=0)
    model = train_evaluator(motions, tokens, TOY_PARAMS, seed=3, progress=False)
    again = train_evaluator(motions, tokens, TOY_PARAMS, seed=3, progress=False)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key

    test_motions, test_tokens = _toy_set(64, seed=1)
    lengths = torch.tensor([len(m) // 4 * 4 for m in test_motions])
    batch = torch.zeros(64, 40, 263)
    for i, m in enumerate(test_motions):
        batch[i, : len(m)] = torch.from_numpy(m)
    with torch.no_grad():
        text_emb = model.caption_embedding(test_tokens).numpy()
        motion_emb = model.motion_embedding(batch, lengths).numpy()
    # batches of 4 = one sample per class: chance R@1 is 0.25
    r1 = np.mean([r_precision(text_emb[i : i + 4], motion_emb[i : i + 4])[0]
                  for i in range(0, 64, 4)])  # fmt: skip
    assert r1 > 0.75


def test_train_evaluator_rejects_bad_input():
    motions, tokens = _toy_set(8, seed=0)
    with pytest.raises(ValueError, match="unknown keys"):
        train_evaluator(motions, tokens, {"epoch": 1}, progress=False)
    with pytest.raises(ValueError, match="token lists"):
        train_evaluator(motions, tokens[:-1], TOY_PARAMS, progress=False)
    motions[2] = motions[2][:, :100]
    with pytest.raises(ValueError, match=r"motions\[\d+\]|val_motions\[\d+\]"):
        train_evaluator(motions, tokens, TOY_PARAMS, progress=False)
