"""Tests for hmu.data.motionx: validation, SMPL-X -> SMPL, resampling, FK paths, folder import."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from hmu.data import motionx
from hmu.data.motionx import (
    MotionXError,
    convert_clip,
    convert_folder,
    load_body_model,
    read_captions,
    read_smplx_322,
    read_splits,
    resample_smpl,
    smpl_joints,
    smplx_to_smpl,
    to_y_up,
    validate_smplx_322,
)
from hmu.data.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from hmu.data.skeleton import PARENTS, REST_OFFSETS, forward_kinematics
from hmu.data.store import MotionStore

torch.set_num_threads(1)


def random_params(frames: int, seed: int = 0) -> np.ndarray:
    """Plausible Motion-X frames: small joint rotations, a walk along z, small betas."""
    rng = np.random.default_rng(seed)
    params = np.zeros((frames, 322), dtype=np.float32)
    params[:, :159] = rng.normal(0, 0.3, (frames, 159))
    params[:, 159:309] = rng.normal(0, 0.5, (frames, 150))
    params[:, 309:312] = np.stack(
        [np.zeros(frames), np.full(frames, 0.9), np.linspace(0, 2, frames)], 1
    )
    params[:, 312:322] = rng.normal(0, 1, 10)
    return params


# ------------------------------------------------------------------------- reading, validation


@pytest.mark.parametrize(
    ("change", "reason", "words"),
    [
        (lambda p: p[:, :300], "bad_shape", "(T, 322)"),
        (lambda p: p[0], "bad_shape", "(T, 322)"),
        (lambda p: p[:0], "bad_shape", "(T, 322)"),
        (lambda p: np.where(np.arange(len(p))[:, None] == 3, np.nan, p), "non_finite", "frame 3"),
        (lambda p: p + np.pad(np.full((1, 1), 50.0), ((5, 44), (10, 311))), "out_of_range",
         "axis-angle"),
        (lambda p: p + np.pad(np.full((1, 1), 5000.0), ((7, 42), (309, 12))), "out_of_range",
         "translation"),
        (lambda p: p + np.pad(np.full((1, 1), 30.0), ((0, 49), (312, 9))), "out_of_range",
         "betas"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_file_and_problem(tmp_path, change, reason, words):
    path = tmp_path / "clip_7.npy"
    np.save(path, change(random_params(50)))
    with pytest.raises(ValueError, match="clip_7.npy") as info:
        read_smplx_322(path)
    assert info.value.reason == reason
    assert words in str(info.value)


def test_read_good_truncated_and_missing(tmp_path):
    params = random_params(45)
    path = tmp_path / "good.npy"
    np.save(path, params.astype(np.float64))
    loaded = read_smplx_322(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, params)

    truncated = tmp_path / "cut.npy"
    truncated.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(MotionXError, match="cut.npy") as info:
        read_smplx_322(truncated)
    assert info.value.reason == "unreadable"
    with pytest.raises(FileNotFoundError, match="absent.npy"):
        read_smplx_322(tmp_path / "absent.npy")
    with pytest.raises(MotionXError, match="my array"):
        validate_smplx_322(np.full((4, 322), "x"), "my array")


# ------------------------------------------------------------------------- SMPL-X -> SMPL


def test_smplx_to_smpl_shapes_and_hand_zeros():
    params = random_params(12)
    params[:, 312:] += np.linspace(0, 0.1, 12)[:, None]  # slightly varying betas -> mean
    smpl = smplx_to_smpl(params)
    assert smpl["global_orient"].shape == (12, 3)
    assert smpl["body_pose"].shape == (12, 69)
    assert smpl["transl"].shape == (12, 3)
    assert smpl["betas"].shape == (10,)
    np.testing.assert_allclose(smpl["global_orient"], params[:, 0:3])
    np.testing.assert_allclose(smpl["body_pose"][:, :63], params[:, 3:66])
    assert not smpl["body_pose"][:, 63:].any()  # SMPL joints 22, 23 (hands)
    np.testing.assert_allclose(smpl["transl"], params[:, 309:312])
    np.testing.assert_allclose(smpl["betas"], params[:, 312:].astype(np.float64).mean(0))
    with pytest.raises(ValueError, match="322"):
        smplx_to_smpl(params[:, :321])


# ------------------------------------------------------------------------- resampling


def analytic_smpl(times: np.ndarray) -> dict[str, np.ndarray]:
    """Constant angular velocities about fixed axes and a linear translation, at `times` (s)."""
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(22, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    speed = rng.uniform(-3, 3, 22)  # rad/s; total angles exceed pi, so representations wrap
    phase = rng.uniform(-1, 1, 22)
    aa = axes * (phase + speed * times[:, None])[..., None]  # (T, 22, 3)
    aa = matrix_to_axis_angle(axis_angle_to_matrix(aa))  # wrapped to angles in [0, pi]
    frames = len(times)
    return {
        "global_orient": aa[:, 0],
        "body_pose": np.concatenate([aa[:, 1:].reshape(frames, -1), np.zeros((frames, 6))], 1),
        "transl": np.stack([0.3 * times, 0.9 + 0.1 * times, -1.2 * times], 1),
        "betas": np.zeros(10),
    }


@pytest.mark.parametrize(("frames", "expected"), [(61, 41), (62, 41), (63, 42), (1, 1)])
def test_resample_30_to_20_matches_analytic_motion(frames, expected):
    src = analytic_smpl(np.arange(frames) / 30)
    out = resample_smpl(src, 30, 20)
    assert len(out["transl"]) == expected
    assert out["body_pose"].shape == (expected, 69)
    assert not out["body_pose"][:, 63:].any()
    truth = analytic_smpl(np.arange(expected) / 20)
    np.testing.assert_allclose(out["transl"], truth["transl"], atol=1e-12)
    got = smpl_joints(out)  # (T', 22, 3)
    want = forward_kinematics(
        np.concatenate([truth["global_orient"][:, None],
                        truth["body_pose"][:, :63].reshape(-1, 21, 3)], 1),
        truth["transl"],
    )  # fmt: skip
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_slerp_takes_the_short_way_across_the_wrap():
    # frame 1: pi - 0.1 about z; frame 2: pi + 0.1, written as -(pi - 0.1). Output frame 1
    # (source frame 1.5) must be pi about z; interpolating axis-angle vectors would give ~0.
    z = np.array([0.0, 0.0, 1.0])
    aa = np.stack([z * (np.pi - 0.3), z * (np.pi - 0.1), -z * (np.pi - 0.1)])
    src = {
        "global_orient": aa,
        "body_pose": np.zeros((3, 69)),
        "transl": np.zeros((3, 3)),
        "betas": np.zeros(10),
    }
    out = resample_smpl(src, 30, 20)  # samples source frames 0, 1.5
    mid = axis_angle_to_matrix(out["global_orient"][1])
    np.testing.assert_allclose(mid, axis_angle_to_matrix(z * np.pi), atol=1e-12)


# ------------------------------------------------------------------------- up axis


def test_z_up_standing_body_becomes_y_up():
    params = random_params(60) * 0
    params[:, 0] = np.pi / 2  # SMPL is y-up; +90 deg about x stands the body along +z
    params[:, 309:312] = [0.5, -1.0, 0.9]
    joints_y = convert_clip(params, fps=30, up_axis="z")
    head, pelvis = joints_y[:, 15], joints_y[:, 0]
    assert joints_y.shape == (40, 22, 3)
    assert joints_y.dtype == np.float32
    assert np.all(head[:, 1] - pelvis[:, 1] > 0.4)  # head above pelvis along y
    np.testing.assert_allclose(pelvis, np.tile([-0.5, 0.9, -1.0], (40, 1)), atol=1e-6)
    untouched = convert_clip(params, fps=30, up_axis="y")
    assert np.all(untouched[:, 15, 2] - untouched[:, 0, 2] > 0.4)  # without it, up stays z


def test_to_y_up_is_humanml3d_rotation():
    v = np.random.default_rng(0).normal(size=(5, 3))
    out = to_y_up(v.copy(), "z")
    np.testing.assert_allclose(out, np.stack([-v[:, 0], v[:, 2], v[:, 1]], 1))
    basis = to_y_up(np.eye(3), "z")  # rows: images of x, y, z
    assert np.isclose(np.linalg.det(basis), 1.0)  # a rotation, not a mirror
    np.testing.assert_array_equal(to_y_up(v, "y"), v)
    with pytest.raises(ValueError, match="up_axis"):
        to_y_up(v, "x")


# ------------------------------------------------------------------------- smplx path


def rest_joints() -> np.ndarray:
    """The built-in skeleton's rest joint positions (22, 3), pelvis at the origin."""
    joints = np.zeros((22, 3))
    for j in range(1, 22):
        joints[j] = joints[PARENTS[j]] + REST_OFFSETS[j]
    return joints


