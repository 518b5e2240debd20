"""Import of HumanML3D-layout folders: a small fixture in the exact upstream format."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hmu.data.humanml import mean_std
from hmu.data.humanml_io import BadInputError, import_humanml3d, read_split
from hmu.data.store import MotionStore

WALK = "a person walks forward.#a/DET person/NOUN walk/VERB forward/ADV#0.0#0.0"
KICK = "a man kicks with his left leg.#a/DET man/NOUN kick/VERB with/ADP his/DET left/ADJ leg/NOUN#0.0#0.0"  # noqa: E501
UNTAGGED = "someone turns around##0.0#0.0"  # tokens may be empty
SUB_OK = "then he jumps.#then/ADV he/PRON jump/VERB#0.5#3.0"  # frames 10:60 = 50 frames
SUB_SHORT = "a quick wave.#a/DET quick/ADJ wave/NOUN#1.0#2.0"  # 20 frames: dropped
SUB_ONLY = "a person crouches.#a/DET person/NOUN crouch/VERB#0.0#2.5"  # frames 0:50
NAN_TIMES = "a person stands.#a/DET person/NOUN stand/VERB#nan#nan"  # upstream: nan -> 0.0


def _clip(frames, seed, width=263):
    return np.random.default_rng(seed).normal(size=(frames, width)).astype(np.float32)


def write_fixture(root: Path, splits: dict[str, list[str]] | None = None) -> dict:
    """A HumanML3D folder: good clips, sub-range captions and one clip per bad input."""
    vecs, texts = root / "new_joint_vecs", root / "texts"
    vecs.mkdir(parents=True)
    texts.mkdir()
    clips = {
        "000001": (_clip(60, 1), [WALK, KICK, SUB_OK]),
        "M000001": (
            _clip(60, 2),
            [WALK.replace("forward", "forward"), KICK.replace("left", "right")],
        ),
        "000002": (_clip(120, 3), [UNTAGGED, SUB_SHORT, NAN_TIMES]),
        "000003": (_clip(80, 4), [SUB_ONLY]),
        "000004": (_clip(200, 5), [WALK]),  # too long (>= 200)
        "000011": (_clip(50, 6), [WALK]),  # truncated below
        "000012": (_clip(50, 7), [WALK]),  # NaN frames below
        "000013": (_clip(39, 8), [WALK]),  # too short
        "000014": (_clip(50, 9), []),  # empty caption file
        "000015": (_clip(50, 10), [WALK, "a person waves without fields"]),
        "000016": (_clip(50, 11, width=251), [WALK]),  # KIT width
        "000017": (_clip(50, 12), None),  # caption file missing
    }
    clips["000012"][0][7] = np.nan
    for motion_id, (motion, lines) in clips.items():
        np.save(vecs / f"{motion_id}.npy", motion)
        if lines is not None:
            (texts / f"{motion_id}.txt").write_text("".join(line + "\n" for line in lines))
    npy = vecs / "000011.npy"
    npy.write_bytes(npy.read_bytes()[:-1000])
    splits = splits or {
        "train": ["000001", "M000001", "000002", "000010", "000011", "000012"],
        "val": ["000003", "000013", "000014", "000004"],
        "test": ["000015", "000016", "000017"],
    }
    for name, ids in splits.items():
        (root / f"{name}.txt").write_text("\n".join(ids) + "\n")
    (root / "all.txt").write_text("\n".join(sum(splits.values(), [])) + "\n")
    np.save(root / "Mean.npy", np.linspace(-1, 1, 263).astype(np.float32))
    np.save(root / "Std.npy", np.linspace(0.5, 2, 263).astype(np.float32))
    return {k: v[0] for k, v in clips.items()}


@pytest.fixture
def imported(tmp_path):
    arrays = write_fixture(tmp_path / "HumanML3D")
    result = import_humanml3d(tmp_path / "HumanML3D", tmp_path / "out")
    return tmp_path, arrays, result


def test_kept_motions_partitions_and_features(imported):
    tmp_path, arrays, result = imported
    table = result.table.set_index("motion_id")
    assert list(table.index) == ["000001", "A_000001", "M000001", "000002", "A_000003"]
    assert table.loc["A_000003", "partition"] == "val"
    assert (table.loc[["000001", "A_000001", "M000001", "000002"], "partition"] == "train").all()
    assert (table["dataset"] == "humanml3d").all()
    assert table.loc["A_000001", "source"] == "new_joint_vecs/000001.npy"
    assert table.loc["A_000001", "parent_id"] == "000001"
    assert table["length"].to_dict() == {
        "000001": 60, "A_000001": 50, "M000001": 60, "000002": 120, "A_000003": 50,
    }  # fmt: skip
    store = MotionStore.open(tmp_path / "out")
    np.testing.assert_array_equal(store.get_id("000001"), arrays["000001"])
    np.testing.assert_array_equal(store.get_id("A_000001"), arrays["000001"][10:60])
    np.testing.assert_array_equal(store.get_id("A_000003"), arrays["000003"][0:50])
    np.testing.assert_array_equal(store.get_id("M000001"), arrays["M000001"])
    assert store.data.dtype == np.float32 and store.data.shape == (340, 263)


def test_captions_table(imported):
    tmp_path, _, result = imported
    captions = result.captions
    assert list(captions.columns) == ["motion_id", "caption_index", "caption", "tokens", "start",
                                      "end"]  # fmt: skip
    on_disk = pd.read_parquet(tmp_path / "out" / "captions.parquet")
    pd.testing.assert_frame_equal(on_disk, captions)
    first = captions[captions.motion_id == "000001"]
    assert first.caption.tolist() == ["a person walks forward.", "a man kicks with his left leg."]
    assert first.tokens.iloc[0] == "a/DET person/NOUN walk/VERB forward/ADV"
    sub = captions[captions.motion_id == "A_000001"].iloc[0]
    assert (sub.caption, sub.caption_index, sub.start, sub.end) == ("then he jumps.", 2, 0.5, 3.0)
    two = captions[captions.motion_id == "000002"]
    assert two.tokens.tolist() == ["", "a/DET person/NOUN stand/VERB"]  # empty tokens kept
    assert two.start.tolist() == [0.0, 0.0] and two.caption_index.tolist() == [0, 2]
    assert "000003" not in set(captions.motion_id)  # only a sub-range caption
    assert set(captions.motion_id) == set(result.table.motion_id)


def test_report_names_every_skipped_input(imported):
    tmp_path, _, result = imported
    assert result.report == {
        "missing_file": ["000010", "000017"],
        "corrupt_npy": ["000011"],
        "nan_frames": ["000012"],
        "subrange_dropped": ["000002:2"],
        "no_whole_clip_caption": ["000003"],
        "too_short": ["000013"],
        "empty_captions": ["000014"],
        "too_long": ["000004"],
        "bad_caption_line": ["000015"],
        "wrong_shape": ["000016"],
    }
    assert result.counts()["missing_file"] == 2
    text = "\n".join(result.messages)
    for name in ["000010.npy", "000011.npy", "000012.npy", "000013.npy", "000016.npy",
                 "000014.txt", "000017.txt"]:  # fmt: skip
        assert name in text
    assert "000015.txt, line 2" in text


@pytest.mark.parametrize(
    ("motion_id", "reason", "where"),
    [
        ("000010", "missing_file", "000010.npy"),
        ("000011", "corrupt_npy", "000011.npy"),
        ("000012", "nan_frames", "000012.npy"),
        ("000013", "too_short", "000013.npy"),
        ("000014", "empty_captions", "000014.txt"),
        ("000015", "bad_caption_line", "000015.txt, line 2"),
        ("000016", "wrong_shape", "000016.npy"),
        ("000017", "missing_file", "000017.txt"),
    ],
)
def test_fail_policy_raises_naming_the_file(tmp_path, motion_id, reason, where):
    write_fixture(tmp_path / "h", {"train": ["000001", motion_id], "val": [], "test": []})
    with pytest.raises(BadInputError, match=where) as info:
        import_humanml3d(tmp_path / "h", tmp_path / "out", on_error="fail")
    assert info.value.reason == reason


def test_fail_policy_passes_filters_and_clean_data(tmp_path):
    write_fixture(tmp_path / "h", {"train": ["000001", "000002", "000004"], "val": ["000003"],
                                   "test": []})  # fmt: skip
    result = import_humanml3d(tmp_path / "h", tmp_path / "out", on_error="fail")
    assert set(result.report) == {"too_long", "subrange_dropped", "no_whole_clip_caption"}
    assert len(result.table) == 4


def test_mean_std_copied_or_computed(tmp_path):
    arrays = write_fixture(tmp_path / "h")
    copied = import_humanml3d(tmp_path / "h", tmp_path / "a")
    assert copied.mean_std_source == "folder"
    np.testing.assert_array_equal(
        np.load(tmp_path / "a" / "Std.npy"), np.load(tmp_path / "h" / "Std.npy")
    )
    (tmp_path / "h" / "Mean.npy").unlink()
    with pytest.raises(FileNotFoundError, match="Mean.npy"):
        import_humanml3d(tmp_path / "h", tmp_path / "b")
    (tmp_path / "h" / "Std.npy").unlink()
    computed = import_humanml3d(tmp_path / "h", tmp_path / "b")
    assert computed.mean_std_source == "computed"
    expected = mean_std([arrays[i] for i in ("000001", "M000001", "000002")])
    np.testing.assert_allclose(computed.mean, expected[0])
    np.testing.assert_allclose(np.load(tmp_path / "b" / "Std.npy"), expected[1])


def test_structural_errors(tmp_path):
    write_fixture(tmp_path / "h", {"train": ["000001"], "val": ["000001"], "test": []})
    result = import_humanml3d(tmp_path / "h", tmp_path / "out")
    assert result.report["duplicate_id"] == ["000001"]
    assert result.table.set_index("motion_id").loc["000001", "partition"] == "train"
    (tmp_path / "h" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test.txt"):
        import_humanml3d(tmp_path / "h", tmp_path / "out")
    with pytest.raises(ValueError, match="on_error"):
        import_humanml3d(tmp_path / "h", tmp_path / "out", on_error="ignore")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        import_humanml3d(tmp_path / "nowhere", tmp_path / "out")
    assert read_split(tmp_path / "h", "train") == ["000001"]
    np.save(tmp_path / "h" / "Std.npy", np.ones(10))
    with pytest.raises(ValueError, match="Std.npy"):
        import_humanml3d(tmp_path / "h", tmp_path / "out", splits=("train",))
