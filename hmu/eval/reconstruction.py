"""How well the RVQ-VAE reconstructs real motions: MPJPE (mm) and reconstruction FID.

Every test motion (cropped to a multiple of 4 frames, at most 196) is encoded with all quantizer
layers and decoded; joint positions of input and reconstruction come from `recover_from_ric`
and the evaluator embeds both for the FID, as upstream reports for its VQ-VAE.
"""

from __future__ import annotations

import numpy as np
import torch

from hmu.data.humanml import MAX_FRAMES, UNIT, recover_from_ric
from hmu.eval import metrics
from hmu.eval.protocol import pad_motions
from hmu.models.rvq import RVQVAE


@torch.no_grad()
def reconstruct(vq: RVQVAE, motions: list[np.ndarray], mean, std) -> list[np.ndarray]:
    """Encode and decode raw motions (T, 263) -> reconstructions (T', 263), T' = 4 * (T // 4)."""
    out = []
    for motion in motions:
        frames = min(len(motion), MAX_FRAMES) // UNIT * UNIT
        x = torch.from_numpy(((motion[:frames] - mean) / std).astype(np.float32))[None]
        recon = vq.forward_decoder(vq.encode(x))[0].numpy()
        out.append(recon * std + mean)
    return out


def reconstruction_metrics(
    vq: RVQVAE, motions: list[np.ndarray], mean, std, embed_motions
) -> dict[str, float]:
    """MPJPE (mm) and FID between real and reconstructed motions.

    mpjpe_mm is upstream's: joints relative to the pelvis of each frame; mpjpe_global_mm also
    counts the root trajectory, which integrates velocity errors over the clip.
    """
    recons = reconstruct(vq, motions, mean, std)
    local, world = [], []
    for motion, recon in zip(motions, recons, strict=True):
        real, ours = recover_from_ric(motion[: len(recon)]), recover_from_ric(recon)  # (T', 22, 3)
        world.append(np.linalg.norm(ours - real, axis=-1).mean())
        aligned = (ours - ours[:, :1]) - (real - real[:, :1])
        local.append(np.linalg.norm(aligned, axis=-1).mean())
    lengths = np.array([len(r) for r in recons])
    real_emb = embed_motions(
        pad_motions([m[:n] for m, n in zip(motions, lengths, strict=True)]), lengths
    )
    recon_emb = embed_motions(pad_motions(recons), lengths)
    fid = metrics.frechet_distance(
        *metrics.activation_statistics(real_emb), *metrics.activation_statistics(recon_emb)
    )
    return {
        "mpjpe_mm": float(np.mean(local) * 1000),
        "mpjpe_global_mm": float(np.mean(world) * 1000),
        "recon_fid": float(fid),
        "motions": len(motions),
    }


SIGNATURES = ("ankle_height_diff", "wrist_reach", "strike")
KICK_KEPT_M = 0.5  # a reconstructed kick keeps one ankle at least this far above the other


def _segment_signatures(motions: list[np.ndarray], spans: list[tuple[int, int, int]]):
    """kinematic.action_signatures of frames [start, end) of motions[i], per (i, start, end)."""
    from hmu.eval import kinematic

    lengths = np.array([end - start for _, start, end in spans])
    feats = pad_motions([motions[i][start:end] for i, start, end in spans])[:, : lengths.max()]
    return kinematic.action_signatures(kinematic.features_to_joints(feats, lengths), lengths)


def signature_survival(
    motions: list[np.ndarray], recons: list[np.ndarray], segments: list[list[dict]]
) -> dict[str, dict[str, float]]:
    """How much of each toxic action's kinematic signature survives encode/decode.

    motions / recons: raw features of real motions and their reconstructions (as
    `reconstruct` returns them); segments: the ground-truth segments of each motion
    ({action, start, end, toxic}). Per toxic action, over its segments: the median ankle-height
    difference (m; kicks), wrist reach (m; punches) and the kinematic strike detector's rate
    (score > 0), before and after, plus for kicks the share whose reconstruction keeps the foot
    at least KICK_KEPT_M above the other. The overall MPJPE hides exactly this: a VQ-VAE that
    smooths every kick away still reconstructs the rest of the motion well.
    """
    spans, actions = [], []
    for i, (recon, segs) in enumerate(zip(recons, segments, strict=True)):
        for seg in segs:
            end = min(int(seg["end"]), len(recon))
            if seg["toxic"] and end - int(seg["start"]) >= 8:
                spans.append((i, int(seg["start"]), end))
                actions.append(seg["action"])
    if not spans:
        return {}
    before, after = _segment_signatures(motions, spans), _segment_signatures(recons, spans)
    actions = np.array(actions)
    out = {}
    for action in sorted(set(actions)):
        pick = actions == action
        row = {"segments": int(pick.sum())}
        for name in ("ankle_height_diff", "wrist_reach"):
            row[f"{name}_m"] = float(np.median(before[name][pick]))
            row[f"{name}_recon_m"] = float(np.median(after[name][pick]))
        row["strike_rate"] = float((before["strike"][pick] > 0).mean())
        row["strike_rate_recon"] = float((after["strike"][pick] > 0).mean())
        if "kick" in action:
            row["kick_kept"] = float((after["ankle_height_diff"][pick] >= KICK_KEPT_M).mean())
        out[action] = row
    return out
