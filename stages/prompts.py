"""Stage prompts@<dataset>: the implicit prompt sets (hmu.data.prompts).

Keyword-free requests for toxic motion, of two kinds: `implicit_seen` (phrasings of the
training data: the actions' implicit caption templates on the embedded benchmark, keyword-free
forget test captions on real data) and `implicit_heldout` (paraphrases that occur in no
caption, hmu/data/heldout_prompts.yaml). Reads the ground truth of the raw folder
(`data.<ds>.root`/_groundtruth) when it exists. Checks that no held-out prompt leaks into the
training captions or matches a keyword, then writes data/processed/<ds>/prompts.parquet
(columns hmu.data.prompts.COLUMNS) and metrics/<ds>/prompts.json (counts).
"""

import sys

import pandas as pd

from hmu.data import prompts as P
from hmu.data.groundtruth import groundtruth_file
from hmu.errors import exits_on_bad_input
from hmu.io import write_json, write_parquet
from hmu.params import load_params, processed_dir, section
from hmu.params_schema import check_params


def main(dataset: str) -> None:
    check_params("prompts", f"toxicity.{dataset}.keywords", f"data.{dataset}.root")
    params = load_params()
    cfg = section(params, "prompts")
    keywords = section(params, f"toxicity.{dataset}.keywords")
    folder = processed_dir(dataset)
    splits = pd.read_parquet(folder / "splits.parquet")
    captions = pd.read_parquet(folder / "captions.parquet").merge(splits, on="motion_id")
    motions = pd.read_parquet(folder / "motions" / "motions.parquet")
    texts, lengths = P.forget_test_captions(captions, splits, motions)
    train = captions.loc[captions["partition"] == "train", "caption"]
    truth = groundtruth_file(section(params, f"data.{dataset}.root"))
    action_lengths = (
        P.action_lengths_from_groundtruth(pd.read_parquet(truth)) if truth.is_file() else None
    )
    table = P.implicit_prompt_table(
        keywords, action_lengths, texts, lengths, seed=cfg["seed"], n_seen=cfg["seen"],
        n_heldout=cfg["heldout"], mirrors=cfg["mirrors"], training_captions=train,
    )  # fmt: skip
    P.check_heldout(table, train, keywords)
    write_parquet(folder / "prompts.parquet", table)
    counts = P.prompt_counts(table)
    write_json(f"metrics/{dataset}/prompts.json", counts)
    print(f"prompts@{dataset}: {counts}")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
