"""Study 4, causal intervention on the base-layer codes (issue 14 item 4; the paper's figure
on the codes LCR selects, Sec. 5).

Do the codes LCR selects carry the toxic concept, or only mark the prompts that ask for it?
Two interventions on the base model's own generations, both against a control that edits the
same positions with codes LCR did not select:

- injection: for retain prompts, a share p of each motion's layer-0 tokens (positions that do
  not already hold a selected code) is overwritten with selected codes drawn uniformly; the
  control writes random safe codes (present in D_r, not selected: LCR's own safe pool) at the
  SAME positions. If the codes carry the concept, the toxic rate rises with p and the control
  stays flat.
- removal: for explicit forget prompts, a share p of the positions holding selected codes is
  overwritten with each code's nearest safe code (Euclidean, in the layer-0 codebook); the
  control replaces as many positions that hold no selected code with their own nearest other
  safe code. If the codes carry the concept, the toxic rate falls faster than the control's.

The residual layers after the swap: MoMask samples residual codes conditioned on the layer-0
tokens, so residual codes drawn for the old token refine the quantisation error of a vector
that is no longer there. "rerun" (the default) samples the residual layers again from the
edited layer-0 tokens, which is what the model itself would have generated around those tokens;
"keep" reuses the original residual codes, which mirrors LCR's mechanism (LCR swaps code
vectors under unchanged ids, so the residual transformer never sees the change). Both are
computed (keep costs one decode); every edited variant and its control share the residual
sampler's random stream, so the comparison is paired down to the Gumbel noise.

Selection: `hmu.unlearn.lcr.layer_selection` on the cached tokens of the forget and retain
training motions (data/processed/<ds>/tokens_all.npz) with the `lcr` block's r, rule,
absent_guard and min_support, exactly as the lcr unlearn stage selects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from hmu.data.humanml import MAX_FRAMES, UNIT
from hmu.eval import stats
from hmu.precision import autocast
from hmu.studies.common import save_figure
from hmu.unlearn.lcr import code_presence, layer_selection

Share = Annotated[float, Field(gt=0, le=1)]
DIRECTIONS = ("inject", "remove")
RESIDUAL_MODES = ("rerun", "keep")
INSTRUMENTS = ("toxic_rate", "kinematic_rate")
MIN_FRAMES = 40  # shortest prompt length (the protocol's MIN_LEN)


class Config(BaseModel):
    """params.yaml `studies.causal`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    datasets: Annotated[list[str], Field(min_length=1)] = ["humanml3d"]
    models: Annotated[list[Literal["momask", "bamm"]], Field(min_length=1)] = ["momask"]
    inject_shares: Annotated[list[Share], Field(min_length=1)] = [0.1, 0.25, 0.5]
    remove_shares: Annotated[list[Share], Field(min_length=1)] = [0.25, 0.5, 1.0]
    residual: Annotated[list[Literal["rerun", "keep"]], Field(min_length=1)] = ["rerun", "keep"]
    repetitions: Annotated[int, Field(ge=2)] = 3
    prompts: Annotated[int, Field(ge=2)] = 96
    seed: Annotated[int, Field(ge=0)] = 0


# ------------------------------------------------------------------ selection


def lcr_codes(
    forget_tokens: np.ndarray, retain_tokens: np.ndarray, nb_code: int, **rule
) -> tuple[np.ndarray, np.ndarray]:
    """(selected codes, safe pool) of layer 0 as LCR picks them.

    forget_tokens (N_f, L), retain_tokens (N_r, L): layer-0 codes, -1 = padding. rule:
    layer_selection's r, rule, absent_guard, min_support. The safe pool is lcr_delta's: the codes
    present in D_r and not selected (every unselected code if none is)."""
    forget = code_presence(forget_tokens, nb_code)
    retain = code_presence(retain_tokens, nb_code)
    selected = layer_selection(forget, retain, len(forget_tokens), len(retain_tokens), **rule)
    pool = np.setdiff1d(np.flatnonzero(retain > 0), selected)
    if pool.size == 0:
        pool = np.setdiff1d(np.arange(nb_code), selected)
    return selected, pool