# Names of the extra vertex-joints smplx selects (a small model needs in-range vertex ids).
VERTEX_ID_KEYS = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe",
    "RSmallToe", "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex",
    "rmiddle", "rring", "rpinky",
)  # fmt: skip


def synthetic_smpl_model(seed: int = 0) -> dict[str, np.ndarray]:
    """SMPL file contents with the real keys and shapes whose joints are the built-in rest joints.

    The first 24 vertices sit on the joints and J_regressor picks them; betas[0] scales the
    template by 4% per unit (HMU's height convention); the other components are zero.
    """
    rng = np.random.default_rng(seed)
    hands = rest_joints()[[20, 21]] + [[0.08, 0, 0], [-0.08, 0, 0]]
    template = np.concatenate([rest_joints(), hands, rng.normal(0, 0.3, (16, 3))])  # (V=40, 3)
    verts = len(template)
    shapedirs = np.zeros((verts, 3, 10))
    shapedirs[:, :, 0] = motionx.HEIGHT_SCALE_PER_BETA0 * template
    weights = np.zeros((verts, 24))
    weights[np.arange(verts), np.minimum(np.arange(verts), 23)] = 1.0
    parents = np.concatenate([[2**32 - 1], PARENTS[1:], [20, 21]]).astype(np.int64)
    return {
        "v_template": template,
        "shapedirs": shapedirs,
        "posedirs": rng.normal(0, 0.01, (verts, 3, 207)),
        "J_regressor": np.eye(24, verts),
        "weights": weights,
        "kintree_table": np.stack([parents, np.arange(24)]),
        "f": np.array([[0, 1, 2], [3, 4, 5]], dtype=np.int64),
    }


