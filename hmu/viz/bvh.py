"""BVH export of 22-joint motions, for Blender, Maya, MotionBuilder or Unity's BVH importers.

Hierarchy: the 22 SMPL body joints of HumanML3D (`skeleton.JOINT_NAMES`, `skeleton.PARENTS`),
the pelvis as ROOT with 6 channels (position, then rotation), every other joint 3 rotation
channels, `End Site`s continuing the 5 leaf bones (feet, head, wrists). Rotation channels are
`Zrotation Xrotation Yrotation` in degrees: the local rotation is Rz @ Rx @ Ry acting on column
vectors, and a joint's rotation turns the offsets of its children (the BVH convention).
Coordinates are y up, the rest pose faces +z, units are centimetres (`scale=100`; Blender:
import with scale 0.01).

Offsets: the directions of the SMPL-like T-pose `skeleton.REST_OFFSETS` with the motion's own
bone lengths (median over frames), so the figure keeps its proportions. At the two joints with
several children (pelvis: hips and spine; spine3: neck and collars) the children's directions
are adapted to the motion's own rigid shape (a few Procrustes rounds), since one rotation must
place all of them.

Rotations come from inverse kinematics on the positions: a joint with several children takes
the rotation that best maps its children's offsets onto the observed bones (Kabsch); a joint
with one child takes the shortest arc that turns the child's offset, carried by the parent's
rotation, onto the observed bone (positions cannot show a twist about a bone, so none is
added); a leaf keeps its parent's orientation. Forward kinematics of the file then reproduces
the input joints up to the fit at the branching joints (exact for rigid bodies).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from hmu.data.rotations import qbetween, quaternion_to_matrix
from hmu.data.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, REST_OFFSETS, check_joints
from hmu.io import write_text

CHILDREN = tuple(tuple(int(c) for c in np.flatnonzero(j == PARENTS)) for j in range(NUM_JOINTS))
BRANCHING = tuple(j for j in range(NUM_JOINTS) if len(CHILDREN[j]) > 1)  # pelvis, spine3
EULER_ORDER = "ZXY"  # channel order; scipy's upper case = intrinsic = Rz @ Rx @ Ry
ROTATION_CHANNELS = "Zrotation Xrotation Yrotation"
END_SITE_SCALE = 0.5  # an End Site continues its leaf bone by half its length
PROCRUSTES_ROUNDS = 3


def _bones(joints: np.ndarray) -> np.ndarray:
    """Bone vectors (T, 22, 3): joint minus its parent (zero for the root)."""
    bones = joints - joints[:, np.maximum(PARENTS, 0)]
    bones[:, 0] = 0.0
    return bones


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotations R (..., 3, 3) minimising sum_i |R @ source_i - target_i|^2 over points
    (..., n, 3) (proper rotations: det = +1)."""
    cov = np.swapaxes(source, -1, -2) @ target  # (..., 3, 3) = sum_i s_i t_i^T
    u, _, vt = np.linalg.svd(cov)
    v, ut = np.swapaxes(vt, -1, -2), np.swapaxes(u, -1, -2)
    fix = np.broadcast_to(np.eye(3), v.shape).copy()
    fix[..., 2, 2] = np.sign(np.linalg.det(v @ ut))
    return v @ fix @ ut


