"""BVH export: a round trip through an independent parser (PyPI `bvh`) and forward kinematics
written here from the BVH definition (Euler channels, offsets turned by the parent's rotation)."""

from __future__ import annotations

import numpy as np
import pytest

from hmu.data.humanml import joints_to_features, recover_from_ric
from hmu.data.skeleton import JOINT_NAMES, PARENTS
from hmu.data.synth import generate_action
from hmu.viz import bvh as B

Bvh = pytest.importorskip("bvh", reason="the round-trip test needs the PyPI `bvh` parser").Bvh


def _axis(angle_deg: np.ndarray, axis: str) -> np.ndarray:
    """Rotation matrices (T, 3, 3) about one coordinate axis."""
    a = np.radians(angle_deg)
    c, s, one, zero = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    rows = {
        "X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
        "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
        "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]],
    }[axis]
    return np.moveaxis(np.array(rows), (0, 1), (-2, -1))


def parse_and_fk(text: str) -> tuple[np.ndarray, list[str], float]:
    """Joint positions (T, J, 3) in file units by forward kinematics of a parsed BVH."""
    doc = Bvh(text)
    names = doc.get_joints_names()
    frames = int(doc.nframes)
    world_rot, world_pos = {}, {}
    for name in names:  # parents are listed before their children
        channels = doc.joint_channels(name)
        values = np.array(doc.frames_joint_channels(name, channels))  # (T, C)
        local = np.broadcast_to(np.eye(3), (frames, 3, 3))
        for k, channel in enumerate(channels):
            if channel.endswith("rotation"):
                local = local @ _axis(values[:, k], channel[0])
        offset = np.array(doc.joint_offset(name))
        parent = doc.joint_parent(name)
        if parent is None:
            position = values[:, [channels.index(f"{a}position") for a in "XYZ"]] + offset
            world_rot[name], world_pos[name] = local, position
        else:
            p = parent.name
            world_pos[name] = world_pos[p] + (world_rot[p] @ offset[:, None])[..., 0]
            world_rot[name] = world_rot[p] @ local
    joints = np.stack([world_pos[n] for n in names], axis=1)
    return joints, names, float(doc.frame_time)


def _kick(height_scale=1.08) -> np.ndarray:
    rng = np.random.default_rng(3)
    return generate_action("roundhouse_kick", rng, side="left", height_scale=height_scale).joints


def _mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).mean())


def test_round_trip_of_a_synthetic_kick():
    joints = _kick()  # (T, 22, 3) metres, a 1.84 m body
    parsed, names, frame_time = parse_and_fk(B.to_bvh(joints, fps=20))
    assert names == [JOINT_NAMES[j] for j in B.JOINT_ORDER]
    assert frame_time == pytest.approx(0.05)
    order = [JOINT_NAMES.index(n) for n in names]
    error = _mean_error(parsed / 100.0, joints[:, order])
    assert error < 0.01, f"mean joint error {error * 100:.2f} cm"
    assert error < 1e-4  # a rigid skeleton is reproduced exactly (up to the printed digits)


def test_round_trip_through_humanml3d_features():
    """The path of a generated motion: features (263) -> recover_from_ric -> BVH."""
    joints = recover_from_ric(joints_to_features(_kick(0.95)))
    parsed, names, _ = parse_and_fk(B.to_bvh(joints, fps=20, scale=1.0))  # metres
    order = [JOINT_NAMES.index(n) for n in names]
    error = _mean_error(parsed, joints[:, order])
    assert error < 0.01, f"mean joint error {error * 100:.2f} cm"


def test_hierarchy_and_offsets():
    joints = _kick()
    text = B.to_bvh(joints)
    doc = Bvh(text)
    assert text.count("End Site") == 5  # feet, head, wrists
    for j, name in enumerate(JOINT_NAMES[1:], start=1):
        assert doc.joint_parent(name).name == JOINT_NAMES[PARENTS[j]]
        length = np.linalg.norm(joints[:, j] - joints[:, PARENTS[j]], axis=-1)
        assert np.linalg.norm(doc.joint_offset(name)) == pytest.approx(
            np.median(length) * 100, abs=1e-3
        )
    assert doc.joint_channels(JOINT_NAMES[0])[:3] == ["Xposition", "Yposition", "Zposition"]
    # T-pose facing +z: the left hip is at +x, the head above the pelvis
    assert doc.joint_offset("left_hip")[0] > 0 and doc.joint_offset("spine1")[1] > 0


def test_rotation_channels_are_continuous():
    """One and a half turns about the vertical: the root's yaw channel grows past 180 degrees
    instead of jumping by 360 between frames."""
    joints = _kick()
    angle = np.linspace(0, 3 * np.pi, len(joints))
    c, s = np.cos(angle), np.sin(angle)
    turn = np.stack([np.stack([c, 0 * c, s], -1), [[0, 1, 0]] * len(c),
                     np.stack([-s, 0 * c, c], -1)], 1)  # fmt: skip
    turned = np.einsum("tij,tkj->tki", turn, joints - joints[:, :1]) + joints[:, :1]
    angles = B.euler_channels(B.local_rotations(B.global_rotations(turned, B.bvh_offsets(turned))))
    yaw = angles[:, 0, 2]  # (T,) the root's Y rotation
    assert np.abs(np.diff(angles[:, 0], axis=0)).max() < 30
    assert abs(yaw[-1] - yaw[0]) == pytest.approx(540, abs=30)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        B.to_bvh(np.zeros((5, 21, 3)))
    with pytest.raises(ValueError, match="NaN"):
        B.to_bvh(np.full((5, 22, 3), np.nan))
    path = B.write_bvh(tmp_path / "k.bvh", _kick()[:10])
    assert path.read_text().startswith("HIERARCHY\nROOT pelvis\n")