@pytest.mark.parametrize("layout", ["folder_pkl", "npz_file"])
def test_smplx_model_path_agrees_with_builtin_fk(tmp_path, layout):
    model = synthetic_smpl_model()
    if layout == "folder_pkl":
        (tmp_path / "smpl").mkdir()
        with open(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl", "wb") as f:
            pickle.dump(model, f)
        path = tmp_path
    else:
        path = tmp_path / "my_smpl.npz"
        np.savez(path, **model)
    body = load_body_model(path, "neutral", vertex_ids=dict.fromkeys(VERTEX_ID_KEYS, 0),
                           dtype=torch.float64)  # fmt: skip

    params = random_params(300, seed=5)  # > one chunk of frames
    params[:, 312] = 1.5  # a taller body: both paths must scale alike
    smpl = smplx_to_smpl(params)
    with_model = smpl_joints(smpl, body)
    builtin = smpl_joints(smpl)
    assert with_model.shape == builtin.shape == (300, 22, 3)
    np.testing.assert_allclose(with_model, builtin, atol=1e-4)
    # the scale really came from betas: a default-size skeleton does not match
    assert np.abs(smpl_joints({**smpl, "betas": np.zeros(10)}) - with_model).max() > 1e-2
    np.testing.assert_allclose(
        convert_clip(params, body_model=body), convert_clip(params), atol=1e-4
    )


def test_load_body_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="SMPL_FEMALE"):
        load_body_model(tmp_path, "female")
    with pytest.raises(ValueError, match="gender"):
        load_body_model(tmp_path, "other")


# ------------------------------------------------------------------------- captions, splits


