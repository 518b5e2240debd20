"""ProcessedDataset: the one place that selects rows, ids, sets and captions."""

import numpy as np
import pandas as pd
import pytest
from tiny_setup import write_tiny_dataset

from hmu.data.dataset import ProcessedDataset, TokenTable, tokens_of, write_tokens


@pytest.fixture
def data(tmp_path):
    write_tiny_dataset(tmp_path)
    return ProcessedDataset.open("tiny", root=tmp_path / "data" / "processed" / "tiny")


def test_select_ids_and_sets_follow_the_split_by_motion_id(data):
    # the split lists motions in another order than the store: selection goes by motion_id
    data.splits = data.splits.iloc[::-1].reset_index(drop=True)
    data._row_splits = None
    ids = np.array(data.store.ids)
    split = data.splits.set_index("motion_id").loc[ids]
    for partition in ("train", "test"):
        for subset in ("all", "forget", "retain"):
            wanted = (split["partition"] == partition) & (
                (split["set"] == subset) if subset != "all" else True
            )
            rows = data.select(partition, subset)
            assert rows.tolist() == np.flatnonzero(wanted.to_numpy()).tolist()
            assert data.ids(rows).tolist() == ids[rows].tolist()
    rows = np.array([5, 0, 3])
    assert data.sets(rows).tolist() == split["set"].to_numpy()[rows].tolist()
    with pytest.raises(ValueError, match="subset must be one of"):
        data.select("train", "toxic")


def test_captions_are_read_lazily_and_grouped_per_row(data):
    assert data._captions is None  # training the VQ-VAE never reads captions
    rows = np.array([4, 1])
    positions = data.caption_rows(rows)
    frames = data.captions_of(rows)
    for row, pos, frame in zip(rows, positions, frames, strict=True):
        expected = np.flatnonzero(data.captions["motion_id"].to_numpy() == data.ids([row])[0])
        assert pos.tolist() == expected.tolist()
        assert frame["caption"].tolist() == data.captions["caption"].to_numpy()[expected].tolist()
    both = data.captions_in(rows)
    assert set(both["motion_id"]) == {"m001", "m004"} and both.index.is_monotonic_increasing
    assert tokens_of(frames[0]) == [["caption/NOUN", "1/NUM"], ["caption/NOUN", "0/NUM"]]
    data._captions = data.captions[data.captions["motion_id"] != "m004"]
    data._caption_groups = None
    with pytest.raises(ValueError, match="1 motions have no caption"):
        data.caption_rows(rows)


def test_derived_tables_must_match_the_store_and_captions(data):
    table = TokenTable(np.zeros((24, 49, 2), np.int16), np.arange(24), 8)
    write_tokens(data.folder / "tokens_all.npz", table)
    back = data.tokens("all")
    assert back.nb_code == 8 and back.tokens.dtype == np.int16
    assert np.array_equal(back.n_tokens, table.n_tokens)
    write_tokens(
        data.folder / "tokens_retain.npz", TokenTable(table.tokens[:3], table.n_tokens[:3], 8)
    )
    with pytest.raises(ValueError, match="rerun tokenize@tiny-retain"):
        data.tokens("retain")
    np.save(data.folder / "text_emb.npy", np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="rerun text_emb@tiny"):
        data.text_emb()
    assert isinstance(data.captions, pd.DataFrame)
