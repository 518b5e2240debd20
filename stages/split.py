"""Stage split@<dataset>: toxic-keyword filter -> forget/retain x train/val/test.

Writes data/processed/<ds>/splits.parquet (motion_id, partition, set, matched, concept) and
metrics/<ds>/split_vs_substring.{json,md}: how HMU's word match differs from the paper's
case-sensitive substring match (motions that change sides, with examples).
"""

import sys

import pandas as pd

from hmu.data.toxicity import assign_split, compare_with_substring
from hmu.errors import exits_on_bad_input
from hmu.io import write_json, write_parquet, write_text
from hmu.params import load_params, processed_dir, section
from hmu.params_schema import check_params


def main(dataset: str) -> None:
    check_params(f"toxicity.{dataset}")
    cfg = section(load_params(), f"toxicity.{dataset}")
    folder = processed_dir(dataset)
    captions = pd.read_parquet(folder / "captions.parquet")
    motions = pd.read_parquet(folder / "motions" / "motions.parquet")
    splits = assign_split(
        captions, cfg["keywords"], motions[["motion_id", "partition"]], concept=cfg["concept"]
    )
    write_parquet(folder / "splits.parquet", splits)
    compare = compare_with_substring(captions, cfg["keywords"])
    write_json(
        f"metrics/{dataset}/split_vs_substring.json",
        {"concept": cfg["concept"], "rows": compare.to_dict(orient="records")},
    )
    write_text(
        f"metrics/{dataset}/split_vs_substring.md",
        f"# {dataset}: word match vs the paper's substring match\n\n"
        + compare.to_markdown(index=False)
        + "\n",
    )
    counts = splits.groupby(["partition", "set"]).size().unstack(fill_value=0)
    print(f"split@{dataset} ({cfg['concept']}):\n{counts}")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
