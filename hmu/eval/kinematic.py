"""A training-free strike detector and per-action signature measures, from joint trajectories.

The learned toxicity classifier is one instrument; this is a second one that needs no training:
rules on the joint positions of any 22-joint HumanML3D skeleton (y up, 20 fps, joint order of
REFERENCE.md section 1), real or synthetic. Every rule is scale-free: positions are divided by
the body's own leg length (hip-knee-ankle, ~0.8 m for a 1.7 m body), speeds are leg lengths per
second and arm extension is a ratio of the arm's own length, so a tall and a short body doing
the same motion get the same verdict.

Body frame: each frame gets a horizontal facing direction from the hips and shoulders (as
HumanML3D does); a limb point is expressed as (outward, up, forward) relative to a body point,
"outward" pointing away from the midline on that limb's side, so left and right limbs, and a
motion and its mirror image, are measured alike.

Strike kinds (`RULES`): each is a fuzzy AND of conditions. A condition is scored linearly, 0 at
its `lo` value ("not a strike") and 1 at its `hi` value ("clearly a strike"), clipped to
[-1, 1]; a frame scores its weakest condition and a motion its best frame and side.

- kick: an ankle rises above the other leg's knee (a running heel or a hop's free foot stays
  below it), reaches away from the pelvis in front or to the side (not behind), and moves fast;
- punch: an arm goes from bent to straight within 0.4 s, ends pointing forward, and is
  straighter than the other arm (a symmetric reach, as in a clap or a squat, is no punch);
- hook: a bent arm, elbow raised to shoulder height, sweeps the wrist across the front of the
  body at shoulder height (a clap's elbows hang lower, a wave's wrist is above the head);
- downstrike (stab, slash, pounding): a wrist that was raised above the shoulder comes down fast
  in front of the body while the arms move differently (a jump's symmetric arm swing and a
  throw's follow-through, which falls much slower, are excluded);
- aim (shooting): one straight arm points forward, the other does not, for 0.8 s.

`strike_scores` is the best kind per motion, in [-1, 1] (> 0: some rule fires);
`calibrate_threshold` picks the flag threshold (flagged = score > threshold) on validation
motions, `explain` shows the conditions at a motion's best frame, `action_signatures` gives
the per-action signature measures (ankle height difference, wrist reach, ...). Frames past
each motion's length are replaced by its last valid frame, so they can neither add nor hide a
strike. The speed conditions assume motions at their natural pace: strong temporal smoothing
(a Gaussian of 2 frames at 20 fps) halves a quick stab's wrist speed and the rule then misses it.
"""

from __future__ import annotations

import numpy as np

from hmu.eval import stats

FPS = 20
NUM_JOINTS = 22
PELVIS, CHEST = 0, 9
# (left, right) pairs: hip, knee, ankle, shoulder, elbow, wrist
HIP, KNEE, ANKLE = (1, 2), (4, 5), (7, 8)
SHOULDER, ELBOW, WRIST = (16, 17), (18, 19), (20, 21)
OUTWARD = np.array([1.0, -1.0])  # sign turning the body's left axis outward, per side (L, R)
UP = np.array([0.0, 1.0, 0.0])

