"""From action plans to motions: keyframe channels -> local joint rotations -> joint positions.

Every motion is a continuous function of time, evaluated on a 60 fps grid (a multiple of both
HumanML3D's 20 fps and Motion-X's 30 fps, so both are exact subsamples of one motion):

1. each segment's keyframes are interpolated (shape-preserving cubic, PCHIP) at its phase,
   scaled by the segment's amplitude and mirrored for the left side; ankle targets become leg
   directions by two-bone IK;
2. segments (and a neutral stance before and after them) are crossfaded over 0.5 s;
3. the pose channels become local rotations (SMPL convention, swing rotations from the
   skeleton's rest bone directions), the facing (yaw) is integrated from the segments' turns;
4. forward kinematics (`hmu.data.skeleton`) gives positions around the pelvis; the lowest heel or
   toe point is put on the floor, airborne windows add a ballistic arc, and the root's
   horizontal path is driven by the stance foot (foot locking: a planted foot does not move).

Over 450 lines because steps 1-4 are one pipeline over shared pose conventions; split, they
would export each other's private helpers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter1d

from hmu.data.rotations import matrix_to_axis_angle
from hmu.data.skeleton import REST_OFFSETS, forward_kinematics, scaled_rest_offsets
from hmu.data.synth.actions import ARM_PARTS, NEUTRAL, PRIMITIVES, Primitive, mirror_pose

BASE_FPS = 60
GRAVITY = 9.81
CROSSFADE = 0.5  # seconds over which one action blends into the next
MIN_SECONDS, MAX_SECONDS = 2.0, 9.8  # 41..197 frames at 20 fps (40..196 feature frames)
STANCE_EPS = 0.004  # metres: the other foot must be this much lower to take over the stance
HEEL = np.array([0.0, -0.058, -0.02])  # heel contact point from the ankle, level foot frame

# Flat pose vector (one row per frame): 8 angles (radians); 4 arm bones; 2 legs of 2 bones each
# (or, before IK, an ankle position + 3 zeros); 2 feet (pitch, yaw). Bones are swing vectors: the
# axis-angle of the shortest arc from the bone's rest direction to its direction (arms in the
# chest frame, legs in the heading frame). Unlike raw directions, swing vectors interpolate and
# blend without passing through zero when a limb swings from down to up.
WIDTH = 36
ANGLES, ARMS, R_LEG, L_LEG, FEET = (slice(0, 8), slice(8, 20), slice(20, 26), slice(26, 32),
                                    slice(32, 36))  # fmt: skip
_ANGLE_KEYS = (("pelvis", 0, 3), ("spine", 3, 3), ("head", 6, 2), ("r_foot", 32, 2),
               ("l_foot", 34, 2))  # fmt: skip
_BONE_KEYS = (  # (pose part, start in the flat vector, joint at the bone's end)
    ("r_upper", 8, 19), ("r_fore", 11, 21), ("l_upper", 14, 18), ("l_fore", 17, 20),
    ("r_thigh", 20, 5), ("r_shank", 23, 8), ("l_thigh", 26, 4), ("l_shank", 29, 7),
)  # fmt: skip
_MIRROR_INDEX = np.r_[0:8, 14:20, 8:14, 26:32, 20:26, 34:36, 32:34]
_MIRROR_SIGN = np.ones(WIDTH)
_MIRROR_SIGN[[1, 2, 4, 5, 7, 33, 35]] = -1  # roll, twist, head turn, foot yaw
_MIRROR_SIGN[np.r_[8:32].reshape(-1, 3)[:, 1:].ravel()] = -1  # swing vectors: y and z

# Elbow, knee and ankle rotations are swings through a fixed reference direction (in the joint's
# local frame, right side; x negated on the left): the rotation is smooth everywhere except where
# the bone points opposite the reference. These references keep every target of the action
# table at least 50 degrees away from that point (the rest direction itself would allow ~20).
_SWING_REFERENCE = {"elbow": (-0.71, 0.0, 0.71), "knee": (0.71, -0.71, 0.0),
                    "ankle": (-0.58, -0.58, -0.58)}  # fmt: skip

# joint indices: (hip, knee, ankle, foot) and (shoulder, elbow, wrist) per side
_LEG_JOINTS = {"r": (2, 5, 8, 11), "l": (1, 4, 7, 10)}
_ARM_JOINTS = {"r": (17, 19, 21), "l": (16, 18, 20)}
_THIGH, _SHANK = (float(np.linalg.norm(REST_OFFSETS[j])) for j in (5, 8))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def mirror_pose_vector(pose: np.ndarray) -> np.ndarray:
    """Mirror flat pose vectors (..., 36, legs as swing vectors) across x = 0."""
    return pose[..., _MIRROR_INDEX] * _MIRROR_SIGN


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# ----------------------------------------------------------------------------- rotations


def _axis_rot(angle: np.ndarray, axis: int) -> np.ndarray:
    """Rotation matrices (..., 3, 3) by `angle` (...,) about the x, y or z axis."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros((*np.shape(angle), 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1
    m[..., i, i], m[..., j, j], m[..., i, j], m[..., j, i] = c, c, -s, s
    return m


