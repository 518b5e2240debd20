"""Stage stats@<dataset>: toxicity statistics as JSON metrics and PNG plots (offline).

metrics/<ds>/stats.json: motions, captions, toxic share (word and substring rule), share per
keyword, forget/retain counts per partition. metrics/<ds>/plots/toxic_share.png (pie) and
keyword_share.png (bars), like the paper's Figure 2.
"""

import sys

import pandas as pd

from hmu.data.toxicity import keyword_statistics
from hmu.errors import exits_on_bad_input
from hmu.io import write_json
from hmu.params import load_params, processed_dir, section
from hmu.params_schema import check_params
from hmu.viz.plots import keyword_bars, toxicity_pie


def main(dataset: str) -> None:
    check_params(f"toxicity.{dataset}")
    cfg = section(load_params(), f"toxicity.{dataset}")
    folder = processed_dir(dataset)
    captions = pd.read_parquet(folder / "captions.parquet")
    splits = pd.read_parquet(folder / "splits.parquet")
    stats = keyword_statistics(captions, cfg["keywords"]).set_index("keyword")
    toxic = float(stats.loc["any", "share_word"])
    per_keyword = stats.drop(index="any")
    counts = splits.groupby(["partition", "set"]).size()
    summary = {
        "motions": int(len(splits)),
        "captions": int(len(captions)),
        "toxic_share": toxic,
        "toxic_share_substring": float(stats.loc["any", "share_substring"]),
        "keyword_share": per_keyword["share_word"].round(6).to_dict(),
        "keyword_share_substring": per_keyword["share_substring"].round(6).to_dict(),
        "counts": {f"{p}_{s}": int(n) for (p, s), n in counts.items()},
    }
    write_json(f"metrics/{dataset}/stats.json", summary)
    plots = f"metrics/{dataset}/plots"
    toxicity_pie(
        {"toxic": toxic, "safe": 1 - toxic},
        f"{plots}/toxic_share.png",
        title=f"{dataset}: toxic motions ({cfg['concept']})",
    )
    shares = per_keyword["share_word"][per_keyword["share_word"] > 0].to_dict()
    keyword_bars(
        shares or {"(none)": 0.0},
        f"{plots}/keyword_share.png",
        title=f"{dataset}: motions per toxic keyword",
    )
    print(f"stats@{dataset}: {summary['motions']} motions, toxic {toxic:.1%}")


if __name__ == "__main__":
    exits_on_bad_input(main)(sys.argv[1])
