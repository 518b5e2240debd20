"""Rotation conversions and forward kinematics against independent computations."""

import numpy as np
import pytest
import torch

from hmu.data import rotations as R
from hmu.data import skeleton as S


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _rodrigues_loop(aa):
    """Reference: matrix exponential of the skew matrix, one rotation at a time."""
    from scipy.linalg import expm

    out = []
    for v in aa:
        k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
        out.append(expm(k))
    return np.array(out)


def test_axis_angle_matches_matrix_exponential(rng):
    aa = rng.normal(size=(50, 3))
    np.testing.assert_allclose(R.axis_angle_to_matrix(aa), _rodrigues_loop(aa), atol=1e-10)


def test_round_trips(rng):
    aa = rng.normal(size=(200, 3))
    m = R.axis_angle_to_matrix(aa)
    np.testing.assert_allclose(R.axis_angle_to_matrix(R.matrix_to_axis_angle(m)), m, atol=1e-10)
    q = R.matrix_to_quaternion(m)
    np.testing.assert_allclose(R.quaternion_to_matrix(q), m, atol=1e-10)
    np.testing.assert_allclose(R.cont6d_to_matrix(R.matrix_to_cont6d(m)), m, atol=1e-10)
    v = rng.normal(size=(200, 3))
    np.testing.assert_allclose(R.qrot(q, v), np.einsum("nij,nj->ni", m, v), atol=1e-10)
    np.testing.assert_allclose(R.qrot(R.qmul(q, R.qinv(q)), v), v, atol=1e-10)


def test_qbetween_maps_u_onto_v(rng):
    u, v = rng.normal(size=(100, 3)), rng.normal(size=(100, 3))
    rotated = R.qrot(R.qbetween(u, v), u / np.linalg.norm(u, axis=-1, keepdims=True))
    np.testing.assert_allclose(rotated, v / np.linalg.norm(v, axis=-1, keepdims=True), atol=1e-10)
    flipped = R.qrot(R.qbetween(np.array([[0.0, 1, 0]]), np.array([[0.0, -1, 0]])), [[0.0, 1, 0]])
    np.testing.assert_allclose(flipped, [[0, -1, 0]], atol=1e-10)


def test_torch_and_numpy_agree(rng):
    aa = rng.normal(size=(10, 22, 3))
    root = rng.normal(size=(10, 3))
    jn = S.forward_kinematics(aa, root)
    jt = S.forward_kinematics(torch.from_numpy(aa), torch.from_numpy(root))
    np.testing.assert_allclose(jt.numpy(), jn, atol=1e-12)


def test_rest_pose_and_bone_lengths(rng):
    joints = S.forward_kinematics(np.zeros((1, 22, 3)), np.zeros((1, 3)))[0]
    assert joints[15, 1] > joints[12, 1] > joints[0, 1] > joints[4, 1] > joints[7, 1]
    assert joints[16, 0] > 0 > joints[17, 0]  # left side is +x
    posed = S.forward_kinematics(rng.normal(size=(30, 22, 3)), rng.normal(size=(30, 3)))
    lengths = S.bone_lengths(posed)
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), atol=1e-12)
    np.testing.assert_allclose(lengths[0], np.linalg.norm(S.REST_OFFSETS[1:], axis=-1))


def test_fk_matches_explicit_chain(rng):
    """Left wrist position by composing the chain by hand."""
    aa = rng.normal(size=(22, 3)) * 0.5
    root = rng.normal(size=3)
    mats = R.axis_angle_to_matrix(aa)
    chain = [0, 3, 6, 9, 13, 16, 18, 20]
    pos, rot = root.copy(), mats[0]
    for parent, child in zip(chain[:-1], chain[1:], strict=True):
        pos = pos + rot @ S.REST_OFFSETS[child]
        rot = rot @ mats[child]
        assert S.PARENTS[child] == parent
    np.testing.assert_allclose(S.forward_kinematics(aa, root)[20], pos, atol=1e-12)


def test_mirror_is_an_involution_and_swaps_sides(rng):
    joints = S.forward_kinematics(rng.normal(size=(5, 22, 3)) * 0.3, np.zeros((5, 3)))
    mirrored = S.mirror_joints(joints)
    np.testing.assert_allclose(S.mirror_joints(mirrored), joints)
    np.testing.assert_allclose(mirrored[:, 16, 0], -joints[:, 17, 0])