def _angles_rot(pitch, roll, twist) -> np.ndarray:
    """Body-part rotation: twist about y, pitch forward about x, roll to the left about -z."""
    return _axis_rot(twist, 1) @ _axis_rot(pitch, 0) @ _axis_rot(-roll, 2)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest-arc rotations (..., 3, 3) turning unit vectors a onto unit vectors b."""
    a, b = np.broadcast_arrays(a, b)
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    k = np.zeros((*v.shape[:-1], 3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return np.eye(3) + k + (k @ k) / np.maximum(1 + c, 1e-6)[..., None, None]


def _stable_swing(rest: np.ndarray, target: np.ndarray, kind: str, side: str) -> np.ndarray:
    """Rotations (N, 3, 3) turning `rest` onto unit `target` (N, 3) via a reference direction."""
    ref = np.array(_SWING_REFERENCE[kind]) * ([1, 1, 1] if side == "r" else [-1, 1, 1])
    return _swing(_unit(ref), target) @ _swing(rest, _unit(ref))


def _rodrigues(v: np.ndarray) -> np.ndarray:
    """Axis-angle vectors (..., 3) -> rotation matrices (..., 3, 3)."""
    angle = np.linalg.norm(v, axis=-1)
    axis = v / np.maximum(angle, 1e-12)[..., None]
    k = np.zeros((*v.shape[:-1], 3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = axis[..., 2], -axis[..., 1], axis[..., 0]
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _swing_vector(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) of the shortest arc turning unit vectors a onto unit vectors b."""
    cross = np.cross(a, b)
    sin = np.linalg.norm(cross, axis=-1, keepdims=True)
    angle = np.arctan2(sin, (a * b).sum(-1, keepdims=True))
    return cross / np.maximum(sin, 1e-12) * angle


def _rest(joint: int) -> np.ndarray:
    """Unit rest direction of the bone ending at `joint`."""
    return _unit(REST_OFFSETS[joint])


def bone_direction(swing: np.ndarray, joint: int) -> np.ndarray:
    """Direction (..., 3) of the bone ending at `joint` given its swing vector (..., 3)."""
    return _apply(_rodrigues(swing), _rest(joint))