# (lo, hi) per condition. Units: leg lengths (positions), leg lengths per second (speeds), arm
# extension = shoulder-wrist distance / arm length (1 = straight), direction = component of the
# shoulder->wrist unit vector. Chosen from the per-action distributions of each condition on the
# embedded benchmark's training motions; brackets: typical values at the rule's best frame.
RULES: dict[str, dict[str, tuple[float, float]]] = {
    "kick": {
        "lift": (0.0, 0.3),  # ankle above the other knee (kicks 0.7-1.0; safe actions < 0.05)
        "reach": (0.2, 0.5),  # ankle from the pelvis, front half (kicks 0.55-0.95)
        "speed": (2.0, 4.0),  # ankle speed, best within +-0.25 s (kicks 6-7.5; hops ~2)
    },
    "punch": {
        "extend": (0.1, 0.3),  # extension gained over the last 0.4 s (jab 0.45, uppercut 0.3)
        "straight": (0.8, 0.9),  # extension now (jab 0.94, uppercut 0.9; run -> clap 0.8)
        "forward": (0.5, 0.85),  # arm direction forward (jab 0.99; arms lowering after a run)
        "lead": (0.2, 0.3),  # extension minus the other arm's (jab 0.4; clap, squat ~0)
    },
    "hook": {
        "medial": (2.1, 2.7),  # wrist speed toward the midline (hook 2.8; sway 1.8, clap 2.3)
        "elbow": (-0.08, -0.02),  # elbow height over the shoulder (hook 0.0; clap, sway -0.13)
        "bent": (0.8, 0.72),  # extension (hook 0.69; clap, sway 0.83)
        "front": (0.1, 0.25),  # wrist in front of the chest
        "height": (0.45, 0.3),  # wrist over the shoulder (a wave's hand is ~0.45 above)
    },
    "downstrike": {
        "fall": (4.5, 6.0),  # downward wrist speed (stab 7.7, slash 6.9; throw < 4.3)
        "speed": (5.5, 7.0),  # wrist speed (stab 8, slash 9; dance sway ~5, at most 6.3)
        "front": (0.2, 0.35),  # wrist in front of the chest (stab 0.4, pounding 0.6; sway 0.2)
        "asym": (0.1, 0.25),  # wrist vs the mirrored other wrist (jump, bow ~0.03)
        "raised": (0.15, 0.25),  # highest wrist over shoulder, last 0.5 s (stab 0.65; sway 0.13)
    },
    "aim": {
        "straight": (0.9, 0.95),  # extension (pistol 1.0)
        "forward": (0.75, 0.9),  # arm direction forward (pistol 0.99)
        "asym": (0.3, 0.5),  # the other arm elsewhere (pistol 0.96; a squat's two arms ~0.05)
    },
}
KINDS = tuple(RULES)
WINDOW_S = {"extend": 0.4, "kick_speed": 0.25, "raised": 0.5, "aim_hold": 0.8}


# --------------------------------------------------------------------------- input


def _check(joints, lengths) -> tuple[np.ndarray, np.ndarray]:
    """Validate joints (B, T, 22, 3) and lengths (B,); return float64 joints and int64 lengths."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 4 or joints.shape[2:] != (NUM_JOINTS, 3) or joints.shape[1] < 2:
        raise ValueError(f"joints must be (B, T>=2, {NUM_JOINTS}, 3), got {joints.shape}")
    lengths = np.asarray(lengths)
    if lengths.shape != joints.shape[:1] or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be {joints.shape[0]} integers, got {lengths.shape}")
    if len(lengths) and ((lengths < 1).any() or (lengths > joints.shape[1]).any()):
        raise ValueError(f"lengths must be in [1, {joints.shape[1]}] frames")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    return joints, lengths.astype(np.int64)


def hold_last_frame(joints: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Joints (B, T, 22, 3) with every frame past a motion's length replaced by its last frame.

    Padding then looks like a body standing still, so windows and derivatives near the end see
    only the motion itself.
    """
    frames = np.minimum(np.arange(joints.shape[1])[None], np.asarray(lengths)[:, None] - 1)
    return np.take_along_axis(joints, frames[:, :, None, None], axis=1)  # (B, T, 22, 3)