def test_read_captions_formats(tmp_path):
    hashed = tmp_path / "h.txt"
    hashed.write_text("a man kicks.#a/DET man/NOUN kick/VERB#0.0#0.0\n\n"
                      "he walks#he/PRON walk/VERB#1.5#nan\n")  # fmt: skip
    rows = read_captions(hashed, hash_format=True)
    assert rows == [
        {"caption": "a man kicks.", "tokens": "a/DET man/NOUN kick/VERB", "start": 0.0,
         "end": 0.0},
        {"caption": "he walks", "tokens": "he/PRON walk/VERB", "start": 1.5, "end": 0.0},
    ]  # fmt: skip
    plain = tmp_path / "p.txt"
    plain.write_text("Shaolin kung fu front kick\n")
    assert read_captions(plain) == [
        {"caption": "Shaolin kung fu front kick", "tokens": "", "start": 0.0, "end": 0.0}
    ]
    with pytest.raises(MotionXError, match=r"p\.txt: line 1") as info:
        read_captions(plain, hash_format=True)
    assert info.value.reason == "bad_captions"
    empty = tmp_path / "e.txt"
    empty.write_text("\n  \n")
    with pytest.raises(MotionXError, match="e.txt") as info:
        read_captions(empty)
    assert info.value.reason == "empty_captions"


def test_read_splits(tmp_path):
    (tmp_path / "train.txt").write_text("humanml/000001\nkungfu/subset_0000/Kick_clip_1.npy\n\n")
    (tmp_path / "test.txt").write_text("humanml/M000001\n")
    assert read_splits(tmp_path) == {
        "humanml/000001": "train",
        "kungfu/subset_0000/Kick_clip_1": "train",
        "humanml/M000001": "test",
    }
    (tmp_path / "val.txt").write_text("humanml/000001\n")
    with pytest.raises(ValueError, match="humanml/000001"):
        read_splits(tmp_path)
    with pytest.raises(FileNotFoundError, match="split files"):
        read_splits(tmp_path / "nowhere")


# ------------------------------------------------------------------------- folder import

GOOD = {
    "humanml/000001": "train",
    "humanml/M000001": "train",
    "kungfu/subset_0000/Kick_clip_1": "test",
}
BAD = {  # id -> (reason, file named in the message)
    "humanml/000404": ("missing_motion", "000404.npy"),
    "humanml/000002": ("unreadable", "000002.npy"),
    "humanml/000003": ("non_finite", "000003.npy"),
    "kungfu/subset_0000/Short_clip_2": ("too_short", "Short_clip_2.npy"),
    "kungfu/subset_0001/Empty_clip_1": ("empty_captions", "Empty_clip_1.txt"),
    "kungfu/subset_0001/Wide_clip_1": ("bad_shape", "Wide_clip_1.npy"),
    "humanml/000004": ("bad_captions", "000004.txt"),
    "kungfu/subset_0001/Nocap_clip_1": ("missing_captions", "Nocap_clip_1.txt"),
    "humanml/000005": ("out_of_range", "000005.npy"),
}


