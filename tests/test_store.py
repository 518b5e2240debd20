"""Processed motion stores, dataset selections and the synthetic ground-truth checks."""

import numpy as np
import pandas as pd
import pytest

from hmu.data.dataset import ProcessedDataset, frames_tensor
from hmu.data.store import MotionStore, write_store
from hmu.data.synth_check import conversion_error_cm, ground_truth_labels
from hmu.io import write_npy, write_parquet


def _arrays(rng, n=5):
    return [rng.normal(size=(int(rng.integers(3, 9)), 263)).astype(np.float32) for _ in range(n)]


def test_store_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    arrays = _arrays(rng)
    ids = [f"{i:06d}" for i in range(5)]
    table = write_store(tmp_path / "s", ids, arrays, {"partition": ["train"] * 5})
    store = MotionStore.open(tmp_path / "s")
    assert store.ids == ids and table["offset"].tolist() == list(
        np.cumsum([0] + [len(a) for a in arrays[:-1]])
    )
    for i, a in enumerate(arrays):
        np.testing.assert_array_equal(store.get(i), a)
    np.testing.assert_array_equal(store.get_id("000003"), arrays[3])
    with pytest.raises(KeyError, match="nope"):
        store.get_id("nope")
    with pytest.raises(ValueError, match="duplicate"):
        write_store(tmp_path / "d", ["a", "a"], arrays[:2])
    with pytest.raises(FileNotFoundError, match="missing motions.parquet"):
        MotionStore.open(tmp_path / "missing")
    assert MotionStore.open(tmp_path / "s").data.dtype == np.float32
    assert not list((tmp_path / "s").glob("*.tmp"))


def _dataset(tmp_path, rng):
    arrays = _arrays(rng, 6)
    ids = [f"m{i}" for i in range(6)]
    write_store(tmp_path / "motions", ids, arrays)
    write_npy(tmp_path / "motions" / "Mean.npy", np.zeros(263, np.float32))
    write_npy(tmp_path / "motions" / "Std.npy", np.ones(263, np.float32))
    write_parquet(
        tmp_path / "captions.parquet",
        pd.DataFrame(
            {
                "motion_id": ids,
                "caption_index": 0,
                "caption": ["c"] * 6,
                "tokens": [""] * 6,
                "start": 0.0,
                "end": 0.0,
            }
        ),
    )
    write_parquet(
        tmp_path / "splits.parquet",
        pd.DataFrame(
            {
                "motion_id": ids[::-1],
                "partition": ["train", "train", "test", "test", "val", "train"],
                "set": ["forget", "retain", "forget", "retain", "retain", "retain"],
            }
        ),
    )
    return ProcessedDataset.open("toy", tmp_path), arrays


def test_dataset_selection_follows_store_order(tmp_path):
    data, arrays = _dataset(tmp_path, np.random.default_rng(1))
    # splits are listed in reverse: m5 train/forget, m4 train/retain, m3 test/forget, ...
    assert data.select("train").tolist() == [0, 4, 5]
    assert data.select("train", "forget").tolist() == [5]
    assert data.select("test", "retain").tolist() == [2]
    with pytest.raises(ValueError, match="subset"):
        data.select("train", "toxic")
    frames, offsets, lengths = frames_tensor(data.store, np.array([4, 0]), data.mean, data.std)
    np.testing.assert_array_equal(frames[offsets[1] : offsets[1] + lengths[1]], arrays[0])


def test_ground_truth_labels_and_conversion_error(tmp_path):
    assert ground_truth_labels(tmp_path, pd.Series(["a"])) is None
    assert conversion_error_cm(tmp_path, tmp_path) == {}
    gt = tmp_path / "_groundtruth"
    write_parquet(
        gt / "metadata.parquet", pd.DataFrame({"motion_id": ["a", "b"], "toxic": [True, False]})
    )
    assert ground_truth_labels(tmp_path, pd.Series(["b", "a"])).tolist() == [False, True]
    with pytest.raises(ValueError, match="c"):
        ground_truth_labels(tmp_path, pd.Series(["c"]))
    joints = [np.zeros((10, 22, 3), np.float32), np.ones((8, 22, 3), np.float32)]
    write_store(gt, ["a", "b"], joints, array_name="joints.npy")
    shifted = [joints[0] + np.array([0.01, 0, 0], np.float32), joints[1][:7]]
    write_store(tmp_path / "conv", ["a", "b"], shifted, array_name="joints.npy")
    err = conversion_error_cm(tmp_path, tmp_path / "conv")
    assert err["joint_error_cm"] == pytest.approx(0.5, abs=1e-4)
    assert err["joint_error_cm_max"] == pytest.approx(1.0, abs=1e-4)