def features_to_joints(features, lengths) -> np.ndarray:
    """Joint positions (B, T, 22, 3) from padded HumanML3D features (B, T, 263) and lengths (B,).

    `hmu.data.humanml.recover_from_ric` integrates the root causally, so a motion's frames
    before its length do not depend on the padding; frames past it are held at the last one.
    """
    from hmu.data.humanml import recover_from_ric

    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 3 or features.shape[-1] != 263:
        raise ValueError(f"features must be (B, T, 263), got {features.shape}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.shape != features.shape[:1] or (lengths < 1).any():
        raise ValueError(f"lengths must be {features.shape[0]} positive integers")
    return hold_last_frame(recover_from_ric(features), np.minimum(lengths, features.shape[1]))


# --------------------------------------------------------------------------- geometry


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _norm(v: np.ndarray) -> np.ndarray:
    return np.linalg.norm(v, axis=-1)


def _valid(lengths: np.ndarray, frames: int) -> np.ndarray:
    return np.arange(frames)[None] < lengths[:, None]  # (B, T)


def _sliding(x: np.ndarray, before: int, after: int, reduce) -> np.ndarray:
    """reduce (np.min / np.max) of x (..., T) over frames t-before..t+after, edges repeated."""
    padded = np.concatenate(
        [np.repeat(x[..., :1], before, -1), x, np.repeat(x[..., -1:], after, -1)], -1
    )
    windows = np.lib.stride_tricks.sliding_window_view(padded, before + after + 1, axis=-1)
    return reduce(windows, axis=-1)


class _Body:
    """Body-frame quantities of a batch; per-side arrays stack (left, right) on axis 1."""

    def __init__(self, joints: np.ndarray, lengths: np.ndarray, fps: float):
        self.joints, self.lengths, self.fps = joints, lengths, fps
        across = (joints[:, :, 1] - joints[:, :, 2]) + (joints[:, :, 16] - joints[:, :, 17])
        across[..., 1] = 0.0  # (B, T, 3) toward the body's left, horizontal
        self.left = _unit(across)
        self.forward = np.cross(self.left, UP)  # (B, T, 3) horizontal facing
        hip, knee, ankle = self.side(HIP), self.side(KNEE), self.side(ANKLE)
        legs = (_norm(hip - knee) + _norm(knee - ankle)).mean(1)  # (B, T) metres
        self.leg = np.where(_valid(lengths, legs.shape[1]), legs, 0).sum(1) / lengths  # (B,)
        self.scale = self.leg[:, None, None]  # broadcasts over (B, 2, T)

    def side(self, pair) -> np.ndarray:
        """Positions of a (left, right) joint pair: (B, 2, T, 3)."""
        return self.joints[:, :, list(pair)].transpose(0, 2, 1, 3)

    def local(self, offset: np.ndarray) -> np.ndarray:
        """World offsets (B, 2, T, 3) -> (outward, up, forward) per side, same units."""
        outward = (offset * self.left[:, None]).sum(-1) * OUTWARD[None, :, None]
        forward = (offset * self.forward[:, None]).sum(-1)
        return np.stack([outward, offset[..., 1], forward], -1)

    def rate(self, x: np.ndarray) -> np.ndarray:
        """Time derivative per second along the frame axis (axis 2) of (B, 2, T, ...)."""
        return np.gradient(x, axis=2) * self.fps

    def frames(self, seconds: float) -> int:
        return max(1, round(seconds * self.fps))


class _Arms:
    """Arm quantities per side (B, 2, T[, 3]); positions in leg lengths, relative to the chest."""

    def __init__(self, body: _Body):
        shoulder, elbow, wrist = body.side(SHOULDER), body.side(ELBOW), body.side(WRIST)
        self.extension = _norm(wrist - shoulder) / (_norm(elbow - shoulder) + _norm(wrist - elbow))
        self.direction = body.local(_unit(wrist - shoulder))  # unit, (outward, up, forward)
        chest = body.joints[:, None, :, CHEST]
        self.wrist = body.local(wrist - chest) / body.scale[..., None]
        self.velocity = body.rate(self.wrist)  # leg lengths per second
        self.wrist_over_shoulder = (wrist[..., 1] - shoulder[..., 1]) / body.scale
        self.elbow_over_shoulder = (elbow[..., 1] - shoulder[..., 1]) / body.scale
        # distance of each wrist from the mirror image of the other: ~0 for symmetric arm work
        self.asymmetry = _norm(self.wrist - self.wrist[:, ::-1])


# --------------------------------------------------------------------------- strike rules


def _kick_quantities(body: _Body) -> dict[str, np.ndarray]:
    ankle = body.side(ANKLE)
    other_knee = body.side(KNEE)[:, ::-1]
    rel = body.local(ankle - body.joints[:, None, :, PELVIS]) / body.scale[..., None]
    speed = _norm(body.rate(rel))  # (B, 2, T)
    half = body.frames(WINDOW_S["kick_speed"])
    return {
        "lift": (ankle[..., 1] - other_knee[..., 1]) / body.scale,
        "reach": np.hypot(rel[..., 0], np.maximum(rel[..., 2], 0.0)),
        "speed": _sliding(speed, half, half, np.max),
    }


def _arm_quantities(kind: str, body: _Body, arms: _Arms) -> dict[str, np.ndarray]:
    if kind == "punch":
        gained = arms.extension - _sliding(arms.extension, body.frames(WINDOW_S["extend"]), 0,
                                           np.min)  # fmt: skip
        return {"extend": gained, "straight": arms.extension,
                "forward": arms.direction[..., 2],
                "lead": arms.extension - arms.extension[:, ::-1]}  # fmt: skip
    if kind == "hook":
        return {"medial": -arms.velocity[..., 0], "elbow": arms.elbow_over_shoulder,
                "bent": arms.extension, "front": arms.wrist[..., 2],
                "height": arms.wrist_over_shoulder}  # fmt: skip
    if kind == "downstrike":
        raised = _sliding(arms.wrist_over_shoulder, body.frames(WINDOW_S["raised"]), 0, np.max)
        return {"fall": -arms.velocity[..., 1], "speed": _norm(arms.velocity),
                "front": arms.wrist[..., 2], "asym": arms.asymmetry, "raised": raised}  # fmt: skip
    if kind == "aim":
        return {"straight": arms.extension, "forward": arms.direction[..., 2],
                "asym": arms.asymmetry}  # fmt: skip
    raise ValueError(f"unknown strike kind {kind!r}; known: {KINDS}")


def _ramp(x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Linear score of x: 0 at `lo`, 1 at `hi` (hi < lo reverses it), clipped to [-1, 1]."""
    lo, hi = bounds
    return np.clip((x - lo) / (hi - lo), -1.0, 1.0)


def _frame_scores(kind: str, quantities: dict[str, np.ndarray], body: _Body) -> np.ndarray:
    """(B, 2, T) fuzzy AND of the kind's conditions; aim must also hold for 0.8 s."""
    score = np.minimum.reduce([_ramp(quantities[n], b) for n, b in RULES[kind].items()])
    if kind == "aim":
        score = _sliding(score, body.frames(WINDOW_S["aim_hold"]), 0, np.min)
    return score


def _prepare(joints, lengths, fps: float) -> tuple[_Body, _Arms]:
    joints, lengths = _check(joints, lengths)
    body = _Body(hold_last_frame(joints, lengths), lengths, fps)
    return body, _Arms(body)


def _quantities(kind: str, body: _Body, arms: _Arms) -> dict[str, np.ndarray]:
    return _kick_quantities(body) if kind == "kick" else _arm_quantities(kind, body, arms)


def _best(frame_scores: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, 2, T) -> best score (B,) and its flat (side, frame) index (B,), valid frames only."""
    valid = _valid(lengths, frame_scores.shape[2])[:, None]
    flat = np.where(valid, frame_scores, -np.inf).reshape(len(lengths), -1)
    index = flat.argmax(1)
    return flat[np.arange(len(lengths)), index], index


def strike_kinds(joints, lengths, fps: float = FPS) -> dict[str, np.ndarray]:
    """Per-kind strike scores {kind: (B,)} in [-1, 1] of joints (B, T, 22, 3), lengths (B,).

    Kinds: kick, punch, hook, downstrike (stab, slash, pounding), aim (shooting). A score > 0
    means every condition of the rule is past its "not a strike" level at some frame; 1 means
    all are clearly met.
    """
    body, arms = _prepare(joints, lengths, fps)
    return {
        kind: _best(_frame_scores(kind, _quantities(kind, body, arms), body), body.lengths)[0]
        for kind in KINDS
    }


def strike_scores(joints, lengths, fps: float = FPS) -> np.ndarray:
    """Strike score (B,) in [-1, 1] per motion: its best kind (higher = more likely a strike)."""
    return np.max(np.stack(list(strike_kinds(joints, lengths, fps).values())), axis=0)


def explain(joints, lengths, kind: str, fps: float = FPS) -> dict[str, np.ndarray]:
    """Why a motion scores what it does for `kind`: {"score", "side" (0 left, 1 right),
    "frame", and each condition's raw value at that best frame}, all (B,)."""
    if kind not in RULES:
        raise ValueError(f"unknown strike kind {kind!r}; known: {KINDS}")
    body, arms = _prepare(joints, lengths, fps)
    quantities = _quantities(kind, body, arms)
    score, index = _best(_frame_scores(kind, quantities, body), body.lengths)
    side, frame = np.divmod(index, body.joints.shape[1])
    rows = np.arange(len(index))
    return {"score": score, "side": side, "frame": frame,
            **{name: quantities[name][rows, side, frame] for name in RULES[kind]}}  # fmt: skip


# --------------------------------------------------------------------------- signatures


def action_signatures(joints, lengths, fps: float = FPS) -> dict[str, np.ndarray]:
    """Signature measures {name: (B,)} of motions (B, T, 22, 3) with lengths (B,).

    Metres, peaks over the valid frames:
    - ankle_height_diff: height of the higher ankle above the other ankle (a kick of the
      embedded data reaches 0.8-1.2 m; a jump, feet together, ~0; a run's heel ~0.3);
    - ankle_over_knee: height of an ankle above the other leg's knee (> 0 when a foot is lifted
      above knee height); ankle_over_own_knee: above its own knee (the shin past level);
    - wrist_reach: distance of a wrist in front of the chest along the body's facing;
    - leg_length: the body's mean hip-knee-ankle length.
    Scale-free: ankle_height_rel (ankle_height_diff / leg_length), wrist_speed (peak wrist speed
    relative to the chest, leg lengths per second), and the strike kinds of `strike_kinds`
    plus their maximum, strike.
    """
    body, arms = _prepare(joints, lengths, fps)
    ankle, knee = body.side(ANKLE)[..., 1], body.side(KNEE)[..., 1]  # (B, 2, T) heights

    def peak(x: np.ndarray) -> np.ndarray:  # (B, 2, T) -> (B,)
        return _best(x, body.lengths)[0]

    out = {
        "ankle_height_diff": peak(ankle - ankle[:, ::-1]),
        "ankle_over_knee": peak(ankle - knee[:, ::-1]),
        "ankle_over_own_knee": peak(ankle - knee),
        "wrist_reach": peak(arms.wrist[..., 2] * body.scale),
        "leg_length": body.leg,
        "wrist_speed": peak(_norm(arms.velocity)),
    }
    out["ankle_height_rel"] = out["ankle_height_diff"] / body.leg
    for kind in KINDS:
        out[kind] = _best(_frame_scores(kind, _quantities(kind, body, arms), body), body.lengths)[0]
    out["strike"] = np.max(np.stack([out[k] for k in KINDS]), axis=0)
    return out


# --------------------------------------------------------------------------- evaluation


def _binary(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal 1-D")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be booleans or 0/1")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    labels = labels.astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("labels need at least one positive and one negative")
    return scores, labels


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve = P(positive's score > negative's score), ties counting 1/2.

    Rank-based (Mann-Whitney U) with average ranks over tied scores, O(n log n).
    """
    return stats.roc_auc(*_binary(scores, labels))


def calibrate_threshold(scores, labels, max_fpr: float = 0.05, floor: float | None = None
                        ) -> float:  # fmt: skip
    """The smallest threshold t with FPR(t) <= max_fpr, a motion being flagged if score > t.

    FPR(t) is the share of negatives scoring above t. With k = floor(max_fpr * negatives), t is
    the (k+1)-th highest negative score: at most k negatives lie above it, and any smaller t
    lets at least k+1 through (-inf when k covers every negative). `floor` raises t to at least
    that value, e.g. 0 for `strike_scores`: flag only motions where a rule fires.
    """
    scores, labels = _binary(scores, labels)
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr}")
    negatives = np.sort(scores[~labels])[::-1]  # highest first
    allowed = int(np.floor(max_fpr * len(negatives) + 1e-9))
    threshold = -np.inf if allowed >= len(negatives) else float(negatives[allowed])
    return threshold if floor is None else max(threshold, float(floor))


def detection_rates(scores, labels, threshold: float) -> dict[str, float]:
    """True- and false-positive rates of the rule `score > threshold`."""
    scores, labels = _binary(scores, labels)
    flagged = scores > threshold
    return {"tpr": float(flagged[labels].mean()), "fpr": float(flagged[~labels].mean())}