def _arc(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Shortest-arc rotations (..., 3, 3) turning directions source onto target (..., 3)."""
    return quaternion_to_matrix(qbetween(source, target))


def bvh_offsets(joints) -> np.ndarray:
    """Offsets (22, 3) in metres of a motion's BVH skeleton: REST_OFFSETS directions with the
    motion's median bone lengths, the children of branching joints shaped like the motion."""
    joints = check_joints(joints)
    bones = _bones(joints)
    lengths = np.median(np.linalg.norm(bones, axis=-1), axis=0)  # (22,)
    offsets = _unit(REST_OFFSETS) * lengths[:, None]
    for joint in BRANCHING:
        kids = list(CHILDREN[joint])
        observed = bones[:, kids]  # (T, n, 3)
        for _ in range(PROCRUSTES_ROUNDS):
            rot = kabsch(offsets[kids], observed)  # (T, 3, 3)
            local = np.einsum("tji,tnj->tni", rot, observed)  # R^T b: bones in the joint's frame
            offsets[kids] = _unit(local.mean(0)) * lengths[kids, None]
    return offsets


def global_rotations(joints, offsets) -> np.ndarray:
    """World rotations (T, 22, 3, 3) of every joint such that joint c sits at
    position(parent) + R[parent] @ offsets[c] (see the module docstring)."""
    joints = check_joints(joints)
    bones = _bones(joints)
    frames = len(joints)
    rot = np.empty((frames, NUM_JOINTS, 3, 3))
    for joint in range(NUM_JOINTS):  # parents come first in PARENTS order
        parent = np.eye(3) if joint == 0 else rot[:, PARENTS[joint]]
        kids = list(CHILDREN[joint])
        if len(kids) > 1:
            rot[:, joint] = kabsch(offsets[kids], bones[:, kids])
        elif kids:
            carried = np.broadcast_to(parent @ offsets[kids[0]], (frames, 3)).copy()  # (T, 3)
            rot[:, joint] = _arc(carried, bones[:, kids[0]]) @ parent
        else:
            rot[:, joint] = parent
    return rot


def local_rotations(global_rot: np.ndarray) -> np.ndarray:
    """Local rotations (T, 22, 3, 3): each joint's world rotation relative to its parent's."""
    parent = global_rot[:, np.maximum(PARENTS, 0)]
    local = np.swapaxes(parent, -1, -2) @ global_rot
    local[:, 0] = global_rot[:, 0]
    return local


def euler_channels(local_rot: np.ndarray) -> np.ndarray:
    """BVH rotation channels (T, 22, 3) in degrees, (Z, X, Y) per joint, unwrapped over time
    so that a turn past 180 degrees does not jump by 360 between frames."""
    frames = local_rot.shape[0]
    with warnings.catch_warnings():  # gimbal lock: scipy still returns a valid solution
        warnings.simplefilter("ignore", UserWarning)
        angles = Rotation.from_matrix(local_rot.reshape(-1, 3, 3)).as_euler(
            EULER_ORDER, degrees=True
        )
    return np.unwrap(angles.reshape(frames, NUM_JOINTS, 3), period=360.0, axis=0)


def _depth_first(joint: int = 0) -> list[int]:
    order = [joint]
    for child in CHILDREN[joint]:
        order += _depth_first(child)
    return order


JOINT_ORDER = tuple(_depth_first())  # the order joints appear in the file and in each frame


def _hierarchy(offsets: np.ndarray, scale: float) -> list[str]:
    lines = ["HIERARCHY"]

    def fmt(v) -> str:
        return " ".join(f"{x * scale:.6f}" for x in v)

    def write(joint: int, depth: int) -> None:
        pad = "\t" * depth
        if joint == 0:
            lines.append(f"ROOT {JOINT_NAMES[0]}")
            channels = f"CHANNELS 6 Xposition Yposition Zposition {ROTATION_CHANNELS}"
        else:
            lines.append(f"{pad}JOINT {JOINT_NAMES[joint]}")
            channels = f"CHANNELS 3 {ROTATION_CHANNELS}"
        offset = np.zeros(3) if joint == 0 else offsets[joint]
        lines.extend([f"{pad}{{", f"{pad}\tOFFSET {fmt(offset)}", f"{pad}\t{channels}"])
        for child in CHILDREN[joint]:
            write(child, depth + 1)
        if not CHILDREN[joint]:
            end = offsets[joint] * END_SITE_SCALE
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {fmt(end)}",
                          f"{pad}\t}}"])  # fmt: skip
        lines.append(f"{pad}}}")

    write(0, 0)
    return lines


def to_bvh(joints, fps: float = 20.0, scale: float = 100.0) -> str:
    """The BVH text of a motion: joints (T, 22, 3) in metres, y up; `scale` converts metres
    to the file's unit (100: centimetres)."""
    joints = check_joints(joints)
    if fps <= 0 or scale <= 0:
        raise ValueError(f"fps and scale must be > 0, got fps={fps}, scale={scale}")
    offsets = bvh_offsets(joints)
    angles = euler_channels(local_rotations(global_rotations(joints, offsets)))  # (T, 22, 3)
    values = np.concatenate(
        [joints[:, 0] * scale, angles[:, list(JOINT_ORDER)].reshape(len(joints), -1)], axis=1
    )  # (T, 3 + 66)
    lines = _hierarchy(offsets, scale)
    lines += ["MOTION", f"Frames: {len(joints)}", f"Frame Time: {1.0 / fps:.6f}"]
    lines += [" ".join(f"{v:.4f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def write_bvh(path, joints, fps: float = 20.0, scale: float = 100.0) -> Path:
    """Write a motion (T, 22, 3) as a BVH file (atomically); see `to_bvh`."""
    path = Path(path)
    write_text(path, to_bvh(joints, fps, scale))
    return path
