"""A one-page picture of the pipeline: the graph of stage KINDS, generated from dvc.yaml.

`dvc dag` draws the expanded stages (one per dataset, model, method: far too wide to read);
this collapses them to their kind (the name before "@": unlearn@humanml3d-bamm-lcr -> unlearn),
takes the edges from DVC's own graph (an out of one stage that another depends on) and drops
the edges implied by longer paths (transitive reduction), so the picture stays one screen.

    python scripts/pipeline_graph.py            # print the mermaid block
    python scripts/pipeline_graph.py --update   # rewrite it in README.md between the markers

tests/test_dvc_views.py fails when README.md's block differs from the generated one.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- pipeline-graph:start -->", "<!-- pipeline-graph:end -->"


def stage_kind(name: str) -> str:
    """'unlearn@humanml3d-bamm-lcr' -> 'unlearn' (a stage without foreach/matrix is its kind)."""
    return name.split("@", 1)[0]


def kind_edges(repo_root: str | os.PathLike = ROOT) -> tuple[list[str], list[tuple[str, str]]]:
    """(kinds in dvc.yaml order, [(upstream kind, downstream kind)]) from DVC's stage graph,
    transitively reduced."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(repo_root)) as repo:
        graph = repo.index.graph  # an edge points from a stage to a stage it depends on
        kinds = list(dict.fromkeys(stage_kind(s.name) for s in repo.index.stages))
        edges = {(stage_kind(dep.name), stage_kind(stage.name)) for stage, dep in graph.edges}
    kind_graph = nx.DiGraph([(a, b) for a, b in edges if a != b])
    kind_graph.add_nodes_from(kinds)
    reduced = nx.transitive_reduction(kind_graph)
    order = {kind: i for i, kind in enumerate(kinds)}
    return kinds, sorted(reduced.edges, key=lambda e: (order[e[0]], order[e[1]]))


def mermaid_block(repo_root: str | os.PathLike = ROOT) -> str:
    """The README block: markers around a mermaid flowchart, one line per edge."""
    kinds, edges = kind_edges(repo_root)
    linked = {k for edge in edges for k in edge}
    lines = ["```mermaid", "flowchart LR"]
    lines += [f"  {a} --> {b}" for a, b in edges]
    lines += [f"  {k}" for k in kinds if k not in linked]
    return "\n".join([START, *lines, "```", END])


def readme_block(text: str) -> str:
    """The block between the markers (markers included); ValueError when they are missing."""
    if START not in text or END not in text:
        raise ValueError(f"README.md: markers {START} ... {END} not found")
    return text[text.index(START) : text.index(END) + len(END)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the block in README.md")
    args = parser.parse_args()
    block = mermaid_block()
    if not args.update:
        print(block)
        return
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    readme.write_text(text.replace(readme_block(text), block), encoding="utf-8")
    print(f"updated the pipeline graph in {readme.name}")


if __name__ == "__main__":
    main()
