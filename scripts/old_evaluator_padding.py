"""Run a stage script with the evaluator's motion embedding as it was before the upstream padding
fix (commit 1a3a312, issue 12 item 6), to measure which metrics that fix moved.

The old embedding zeroed frames past each length and then always appended two units of zero
frames to the batch; the fixed one pads (or cuts) every motion to max_motion_length (196) frames,
so only a motion of exactly 196 frames embeds differently.

    python scripts/old_evaluator_padding.py stages/train_evaluator.py motionx
    python scripts/old_evaluator_padding.py --check   # old == new below 196 frames, != at 196
"""

from __future__ import annotations

import runpy
import sys

import torch
from torch import nn

from hmu.models import evaluator as evaluator_module
from hmu.models.evaluator import FOOT_CONTACT_DIMS, Evaluator, _lengths_tensor


def old_motion_embedding(self: Evaluator, motion: torch.Tensor, lengths) -> torch.Tensor:
    """The pre-fix embedding (B, dim_coemb) of raw features (B, T, D): zero past each length,
    pad T up to a whole number of units, then append two more units of zero frames."""
    dim_pose = self.mean.shape[0]
    if motion.ndim != 3 or motion.shape[-1] != dim_pose:
        raise ValueError(f"motion: expected (B, T, {dim_pose}), got {tuple(motion.shape)}")
    batch, frames = motion.shape[:2]
    lengths = _lengths_tensor("lengths", lengths, batch, motion.device)
    if (lengths < self.unit_length).any() or (lengths > frames).any():
        raise ValueError(f"lengths must lie in [{self.unit_length}, {frames}]")
    normed = (motion - self.mean) / self.std  # (B, T, D)
    valid = torch.arange(frames, device=motion.device)[None, :] < lengths[:, None]
    normed = normed * valid[..., None]
    padded_frames = -(-frames // self.unit_length) * self.unit_length + 2 * self.unit_length
    normed = nn.functional.pad(normed, (0, 0, 0, padded_frames - frames))  # (B, T', D)
    movements = self.movement_encoder(normed[..., :-FOOT_CONTACT_DIMS])  # (B, T'/4, H)
    return self.motion_encoder(movements, lengths // self.unit_length)


def check(seed: int = 0) -> None:
    """Print the largest old-vs-new difference per length on a small random evaluator."""
    torch.manual_seed(seed)
    model = Evaluator(
        dim_movement_hidden=32, dim_movement_latent=32, dim_text_hidden=32,
        dim_motion_hidden=32, dim_coemb=16,
    ).eval()  # fmt: skip
    lengths = torch.tensor([40, 100, 188, 192, 196, 196])
    motion = torch.randn(len(lengths), 196, model.mean.shape[0])  # (B, 196, D)
    with torch.no_grad():
        new = model.motion_embedding(motion, lengths)
        old = old_motion_embedding(model, motion, lengths)
    for length, diff in zip(lengths.tolist(), (new - old).abs().amax(dim=1).tolist(), strict=True):
        print(f"length {length}: max |old - new| = {diff:.3g}")


def main(argv: list[str]) -> None:
    if argv == ["--check"]:
        check()
        return
    if not argv or argv[0] in ("-h", "--help"):
        raise SystemExit("usage: old_evaluator_padding.py STAGE_SCRIPT [ARGS...] | --check")
    evaluator_module.Evaluator.motion_embedding = old_motion_embedding
    sys.argv = argv
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