def nearest_safe(codebook: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """(K,) for every code of a codebook (K, D) the nearest code of `pool` other than itself
    (squared Euclidean distance between code vectors)."""
    codebook = np.asarray(codebook, dtype=np.float64)
    safe = codebook[pool]  # (P, D)
    dist = (codebook**2).sum(1)[:, None] - 2 * codebook @ safe.T + (safe**2).sum(1)[None]
    dist[pool, np.arange(pool.size)] = np.inf  # a pool code never maps onto itself
    return pool[dist.argmin(1)]


# ------------------------------------------------------------------ token edits


def valid_mask(lengths: np.ndarray, width: int) -> np.ndarray:
    """(B, N) True inside each motion's token length."""
    return np.arange(width)[None] < np.asarray(lengths)[:, None]


def share_counts(share: float, totals: np.ndarray) -> np.ndarray:
    """round(share * totals), halves rounded up (B,) int."""
    return np.floor(share * np.asarray(totals) + 0.5).astype(np.int64)


def choose_positions(eligible: np.ndarray, counts: np.ndarray, rng: np.random.Generator):
    """(B, N) mask of min(counts_i, eligible_i) positions per row, uniform among the eligible."""
    keys = np.where(eligible, rng.random(eligible.shape), np.inf)  # (B, N)
    ranks = keys.argsort(1, kind="stable").argsort(1, kind="stable")
    return eligible & (ranks < np.asarray(counts)[:, None])


def fill_random(tokens: np.ndarray, mask: np.ndarray, pool: np.ndarray, rng) -> np.ndarray:
    """A copy of tokens (B, N) with every masked position set to a code drawn uniformly from
    `pool`, never the code it held (redrawn until it differs)."""
    pool = np.asarray(pool)
    out = np.array(tokens, copy=True)
    todo = mask.copy()
    if pool.size < 2 and np.isin(out[todo], pool).any():
        raise ValueError("pool: one code cannot replace itself; needs at least two codes")
    while todo.any():
        old = out[todo].copy()
        new = pool[rng.integers(pool.size, size=old.size)]
        out[todo] = np.where(new == tokens[todo], old, new)
        todo &= out == tokens
    return out


def inject(
    tokens, lengths, share, selected, pool, rng
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Injection at share p: (edited, control, mask), tokens (B, N) layer 0, lengths (B,).

    round(p * length_i) positions per motion (fewer only when fewer hold no selected code) are
    chosen among those that hold no selected code; `edited` writes selected codes there, the
    control random codes of the safe `pool`."""
    eligible = valid_mask(lengths, tokens.shape[1]) & ~np.isin(tokens, selected)
    mask = choose_positions(eligible, share_counts(share, lengths), rng)
    return fill_random(tokens, mask, selected, rng), fill_random(tokens, mask, pool, rng), mask


def remove(tokens, lengths, share, selected, safe_of, rng) -> tuple[np.ndarray, np.ndarray, dict]:
    """Removal at share p: (edited, control, masks), tokens (B, N) layer 0, lengths (B,).

    `edited` replaces round(p * s_i) of the s_i positions holding selected codes by their
    nearest safe code (safe_of (K,), see nearest_safe); the control replaces as many other
    positions (fewer only when too few exist) by their own nearest safe code."""
    valid = valid_mask(lengths, tokens.shape[1])
    is_selected = valid & np.isin(tokens, selected)
    counts = share_counts(share, is_selected.sum(1))
    masks = {
        "edited": choose_positions(is_selected, counts, rng),
        "control": choose_positions(valid & ~is_selected, counts, rng),
    }
    safe = safe_of[np.maximum(tokens, 0)]
    edited, control = (np.where(masks[k], safe, tokens) for k in ("edited", "control"))
    return edited, control, masks


def selected_share(tokens: np.ndarray, lengths: np.ndarray, selected: np.ndarray) -> float:
    """Share of valid layer-0 tokens that are selected codes."""
    valid = valid_mask(lengths, tokens.shape[1])
    return float(np.isin(tokens[valid], selected).mean()) if valid.any() else 0.0


# ------------------------------------------------------------------ generation


def prompt_sample(captions: Sequence[Sequence[str]], frames: np.ndarray, count: int, rng):
    """`count` (prompt, length) pairs: motions drawn without replacement (all if fewer), one
    random caption each, length = the motion's, cut to whole tokens in [40, 196] frames."""
    order = rng.permutation(len(captions))[:count]
    texts = [captions[i][rng.integers(len(captions[i]))] for i in order]
    lengths = np.clip(np.asarray(frames)[order], MIN_FRAMES, MAX_FRAMES) // UNIT * UNIT
    return texts, lengths.astype(np.int64)


@torch.no_grad()
def base_tokens(gen, texts: list[str], lengths: np.ndarray):
    """The generator's layer-0 tokens (B, N) int64 (-1 past lengths), its full codes (B, N, Q)
    and the text condition, for prompts and lengths in frames."""
    cond = gen.embed(texts)
    token_lengths = torch.as_tensor(lengths // UNIT, device=gen.device).long()
    with autocast(gen.config.precision, gen.device):
        base, token_lengths = gen.transformer.generate(
            cond, token_lengths, gen.config.sampling(), generator=gen.generator
        )
    codes = complete(gen, base, cond, token_lengths, None, seed=None)
    return base.cpu().numpy(), codes, cond


@torch.no_grad()
def complete(gen, base, cond, token_lengths, kept_codes, seed: int | None) -> torch.Tensor:
    """Full codes (B, N, Q) for layer-0 tokens `base` (B, N): the original residual layers
    `kept_codes` (B, N, Q) under the new base ("keep"), or residual layers sampled again by
    the residual transformer ("rerun") from a generator reseeded with `seed` (None: the
    generator's own stream)."""
    base = torch.as_tensor(base, device=gen.device).long()
    if kept_codes is not None:
        return torch.cat([base[..., None], kept_codes[..., 1:]], dim=-1)
    if gen.residual is None:
        return base[..., None]
    sampler = gen.generator if seed is None else torch.Generator(gen.device).manual_seed(seed)
    cfg = gen.config
    with autocast(cfg.precision, gen.device):
        return gen.residual.generate(base.clamp(min=0), cond, token_lengths,
                                     cond_scale=cfg.res_cond_scale, temperature=cfg.temperature,
                                     topk_filter_thres=cfg.topk, generator=sampler)  # fmt: skip


Detectors = dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]


def toxic_rates(gen, codes: torch.Tensor, lengths: np.ndarray, detectors: Detectors) -> dict:
    """{instrument: rate} of decoded codes (B, N, Q) with lengths (B,) in frames."""
    token_lengths = torch.as_tensor(lengths // UNIT, device=gen.device).long()
    motions = gen._decode(codes, token_lengths, int(lengths.max()))  # (B, T, 263) raw
    return {name: float(np.mean(detect(motions, lengths))) for name, detect in detectors.items()}


def run_direction(gen, detectors, direction, texts, lengths, shares, modes, selected, pool,
                  safe_of, rng, seed) -> dict:  # fmt: skip
    """One repetition of one direction: {mode: {variant: {instrument: rate}}} for the variants
    "p0" (no edit) and "<edited|control>@<p>", plus {"selected_share": {variant: share}}."""
    base, codes, cond = base_tokens(gen, texts, lengths)
    token_lengths = torch.as_tensor(lengths // UNIT, device=gen.device).long()
    variants, shares_out = {"p0": base}, {"p0": selected_share(base, lengths // UNIT, selected)}
    for p in shares:
        if direction == "inject":
            edited, control, _ = inject(base, lengths // UNIT, p, selected, pool, rng)
        else:
            edited, control, _ = remove(base, lengths // UNIT, p, selected, safe_of, rng)
        for name, tokens in (("edited", edited), ("control", control)):
            variants[f"{name}@{p}"] = tokens
            shares_out[f"{name}@{p}"] = selected_share(tokens, lengths // UNIT, selected)
    out: dict = {"selected_share": shares_out}
    for mode in modes:
        kept = codes if mode == "keep" else None
        out[mode] = {
            name: toxic_rates(
                gen, complete(gen, tokens, cond, token_lengths, kept, seed), lengths, detectors
            )  # fmt: skip
            for name, tokens in variants.items()
        }
    return out


# ------------------------------------------------------------------ summary


def summarize_direction(per_rep: list[dict], shares: Sequence[float], direction: str) -> dict:
    """Per mode and instrument: the unedited rate, the edited and control curves over p with
    intervals over repetitions, the paired difference edited - control and its one-sided p-value
    (injection: edited higher; removal: edited lower)."""
    goal = "up" if direction == "inject" else "down"
    out: dict = {"shares": list(shares), "selected_share": {}}
    for variant in per_rep[0]["selected_share"]:
        values = [rep["selected_share"][variant] for rep in per_rep]
        out["selected_share"][variant] = float(np.mean(values))
    for mode in (m for m in per_rep[0] if m != "selected_share"):
        out[mode] = {}
        for inst in per_rep[0][mode]["p0"]:
            series = {v: [rep[mode][v][inst] for rep in per_rep] for v in per_rep[0][mode]}
            edited = [series[f"edited@{p}"] for p in shares]
            control = [series[f"control@{p}"] for p in shares]
            pairs = list(zip(edited, control, strict=True))
            out[mode][inst] = {
                "unedited": stats.summarize(series["p0"]),
                "edited": [stats.summarize(v) for v in edited],
                "control": [stats.summarize(v) for v in control],
                "difference": [stats.paired_difference(e, c) for e, c in pairs],
                "p_value": [stats.paired_t_p_value(e, c, goal) for e, c in pairs],
            }
    return out


# ------------------------------------------------------------------ figure and section

LABELS = {"toxic_rate": "classifier", "kinematic_rate": "kinematic"}
TITLES = {"inject": "inject selected codes (retain prompts)",
          "remove": "remove selected codes (explicit forget prompts)"}  # fmt: skip


def _curve(summary: dict, key: str) -> tuple[list[float], list[float]]:
    """Means and t half-widths of the unedited point followed by a curve."""
    points = [summary["unedited"], *summary[key]]
    return [s["mean"] for s in points], [s["ci95_t"] or 0.0 for s in points]


def plot_curves(result: dict, path, title: str) -> None:
    """Toxic rate vs p: edited and control curves per instrument, a column per direction and a
    row per residual mode; bars = t intervals over repetitions."""
    from matplotlib.figure import Figure

    modes = [m for m in RESIDUAL_MODES if m in result["inject"]]
    figure = Figure(figsize=(10, 3.6 * len(modes)))
    axes = figure.subplots(len(modes), 2, squeeze=False)
    for row, mode in enumerate(modes):
        for col, direction in enumerate(DIRECTIONS):
            ax, block = axes[row, col], result[direction]
            x = [0.0, *block["shares"]]
            for inst, style in zip(INSTRUMENTS, ("-", "--"), strict=True):
                for key, color in (("edited", "#d62728"), ("control", "#7f7f7f")):
                    mean, err = _curve(block[mode][inst], key)
                    ax.errorbar(x, mean, yerr=err, fmt=style + "o", color=color, capsize=3,
                                label=f"{key} ({LABELS[inst]})", markersize=4)  # fmt: skip
            ax.set_title(f"{TITLES[direction]}\nresidual layers: {mode}", fontsize=9)
            ax.set_xlabel("share p of tokens replaced" if direction == "inject"
                          else "share p of selected-code tokens replaced")  # fmt: skip
            ax.set_ylabel("toxic rate")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)


def _ci(entry: dict) -> str:
    half = entry.get("ci95_t")
    return f"{entry['mean']:.3f}" + (f" ± {half:.3f}" if half is not None else "")


def direction_table(block: dict, mode: str) -> str:
    """Markdown table of one direction and residual mode: a row per p."""
    head = "| p | selected share | " + " | ".join(
        f"{LABELS[i]} edited | control | edited − control | p-value" for i in INSTRUMENTS
    )
    lines = [head + " |", "|" + "---|" * (2 + 4 * len(INSTRUMENTS))]
    share = block["selected_share"]
    lines.append(f"| 0 | {share['p0']:.2f} | "
                 + " | ".join(f"{_ci(block[mode][i]['unedited'])} | | |" for i in INSTRUMENTS)
                 + " |")  # fmt: skip
    for k, p in enumerate(block["shares"]):
        cells = []
        for inst in INSTRUMENTS:
            s = block[mode][inst]
            cells += [_ci(s["edited"][k]), _ci(s["control"][k]), _ci(s["difference"][k]),
                      f"{s['p_value'][k]:.3f}"]  # fmt: skip
        shares = f"{share[f'edited@{p}']:.2f} / {share[f'control@{p}']:.2f}"
        lines.append(f"| {p:g} | {shares} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reading(block: dict, mode: str, direction: str) -> str:
    """One honest sentence per instrument from the largest p: the edited and control change
    from the unedited rate, and whether their paired difference is outside its interval."""
    parts = []
    k = len(block["shares"]) - 1
    p = block["shares"][k]
    for inst in INSTRUMENTS:
        s = block[mode][inst]
        base, edited, control = (s["unedited"]["mean"], s["edited"][k]["mean"],
                                 s["control"][k]["mean"])  # fmt: skip
        diff, pval = s["difference"][k], s["p_value"][k]
        half = diff["ci95_t"] or 0.0
        clear = abs(diff["mean"]) > half and pval < stats.ALPHA
        verdict = "a clear difference" if clear else "within its interval (no clear difference)"
        parts.append(
            f"{LABELS[inst]}: {base:.2f} unedited -> {edited:.2f} edited vs {control:.2f} "
            f"control at p = {p:g}; edited − control {diff['mean']:+.3f} ± {half:.3f} "
            f"(one-sided p = {pval:.3f}), {verdict}"
        )
    return "; ".join(parts) + "."


def verdict(result: dict, mode: str) -> str:
    """Reproduced / refuted / mixed, from the classifier's paired tests at the largest p."""
    k_in, k_out = len(result["inject"]["shares"]) - 1, len(result["remove"]["shares"]) - 1
    sig = {
        d: result[d][mode]["toxic_rate"]["p_value"][k] < stats.ALPHA
        for d, k in (("inject", k_in), ("remove", k_out))
    }
    if sig["inject"] and sig["remove"]:
        return ("Reproduced: injecting the selected codes raises the toxic rate beyond the "
                "control, and removing them lowers it beyond the control.")  # fmt: skip
    if not sig["inject"] and not sig["remove"]:
        return ("Refuted on this model: neither injecting nor removing the selected codes "
                "moves the classifier's toxic rate beyond the control's.")  # fmt: skip
    which = "injection" if sig["inject"] else "removal"
    other = "removal" if sig["inject"] else "injection"
    return (f"Half reproduced: {which} separates from its control, {other} does not; the "
            "codes are tied to the concept in one direction only.")  # fmt: skip
