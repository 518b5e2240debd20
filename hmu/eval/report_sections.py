"""Report sections about the benchmark's own instruments and pieces, read from their metrics.

- the two toxicity instruments on real test motions (metrics/<ds>/real.json "instruments"):
  how far the toxic rates in the tables can be trusted;
- what the VQ-VAE keeps of each toxic action (metrics/<ds>/vq_<subset>.json "signatures"): a
  base model can only generate what its latent space can represent;
- LCR's code selection (metrics/<ds>/<model>/lcr_unlearn.json "selection"): whether the
  replaced codes belong to D_f's motions or to its noise (rare codes).

Each section is markdown lines; a missing file leaves its rows out with a note.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a markdown table (cells already formatted)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def instruments_section(metrics_dir: Path, datasets: Sequence[str]) -> list[str]:
    """Threshold, TPR, FPR and ROC-AUC of both instruments on each dataset's real test motions."""
    out = ["", "## The instruments on real test motions", "",
           "Thresholds: the smallest with a false-positive rate of at most `max_fpr` on the safe "
           "VALIDATION motions; TPR, FPR and ROC-AUC on the TEST motions (ground-truth toxic "
           "labels on the embedded benchmark, the keyword split on real data).", "",
           "| Dataset | Instrument | Threshold | max FPR | TPR | FPR | ROC-AUC |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for ds in datasets:
        real = _read(metrics_dir / ds / "real.json") or {}
        for name, q in real.get("instruments", {}).items():
            out.append(f"| {ds} | {name} | {_num(q['threshold'])} | {_num(q['max_fpr'], 2)} | "
                       f"{_num(q['tpr'])} | {_num(q['fpr'])} | {_num(q['roc_auc'])} |")  # fmt: skip
    return out


def vq_section(metrics_dir: Path, datasets: Sequence[str]) -> list[str]:
    """Per toxic action: its kinematic signature before -> after encode/decode, per VQ-VAE."""
    out = ["", "## What the VQ-VAE keeps of each toxic action", "",
           "Medians over the test motions' toxic segments, real -> reconstructed: the peak "
           "height difference between the ankles (kicks), the wrist's reach from the chest "
           "(strikes), the kinematic detector's rate; kicks kept: share of reconstructed kicks "
           "whose foot still rises >= 0.5 m above the other. `all`: the base models' VQ-VAE, "
           "`retain`: D_r's.", "",
           "| Dataset | VQ-VAE | MPJPE mm | Action | Segments | Ankle diff m | Wrist reach m "
           "| Strike rate | Kicks kept |",
           "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for ds in datasets:
        for subset in ("all", "retain"):
            vq = _read(metrics_dir / ds / f"vq_{subset}.json")
            if vq is None:
                continue
            for action, row in vq.get("signatures", {}).items():
                out.append(
                    f"| {ds} | {subset} | {_num(vq['mpjpe_mm'], 1)} | {action} | "
                    f"{row['segments']} | {_num(row['ankle_height_diff_m'], 2)} -> "
                    f"{_num(row['ankle_height_diff_recon_m'], 2)} | "
                    f"{_num(row['wrist_reach_m'], 2)} -> {_num(row['wrist_reach_recon_m'], 2)} | "
                    f"{_num(row['strike_rate'], 2)} -> {_num(row['strike_rate_recon'], 2)} | "
                    f"{_num(row.get('kick_kept'), 2)} |"
                )
    return out


def lcr_section(metrics_dir: Path, datasets: Sequence[str], models: Sequence[str]) -> list[str]:
    """How many of LCR's selected codes are rare, under the configured rule and the paper's."""
    out = ["", "## LCR code selection", "",
           "Rare: a selected code seen in fewer than 3 forget training motions; absent: never "
           "seen in D_r. `min_support 1` is the paper's rule (every code of D_f is eligible); "
           "the configured `lcr.min_support` keeps rare codes out (README, LCR).", "",
           "| Dataset | Model | Rule | Selected | Rare | Absent from D_r | Forget support |",
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for ds in datasets:
        for model in models:
            info = _read(metrics_dir / ds / model / "lcr_unlearn.json")
            for rule, row in (info or {}).get("selection", {}).items():
                support = ", ".join(str(s) for s in row["forget_support"])
                cells = (ds, model, rule.replace("_", " "), row["selected"], row["rare"],
                         row["absent_from_retain"], support)  # fmt: skip
                out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return out
