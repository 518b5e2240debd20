"""VQ reconstruction metrics: zero error for a perfect reconstruction, root-aligned MPJPE."""

import numpy as np
import pytest

from hmu.data.humanml import joints_to_features
from hmu.data.skeleton import forward_kinematics
from hmu.eval import reconstruction


def _motion(rng, frames=61):
    t = np.linspace(0, 2, frames)[:, None, None]
    rot = 0.3 * np.sin(t * rng.uniform(1, 3, (1, 22, 3)) + rng.uniform(0, 6, (1, 22, 3)))
    root = np.stack([0.5 * t[:, 0, 0], 0.9 + 0 * t[:, 0, 0], 0.2 * t[:, 0, 0]], -1)
    return joints_to_features(forward_kinematics(rot, root))


def _embed(motions, lengths):
    return np.stack([m[:n].mean(0)[:8] for m, n in zip(motions, lengths, strict=True)])


def test_perfect_and_shifted_reconstructions(monkeypatch):
    rng = np.random.default_rng(0)
    motions = [_motion(rng) for _ in range(12)]
    crop = lambda ms: [m[: len(m) // 4 * 4] for m in ms]  # noqa: E731
    monkeypatch.setattr(reconstruction, "reconstruct", lambda vq, ms, mean, std: crop(ms))
    perfect = reconstruction.reconstruction_metrics(None, motions, 0, 1, _embed)
    assert perfect["mpjpe_mm"] == pytest.approx(0, abs=1e-3)
    assert perfect["recon_fid"] == pytest.approx(0, abs=1e-6)

    def lift(ms):  # root 10 cm higher: global error 100 mm, root-aligned error 0
        out = [m.copy() for m in crop(ms)]
        for m in out:
            m[:, 3] += 0.1  # root height
            m[:, 5:67:3] += 0.1  # y of the 21 root-relative (ric) joints, which keep height
        return out

    monkeypatch.setattr(reconstruction, "reconstruct", lambda vq, ms, mean, std: lift(ms))
    shifted = reconstruction.reconstruction_metrics(None, motions, 0, 1, _embed)
    assert shifted["mpjpe_global_mm"] == pytest.approx(100, abs=0.5)
    assert shifted["mpjpe_mm"] == pytest.approx(0, abs=1e-3)