def _apply(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (m @ v[..., None])[..., 0]


def _foot_direction(pitch: np.ndarray, yaw: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Foot bone direction in the heading frame: the level rest foot pitched, then yawed."""
    return _apply(_axis_rot(yaw, 1) @ _axis_rot(-pitch, 0), _unit(rest))


def pose_to_rotations(pose: np.ndarray) -> np.ndarray:
    """Flat poses (N, 36) with legs as swing vectors -> local rotation matrices (N, 22, 3, 3).

    Joint 0 gets the pelvis tilt only (no facing). The shoulder rotation is the upper arm's swing
    (chest frame); every other limb joint gets the swing from its rest bone direction to the
    target direction expressed in its parent's frame (legs and feet targets in the heading
    frame), which stays far from its singularity (a bone folded back onto its parent).
    """
    n = len(pose)
    rots = np.tile(np.eye(3), (n, 22, 1, 1))
    pelvis = _angles_rot(pose[:, 0], pose[:, 1], pose[:, 2])
    rots[:, 0] = pelvis
    rots[:, [3, 6, 9]] = _angles_rot(*(pose[:, 3:6] / 3).T)[:, None]
    rots[:, 12] = _axis_rot(pose[:, 7], 1) @ _axis_rot(pose[:, 6], 0)
    for side, start in (("r", 8), ("l", 14)):
        shoulder, elbow, wrist = _ARM_JOINTS[side]
        upper = _rodrigues(pose[:, start : start + 3])
        fore = bone_direction(pose[:, start + 3 : start + 6], wrist)
        rots[:, shoulder] = upper
        rots[:, elbow] = _stable_swing(_rest(wrist), np.einsum("nji,nj->ni", upper, fore),
                                       "elbow", side)  # fmt: skip
    for side, start, foot in (("r", 20, 32), ("l", 26, 34)):
        hip, knee, ankle, toe = _LEG_JOINTS[side]
        thigh = bone_direction(pose[:, start : start + 3], knee)
        shank = bone_direction(pose[:, start + 3 : start + 6], ankle)
        rots[:, hip] = _swing(_rest(knee), np.einsum("nji,nj->ni", pelvis, thigh))
        hip_global = pelvis @ rots[:, hip]
        rots[:, knee] = _stable_swing(_rest(ankle), np.einsum("nji,nj->ni", hip_global, shank),
                                      "knee", side)  # fmt: skip
        knee_global = hip_global @ rots[:, knee]
        foot_dir = _foot_direction(pose[:, foot], pose[:, foot + 1], REST_OFFSETS[toe])
        rots[:, ankle] = _stable_swing(_rest(toe), np.einsum("nji,nj->ni", knee_global, foot_dir),
                                       "ankle", side)  # fmt: skip
    return rots


def _two_bone_ik(hip: np.ndarray, ankle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thigh and shank directions (N, 3) reaching `ankle` from `hip` with the knee forward."""
    d = ankle - hip
    dist = np.clip(np.linalg.norm(d, axis=-1), abs(_THIGH - _SHANK) + 1e-3, _THIGH + _SHANK - 1e-4)
    d = _unit(d)
    cos_hip = (_THIGH**2 + dist**2 - _SHANK**2) / (2 * _THIGH * dist)
    sin_hip = np.sqrt(np.clip(1 - cos_hip**2, 0.0, 1.0))
    pole = np.array([0.0, 0.0, 1.0]) - d * d[:, 2:3]  # forward, orthogonal to hip->ankle
    pole = _unit(np.where(np.linalg.norm(pole, axis=-1, keepdims=True) < 1e-6, [0, 1, 0], pole))
    thigh = cos_hip[:, None] * d + sin_hip[:, None] * pole
    shank = _unit(hip + dist[:, None] * d - (hip + _THIGH * thigh))
    return thigh, shank


def _legs_to_swing(pose: np.ndarray, modes: tuple[str, str]) -> np.ndarray:
    """Replace ankle-position legs of flat poses (N, 36) by IK thigh/shank swing vectors."""
    pelvis = _angles_rot(pose[:, 0], pose[:, 1], pose[:, 2])
    for mode, leg, (hip, knee, ankle, _) in zip(modes, (R_LEG, L_LEG), _LEG_JOINTS.values(),
                                                strict=True):  # fmt: skip
        if mode == "pos":
            thigh, shank = _two_bone_ik(_apply(pelvis, REST_OFFSETS[hip]), pose[:, leg][:, :3])
            pose[:, leg] = np.concatenate(
                [_swing_vector(_rest(knee), thigh), _swing_vector(_rest(ankle), shank)], 1
            )
    return pose


# ----------------------------------------------------------------------------- keyframes


def _key_vector(pose: dict, modes: tuple[str, str]) -> np.ndarray:
    """One keyframe dict (NEUTRAL-filled) as a flat vector (36,): radians and swing vectors
    (ankle positions for legs in position mode)."""
    full = {**NEUTRAL, **pose}
    vec = np.zeros(WIDTH)
    for name, start, size in _ANGLE_KEYS:
        vec[start : start + size] = np.radians(full[name])
    for side, mode, leg in zip("rl", modes, (R_LEG, L_LEG), strict=True):
        vec[leg.start : leg.start + 3] = full[f"{side}_ankle"]
        if mode == "dir" and f"{side}_thigh" not in pose:  # an ankle target: solve it now
            vec[None] = _legs_to_swing(vec[None], ("pos", "dir") if side == "r" else ("dir", "pos"))
    for name, start, joint in _BONE_KEYS:
        if name in ARM_PARTS or name in pose:
            direction = _unit(np.asarray(full[name], float))
            if direction @ _rest(joint) < -0.97:
                raise ValueError(f"{name} {full[name]} is within 14 degrees of its rest "
                                 "direction's opposite, where swings are unstable")  # fmt: skip
            vec[start : start + 3] = _swing_vector(_rest(joint), direction)
    return vec


def _leg_modes(keys) -> tuple[str, str]:
    """'dir' for a leg given by bone directions in any key, else 'pos' (ankle targets)."""
    modes = []
    for side in "rl":
        for _, p in keys:
            if (f"{side}_thigh" in p) != (f"{side}_shank" in p) or (
                f"{side}_thigh" in p and f"{side}_ankle" in p
            ):
                raise ValueError(f"a keyframe must give the {side} leg as thigh + shank or ankle")
        modes.append("dir" if any(f"{side}_thigh" in p for _, p in keys) else "pos")
    return modes[0], modes[1]


@dataclass(frozen=True)
class _Compiled:
    """A primitive's keyframes, ready to evaluate: interpolator over phase, neutral vector."""

    prim: Primitive
    modes: tuple[str, str]
    interp: PchipInterpolator
    neutral: np.ndarray
    flights: tuple


@functools.cache
def compiled(name: str) -> _Compiled:
    """The compiled keyframes of primitive `name` (right side, amplitude 1); cached."""
    if name not in PRIMITIVES:
        raise ValueError(f"unknown action {name!r}; known: {sorted(PRIMITIVES)}")
    prim = PRIMITIVES[name]
    keys = list(prim.keys)
    if prim.half:
        keys += [(p + 0.5, mirror_pose(pose)) for p, pose in prim.keys]
    flights = prim.flights
    if prim.reverse:
        keys = [((1 - p) % 1 if prim.cyclic else 1 - p, pose) for p, pose in keys]
        flights = tuple((1 - b, 1 - a) for a, b in flights)
    keys.sort(key=lambda k: k[0])
    modes = _leg_modes(keys)
    phases = np.array([p for p, _ in keys])
    values = np.stack([_key_vector(pose, modes) for _, pose in keys])
    if prim.cyclic:
        if phases[0] < 0 or phases[-1] >= 1 or np.any(np.diff(phases) <= 0):
            raise ValueError(f"{name}: cyclic key phases must increase within [0, 1)")
        phases = np.r_[phases[-2:] - 1, phases, phases[:2] + 1]
        values = np.concatenate([values[-2:], values, values[:2]])
    else:
        if phases[0] != 0 or phases[-1] != 1 or np.any(np.diff(phases) <= 0):
            raise ValueError(f"{name}: one-shot key phases must increase from 0 to 1")
        phases = np.r_[-0.1, phases, 1.1]  # repeated end values: zero velocity at both ends
        values = np.concatenate([values[:1], values, values[-1:]])
    return _Compiled(prim, modes, PchipInterpolator(phases, values, axis=0),
                     _key_vector({}, modes), flights)  # fmt: skip


# ----------------------------------------------------------------------------- plans


@dataclass
class SegmentPlan:
    """One action in a motion: when it starts, how fast, how big, which side, how much turn."""

    action: str
    side: str
    start: float
    cycle: float
    reps: int
    amplitude: float
    yaw: float  # radians, sign included (the facing change of the whole segment)

    @property
    def end(self) -> float:
        return self.start + self.cycle * self.reps

    @property
    def toxic(self) -> bool:
        return PRIMITIVES[self.action].toxic


@dataclass
class MotionPlan:
    """Everything random about a motion, so it can be rendered at any frame rate."""

    segments: list[SegmentPlan]
    duration: float
    height_scale: float = 1.0
    facing: float = 0.0  # radians, initial yaw
    noise: np.ndarray = field(default_factory=lambda: np.zeros((3, 20, 2)))  # amp, Hz, phase


def _segment(action, side, rng, amplitude=None, cycle=None, reps=None) -> SegmentPlan:
    prim = compiled(action).prim  # raises ValueError naming an unknown action
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    cycle = float(rng.uniform(*prim.cycle)) if cycle is None else float(cycle)
    reps = int(rng.integers(prim.reps[0], prim.reps[1] + 1)) if reps is None else int(reps)
    amplitude = float(rng.uniform(*prim.amplitude)) if amplitude is None else float(amplitude)
    jitter = rng.uniform(0.8, 1.2) if prim.yaw_per_rep else rng.uniform(0.94, 1.06)
    yaw = math.radians(prim.yaw) * jitter * (reps if prim.yaw_per_rep else 1)
    yaw *= 1 if side == "right" else -1
    return SegmentPlan(action, side, 0.0, cycle, reps, amplitude, float(yaw))


def _noise(rng: np.random.Generator) -> np.ndarray:
    """Smooth per-channel noise (sum of two sinusoids) for the 8 angles and 12 arm values."""
    scale = np.r_[np.radians([0.5, 0.5, 0.5, 1.5, 1.5, 1.5, 3.0, 3.0]), np.full(12, 0.03)]
    amp = scale[:, None] * rng.uniform(0.3, 1.0, (20, 2))
    freq = rng.uniform(0.2, 1.2, (20, 2))
    phase = rng.uniform(0, 2 * np.pi, (20, 2))
    return np.stack([amp, freq, phase])


def plan_motion(
    actions: Sequence[tuple[str, str]],
    rng: np.random.Generator,
    height_scale: float | None = None,
    facing: float | None = None,
    odd_frames: bool = False,
    **segment_overrides,
) -> MotionPlan:
    """Sample timing, amplitude, body size, facing and noise for a sequence of (action, side).

    The motion lasts 2.0-9.8 s (41-197 frames at 20 fps; an odd frame count with `odd_frames`,
    so a 30 fps copy resamples to the same frames): when the sampled timing is too long,
    repetitions are cut, then the last safe action is dropped (toxic actions stay; captions
    must describe `plan.segments`, not `actions`). `segment_overrides` (amplitude, cycle, reps)
    fix those values for every segment (tests use them).
    """
    if not actions:
        raise ValueError("a motion needs at least one action")
    segments = [_segment(a, s, rng, **segment_overrides) for a, s in actions]
    pads = rng.uniform(0.35, 0.6, 2)
    while pads.sum() + sum(s.cycle * s.reps for s in segments) > MAX_SECONDS:
        longest = max(segments, key=lambda s: s.reps)
        safe = [k for k, s in enumerate(segments) if not s.toxic]
        if longest.reps > 1 and segment_overrides.get("reps") is None:
            longest.reps -= 1
        elif len(segments) > 1:
            segments.pop(safe[-1] if safe else -1)
        else:
            segments[0].cycle = (MAX_SECONDS - pads.sum()) / segments[0].reps
    start = float(pads[0])
    for seg in segments:
        seg.start = start
        start = seg.end
    frames = int(np.clip(math.floor(max(start + pads[1], MIN_SECONDS) * 20 + 1e-9) + 1, 41, 197))
    if odd_frames and frames % 2 == 0:
        frames += 1 if frames < 197 else -1
    height = float(rng.uniform(0.9, 1.1)) if height_scale is None else float(height_scale)
    yaw0 = float(rng.uniform(-np.pi, np.pi)) if facing is None else float(facing)
    return MotionPlan(segments, (frames - 1) / 20, height, yaw0, _noise(rng))


# ----------------------------------------------------------------------------- rendering


def _segment_pose(seg: SegmentPlan, t: np.ndarray) -> np.ndarray:
    """Pose channels (N, 36) of one segment at times t; cyclic ones keep cycling outside it."""
    comp = compiled(seg.action)
    u = (t - seg.start) / seg.cycle
    if comp.prim.cyclic:
        phase = u % 1.0
    else:
        u = np.clip(u, 0.0, seg.reps)
        phase = u - np.minimum(np.floor(u), seg.reps - 1)
    pose = comp.neutral + seg.amplitude * (comp.interp(phase) - comp.neutral)
    pose = _legs_to_swing(pose, comp.modes)
    return mirror_pose_vector(pose) if seg.side == "left" else pose


def _neutral_pose(t: np.ndarray) -> np.ndarray:
    pose = np.tile(compiled("stand_idle").neutral, (len(t), 1))
    return _legs_to_swing(pose, ("pos", "pos"))


def _blend(plan: MotionPlan, t: np.ndarray) -> np.ndarray:
    """Crossfade the neutral lead-in, the segments and the neutral lead-out: poses (N, 36)."""
    bounds = [s.start for s in plan.segments] + [plan.segments[-1].end]
    ramps = [_smoothstep((t - b + CROSSFADE / 2) / CROSSFADE) for b in bounds]
    pose = _neutral_pose(t) * (1 - ramps[0] + ramps[-1])[:, None]
    for seg, up, down in zip(plan.segments, ramps[:-1], ramps[1:], strict=True):
        weight = up - down
        active = weight > 0
        if active.any():
            pose[active] += weight[active, None] * _segment_pose(seg, t[active])
    return pose


def _yaw(plan: MotionPlan, t: np.ndarray) -> np.ndarray:
    """Facing angle (N,) radians: initial facing plus each segment's turn, smoothed."""
    yaw = np.full(len(t), plan.facing)
    for seg in plan.segments:
        if PRIMITIVES[seg.action].yaw_per_rep:
            yaw += seg.yaw * np.clip((t - seg.start) / (seg.end - seg.start), 0, 1)
        else:
            span = seg.end - seg.start
            yaw += seg.yaw * _smoothstep((t - seg.start - 0.1 * span) / (0.8 * span))
    return gaussian_filter1d(yaw, sigma=0.1 * BASE_FPS, mode="nearest")


def _flight(plan: MotionPlan, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Airborne windows inside the segments: height (N,) of the ballistic arcs
    g/2 (t - t0)(t1 - t) and whether the root keeps its ground velocity there (N,) bool."""
    height, travel = np.zeros(len(t)), np.zeros(len(t), bool)
    for seg in plan.segments:
        comp = compiled(seg.action)
        for rep in range(seg.reps):
            for a, b in comp.flights:
                t0, t1 = seg.start + (rep + a) * seg.cycle, seg.start + (rep + b) * seg.cycle
                if t0 >= seg.start - 1e-9 and t1 <= seg.end + 1e-9:
                    arc = np.clip(GRAVITY / 2 * (t - t0) * (t1 - t), 0, None)
                    height += arc
                    travel |= (arc > 0) & comp.prim.travel
    return height, travel


def _add_noise(plan: MotionPlan, pose: np.ndarray, t: np.ndarray) -> np.ndarray:
    amp, freq, phase = plan.noise
    noise = (amp * np.sin(2 * np.pi * freq * t[:, None, None] + phase)).sum(-1)  # (N, 20)
    pose[:, :20] += noise
    return pose


def _forward_fill(values: np.ndarray, valid: np.ndarray, default) -> np.ndarray:
    """Replace rows where `valid` is False by the last valid row (or `default` before any)."""
    index = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1))
    out = np.where((index >= 0)[:, None], values[np.maximum(index, 0)], default)
    return out


def _root_path(points: np.ndarray, t: np.ndarray, flight: np.ndarray, travel: np.ndarray
               ) -> np.ndarray:  # fmt: skip
    """Root positions (N, 3) that put the lowest contact point on the floor and lock the stance.

    points: (N, 4, 3) contact points relative to the root (left heel, left toe, right heel,
    right toe). While grounded, the lower foot is the stance foot (it keeps the stance until the
    other foot is STANCE_EPS lower) and its lowest point does not move; airborne, the root
    follows the flight arc and keeps the last grounded horizontal velocity where `travel`,
    else stays put. No contact point ever goes below the floor.
    """
    height = points[..., 1]
    base = -height.min(1)
    air = flight > 0
    if air.any() and (~air).any():
        base[air] = np.interp(t[air], t[~air], base[~air])
    left, right = height[:, :2].min(1), height[:, 2:].min(1)
    decided = np.abs(left - right) > STANCE_EPS
    last = np.maximum.accumulate(np.where(decided, np.arange(len(t)), -1))
    first = int(np.argmax(decided))  # frames before any decision take the first one (symmetric)
    stance_right = (right < left)[np.where(last < 0, first, last)]
    point = np.where(stance_right, 2 + height[:, 2:].argmin(1), height[:, :2].argmin(1))
    frames = np.arange(len(t) - 1)
    step = (points[frames, point[:-1]] - points[frames + 1, point[:-1]])[:, [0, 2]]
    grounded = ~air[:-1] & ~air[1:]
    step = np.where(grounded[:, None], step, _forward_fill(step, grounded, 0.0) * travel[1:, None])
    xz = np.concatenate([np.zeros((1, 2)), np.cumsum(step, 0)])
    y = np.maximum(base + flight, -height.min(1))
    return np.stack([xz[:, 0], y, xz[:, 1]], 1)


@dataclass
class Motion:
    """A rendered motion at `fps`: positions, local rotations and root, plus its labels."""

    joints: np.ndarray  # (T, 22, 3) y-up metres
    rotations: np.ndarray  # (T, 22, 3) local axis-angle; joint 0 = global orientation
    root: np.ndarray  # (T, 3) pelvis position (the SMPL translation of the built-in skeleton)
    fps: int
    plan: MotionPlan

    @property
    def segments(self) -> list[dict]:
        """Ground-truth labels: action, toxic, side, start/end seconds and frames [start, end)."""
        return [{"action": s.action, "toxic": s.toxic, "side": s.side,
                 "start_s": round(s.start, 4), "end_s": round(s.end, 4),
                 "start": int(round(s.start * self.fps)),
                 "end": min(int(round(s.end * self.fps)), len(self.joints))}
                for s in self.plan.segments]  # fmt: skip


def render_plan(plan: MotionPlan, fps: int = 20) -> Motion:
    """Render a plan at `fps` (a divisor of 60): the 60 fps motion subsampled."""
    if BASE_FPS % fps:
        raise ValueError(f"fps must divide {BASE_FPS}, got {fps}")
    n = round(plan.duration * BASE_FPS) + 1
    t = np.arange(n) / BASE_FPS
    pose = _add_noise(plan, _blend(plan, t), t)
    local = pose_to_rotations(pose)  # (N, 22, 3, 3), joint 0 without facing
    yaw = _axis_rot(_yaw(plan, t), 1)  # (N, 3, 3)
    local[:, 0] = yaw @ local[:, 0]
    offsets = scaled_rest_offsets(plan.height_scale)
    rel = forward_kinematics(local, np.zeros((n, 3)), offsets)  # (N, 22, 3) around the root
    feet = pose[:, FEET].reshape(n, 2, 2)  # (N, side r/l, pitch/yaw)
    heels = [rel[:, ankle] + plan.height_scale * _apply(
        yaw @ _axis_rot(feet[:, i, 1], 1) @ _axis_rot(-feet[:, i, 0], 0), HEEL)
        for i, ankle in ((1, 7), (0, 8))]  # fmt: skip
    points = np.stack([heels[0], rel[:, 10], heels[1], rel[:, 11]], 1)
    root = _root_path(points, t, *_flight(plan, t))
    step = BASE_FPS // fps
    local, root = local[::step], root[::step]
    return Motion(
        joints=rel[::step] + root[:, None],
        rotations=matrix_to_axis_angle(local),
        root=root,
        fps=fps,
        plan=plan,
    )


def generate_action(
    name: str,
    rng: np.random.Generator,
    side: str = "right",
    fps: int = 20,
    height_scale: float = 1.0,
    facing: float = 0.0,
    **segment_overrides,
) -> Motion:
    """One action in isolation (with the neutral stance before and after), e.g. for tests.

    `segment_overrides`: amplitude, cycle (seconds), reps; sampled from the primitive otherwise.
    """
    plan = plan_motion([(name, side)], rng, height_scale, facing, **segment_overrides)
    return render_plan(plan, fps)