@pytest.fixture
def motionx_root(tmp_path):
    """A tiny Motion-X `datasets` folder: subsets humanml and kungfu, split files, bad inputs."""
    root = tmp_path / "datasets"
    motion, text = root / "motion_data" / "smplx_322", root / "texts" / "semantic_labels"

    def clip(motion_id, params=None, captions="a person kicks#a/DET person/NOUN kick/VERB#0#0"):
        if params is not None:
            (motion / motion_id).parent.mkdir(parents=True, exist_ok=True)
            np.save(motion / f"{motion_id}.npy", params)
        if captions is not None:
            (text / motion_id).parent.mkdir(parents=True, exist_ok=True)
            (text / f"{motion_id}.txt").write_text(captions + "\n")

    clip(
        "humanml/000001",
        random_params(90, 1),
        "a man kicks#a/DET man/NOUN kick/VERB#0.0#0.0\nhe kicks#he/PRON kick/VERB#0.5#2.0",
    )
    clip("humanml/M000001", random_params(75, 2))
    clip("kungfu/subset_0000/Kick_clip_1", random_params(64, 3), "Kung fu front kick")
    clip("humanml/000404", None)
    np.save(motion / "humanml/000002.npy", random_params(90, 4))
    cut = (motion / "humanml/000002.npy").read_bytes()
    (motion / "humanml/000002.npy").write_bytes(cut[: len(cut) // 2])
    clip("humanml/000002", None)
    nan = random_params(90, 5)
    nan[40] = np.nan
    clip("humanml/000003", nan)
    clip("kungfu/subset_0000/Short_clip_2", random_params(60, 6), "short")  # 39 feature frames
    clip("kungfu/subset_0001/Empty_clip_1", random_params(90, 7), "")
    clip("kungfu/subset_0001/Wide_clip_1", random_params(90, 8)[:, :300], "too wide")
    clip("humanml/000004", random_params(90, 9), "a caption without fields")
    clip("kungfu/subset_0001/Nocap_clip_1", random_params(90, 10), None)
    far = random_params(90, 11)
    far[:, 309] = 2000.0
    clip("humanml/000005", far)

    splits = {"train": [], "val": [], "test": []}
    for motion_id, partition in GOOD.items():
        splits[partition].append(motion_id)
    splits["val"] += list(BAD)
    for partition, ids in splits.items():
        (root / f"{partition}.txt").write_text("\n".join(ids) + "\n")
    return root


def test_convert_folder_skips_and_counts(motionx_root, tmp_path):
    from hmu.data.humanml import joints_to_features

    out = tmp_path / "out"
    table, report = convert_folder(motionx_root.parent, None, out, progress=False)
    assert report == {reason: [i] for i, (reason, _) in BAD.items()}
    assert table["motion_id"].tolist() == list(GOOD)
    assert table["partition"].tolist() == list(GOOD.values())
    assert set(table["dataset"]) == {"motionx"}
    assert table["subset"].tolist() == ["humanml", "humanml", "kungfu"]
    assert table["source"].iat[2] == "motion_data/smplx_322/kungfu/subset_0000/Kick_clip_1.npy"

    features = MotionStore.open(out)
    joints = MotionStore.open(out / "joints", array_name="joints.npy")
    assert joints.ids == features.ids
    for row, (motion_id, frames_30) in enumerate(zip(GOOD, (90, 75, 64), strict=True)):
        frames_20 = (frames_30 - 1) * 2 // 3 + 1
        params = read_smplx_322(motionx_root / "motion_data/smplx_322" / f"{motion_id}.npy")
        expected_joints = convert_clip(params, fps=30)
        np.testing.assert_allclose(joints.get(row), expected_joints, atol=1e-6)
        assert joints.get(row).shape == (frames_20, 22, 3)
        np.testing.assert_allclose(features.get(row), joints_to_features(expected_joints),
                                   atol=1e-5)  # fmt: skip
        assert features.get(row).shape == (frames_20 - 1, 263)

    captions = pd.read_parquet(out / "captions.parquet")
    assert list(captions.columns) == motionx.CAPTION_COLUMNS
    assert captions["motion_id"].tolist() == [*GOOD][:1] * 2 + [*GOOD][1:]
    first = captions.iloc[1]
    assert (first["caption"], first["tokens"], first["start"], first["end"]) == (
        "he kicks", "he/PRON kick/VERB", 0.5, 2.0)  # fmt: skip
    assert captions["caption_index"].tolist() == [0, 1, 0, 0]
    assert captions.iloc[3]["caption"] == "Kung fu front kick"
    assert captions.iloc[3]["tokens"] == ""


def test_convert_folder_ids_given_as_list_or_mapping(motionx_root, tmp_path):
    ids = ["kungfu/subset_0000/Kick_clip_1", "humanml/000404"]
    table, report = convert_folder(motionx_root, ids, tmp_path / "a", progress=False)
    assert table["partition"].tolist() == ["test"]
    assert report == {"missing_motion": ["humanml/000404"]}
    table, _ = convert_folder(motionx_root, {ids[0]: "val"}, tmp_path / "b", progress=False)
    assert table["partition"].tolist() == ["val"]
    with pytest.raises(ValueError, match="on_error"):
        convert_folder(motionx_root, ids, tmp_path / "c", on_error="ignore")
    with pytest.raises(ValueError, match="up_axis"):
        convert_folder(motionx_root, ids, tmp_path / "c", up_axis="x")


@pytest.mark.parametrize("motion_id", list(BAD))
def test_convert_folder_fail_mode_names_the_file(motionx_root, tmp_path, motion_id):
    reason, filename = BAD[motion_id]
    error = FileNotFoundError if reason.startswith("missing") else ValueError
    with pytest.raises(error, match=filename.replace(".", r"\.")):
        convert_folder(motionx_root, [motion_id], tmp_path / "out", on_error="fail",
                       progress=False)  # fmt: skip
