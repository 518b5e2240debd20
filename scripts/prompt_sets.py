"""Print the implicit prompt sets of humanml3d and motionx and check them against the data.

Reads a pipeline checkout's processed data (data/processed/<ds>/{captions,splits}.parquet,
motions/motions.parquet), its ground truth when present (data/raw/<ds>/_groundtruth/
metadata.parquet) and its params.yaml keywords. For each dataset it builds the table twice: as
the benchmark does (ground truth -> template prompts) and as for real data (no ground truth ->
keyword-free forget test captions), prints the sizes, and checks every held-out prompt against
every caption of the dataset (all partitions: stricter than the training captions alone).

    python scripts/prompt_sets.py --root <checkout with data/processed>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml

from hmu.data import prompts as P

DATASETS = ("humanml3d", "motionx")


def report(name: str, table: pd.DataFrame, captions: pd.DataFrame, keywords: list[str]) -> None:
    """Sizes per kind and action, the held-out check, and how many seen templates occur."""
    counts = P.prompt_counts(table)
    sizes = ", ".join(f"{k}: {v['groups']} groups / {v['rows']} rows" for k, v in counts.items())
    print(f"  {name}: {sizes}")
    per_action = table.groupby(["kind", "action"], dropna=False)["mirror_group"].nunique()
    for kind in P.KINDS:
        if kind in per_action.index.get_level_values(0):
            row = per_action[kind]
            print(f"    {kind} groups per action: " + ", ".join(f"{a}={n}" for a, n in row.items()))
    print(
        f"    lengths: min {table['length'].min()}, median {int(table['length'].median())}, "
        f"max {table['length'].max()}; sides: {table['side'].value_counts().to_dict()}"
    )
    train = captions.loc[captions["partition"] == "train", "caption"]
    P.check_heldout(table, captions["caption"], keywords)  # raises on a leak or a keyword
    print(f"    check_heldout: OK against all {len(captions)} captions ({len(train)} train)")
    seen = table.loc[table["kind"] == P.KINDS[0], "template"].dropna().unique()
    if len(seen):
        found = P.templates_in_captions(seen, train)
        print(f"    seen templates found in train captions: {int(found.sum())}/{len(seen)}")
    heldout = table.loc[table["kind"] == P.KINDS[1], "template"].unique()
    print(
        f"    held-out templates found in any caption: "
        f"{int(P.templates_in_captions(heldout, captions['caption']).sum())}/{len(heldout)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="pipeline checkout")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = yaml.safe_load((args.root / "params.yaml").read_text())
    for ds in DATASETS:
        folder = args.root / "data" / "processed" / ds
        keywords = params["toxicity"][ds]["keywords"]
        splits = pd.read_parquet(folder / "splits.parquet")
        captions = pd.read_parquet(folder / "captions.parquet").merge(splits, on="motion_id")
        motions = pd.read_parquet(folder / "motions" / "motions.parquet")
        texts, lengths = P.forget_test_captions(captions, splits, motions)
        print(
            f"{ds}: {len(captions)} captions, {len(texts)} forget test captions, "
            f"keywords {keywords}"
        )
        truth = args.root / "data" / "raw" / ds / "_groundtruth" / "metadata.parquet"
        if truth.exists():
            action_lengths = P.action_lengths_from_groundtruth(pd.read_parquet(truth))
            train = captions.loc[captions["partition"] == "train", "caption"]
            table = P.implicit_prompt_table(keywords, action_lengths, texts, lengths, args.seed,
                                            training_captions=train)  # fmt: skip
            report("ground truth (benchmark)", table, captions, keywords)
        table = P.implicit_prompt_table(keywords, None, texts, lengths, args.seed)
        report("as real data (no ground truth)", table, captions, keywords)


if __name__ == "__main__":
    main()
