"""The action primitives of the synthetic benchmark, as data: keyframed poses + caption templates.

A pose is written in a small language that reads like a choreographer's notes instead of raw
axis-angle numbers; `hmu.data.synth.motion` turns it into local joint rotations (SMPL convention)
frame by frame. Coordinates: y up, z forward, x the body's left (the right side has x < 0).

Pose keys (every key missing from a keyframe takes its NEUTRAL value):
- ``pelvis``, ``spine``: (pitch forward, roll to the left, twist to the left) in degrees; the
  spine's angles are spread evenly over spine1..spine3.
- ``head``: (pitch down, turn to the left) in degrees.
- ``r_upper``, ``r_fore``, ``l_upper``, ``l_fore``: arm bone directions in the chest frame.
- legs: ``r_ankle``/``l_ankle`` = ankle position relative to the pelvis in the heading frame
  (metres for a 1.70 m body; two-bone IK with the knee forward finds the leg), or ``r_thigh`` +
  ``r_shank`` = bone directions in the heading frame (kicks). A leg given by directions in any
  key of a primitive is interpolated as directions (its ankle keys are solved by IK first),
  otherwise as ankle positions (solved by IK frame by frame, so planted feet stay put).
- ``r_foot``, ``l_foot``: (pitch toes up, yaw to the left) in degrees; (0, 0) is a level foot.

Every primitive is written for the right side (right leg kicks, turns clockwise, steps to the
right); the left version mirrors the pose channels. A cyclic primitive with `half=True` lists
the first half of its cycle and gets the second half as the mirror image (a symmetric gait).

Over 450 lines because it is a catalogue: one primitive per action, read as one table.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

ANGLE_PARTS = ("pelvis", "spine", "head", "r_foot", "l_foot")
ARM_PARTS = ("r_upper", "r_fore", "l_upper", "l_fore")
LEG_DIR_PARTS = ("r_thigh", "r_shank", "l_thigh", "l_shank")
LEG_POS_PARTS = ("r_ankle", "l_ankle")
POSE_PARTS = ANGLE_PARTS + ARM_PARTS + LEG_DIR_PARTS + LEG_POS_PARTS

STANCE = {"r_ankle": (-0.09, -0.85, 0.0), "l_ankle": (0.09, -0.85, 0.0)}
ARMS_DOWN = {"r_upper": (-0.22, -1, 0.0), "r_fore": (-0.1, -1, 0.18),
             "l_upper": (0.22, -1, 0.0), "l_fore": (0.1, -1, 0.18)}  # fmt: skip
NEUTRAL: dict[str, tuple] = {
    "pelvis": (0, 0, 0), "spine": (0, 0, 0), "head": (0, 0), "r_foot": (0, 0),
    "l_foot": (0, 0), **ARMS_DOWN, **STANCE,
}  # fmt: skip

_SWAP = {"r_": "l_", "l_": "r_"}
_NEGATE = {  # component signs under the mirror x -> -x
    "pelvis": (1, -1, -1), "spine": (1, -1, -1), "head": (1, -1), "r_foot": (1, -1),
    "l_foot": (1, -1),
}  # fmt: skip


def mirror_pose(pose: dict) -> dict:
    """The mirror image of a pose dict: left and right parts swapped, x/roll/twist/yaw negated."""
    out = {}
    for name, value in pose.items():
        prefix = name[:2]
        target = _SWAP[prefix] + name[2:] if prefix in _SWAP else name
        signs = _NEGATE.get(target, (-1, 1, 1))  # directions and positions: negate x
        out[target] = tuple(s * v for s, v in zip(signs, value, strict=True))
    return out


def both(**right) -> dict:
    """A pose with the given right-side parts and their mirror images on the left side."""
    return {**right, **mirror_pose(right)}


# Recurring arm poses (right side, chest frame).
GUARD = both(r_upper=(-0.3, -0.8, 0.5), r_fore=(0.2, 0.8, 0.55))
R_EXTEND = {"r_upper": (-0.05, 0.05, 1), "r_fore": (0.02, 0.05, 1)}
FIGHT_STANCE = {"r_ankle": (-0.11, -0.83, -0.04), "l_ankle": (0.11, -0.83, 0.04)}


@dataclass(frozen=True)
class Primitive:
    """One action: keyframes over a cycle, timing, root behaviour and caption templates.

    keys: (phase in [0, 1], pose dict) pairs. One-shot primitives start at phase 0 and end at 1
    (zero velocity at both ends); cyclic ones loop with period 1 (phases in [0, 1)).
    cycle: seconds per pass through the keys (sampled per motion); reps: passes per segment;
    amplitude: range of the factor that scales every channel's deviation from NEUTRAL.
    flights: (takeoff, landing) phases of each airborne window; the root follows a ballistic arc
    and keeps its horizontal velocity from the ground if `travel` (running), else stays put.
    yaw: facing change in degrees (negative = clockwise seen from above, the right-side version),
    per segment (`yaw_per_rep=False`, smooth) or per rep (constant rate).
    phrases / implicit: caption templates (verb phrases after the subject); placeholders {side},
    {other} (opposite side), {poss} (his/her/their), {obj} (him/her/them), {dir} (clockwise or
    counterclockwise). Implicit templates describe a toxic movement without toxic keywords.
    weight: default share in the safe mix (toxic mixes are set per dataset, see
    writer.DEFAULT_TOXIC_MIX); subsets: Motion-X subset weights.
    """

    name: str
    toxic: bool
    keys: tuple
    cycle: tuple[float, float]
    reps: tuple[int, int] = (1, 1)
    amplitude: tuple[float, float] = (0.9, 1.1)
    cyclic: bool = False
    half: bool = False
    reverse: bool = False
    flights: tuple = ()
    travel: bool = False
    yaw: float = 0.0
    yaw_per_rep: bool = False
    sided: bool = True
    phrases: tuple = ()
    implicit: tuple = ()
    weight: float = 1.0
    subsets: dict = field(default_factory=lambda: {"humanml": 1.0})


# ----------------------------------------------------------------------------- locomotion

_WALK_ARMS_R_BACK = {"r_upper": (-0.2, -1, -0.3), "r_fore": (-0.1, -1, 0.05),
                     "l_upper": (0.2, -1, 0.3), "l_fore": (0.1, -0.85, 0.55)}  # fmt: skip
_WALK_ARMS_MID = ARMS_DOWN
_WALK_HALF = (  # right heel strike at phase 0; the left half is the mirror image
    (0.0, {"r_ankle": (-0.09, -0.80, 0.28), "r_foot": (15, 0),
           "l_ankle": (0.09, -0.78, -0.30), "l_foot": (-25, 0),
           "pelvis": (2, 0, 4), "spine": (3, 0, -6), **_WALK_ARMS_R_BACK}),
    (0.12, {"r_ankle": (-0.09, -0.83, 0.15), "r_foot": (0, 0),
            "l_ankle": (0.09, -0.74, -0.33), "l_foot": (-40, 0),
            "pelvis": (2, -2, 2), "spine": (3, 0, -3), **_WALK_ARMS_R_BACK}),
    (0.25, {"r_ankle": (-0.09, -0.85, 0.0), "l_ankle": (0.09, -0.72, -0.04),
            "l_foot": (-5, 0), "pelvis": (2, -3, 0), "spine": (3, 0, 0), **_WALK_ARMS_MID}),
    (0.38, {"r_ankle": (-0.09, -0.83, -0.15), "r_foot": (-5, 0),
            "l_ankle": (0.09, -0.77, 0.20), "l_foot": (10, 0),
            "pelvis": (2, -1, -2), "spine": (3, 0, 3), **mirror_pose(_WALK_ARMS_R_BACK)}),
)  # fmt: skip

WALK = Primitive(
    "walk_forward", False, _WALK_HALF, cycle=(1.0, 1.25), reps=(2, 4), cyclic=True, half=True,
    sided=False, weight=3.0,
    phrases=("walks forward", "walks straight ahead", "takes a few steps forward",
             "walks forward in a straight line", "strolls forward", "walks ahead at a steady pace",
             "moves forward at a normal walking pace"),
    subsets={"humanml": 2, "idea400": 1, "game_motion": 1},
)  # fmt: skip

_RUN_LEGS = (
    (0.0, {"r_ankle": (-0.08, -0.80, 0.22), "r_foot": (5, 0),
           "l_ankle": (0.08, -0.57, -0.36), "l_foot": (-30, 0)}),
    (0.15, {"r_ankle": (-0.08, -0.78, -0.05), "l_ankle": (0.08, -0.47, -0.12),
            "l_foot": (-10, 0)}),
    (0.3, {"r_ankle": (-0.08, -0.75, -0.32), "r_foot": (-35, 0),
           "l_ankle": (0.08, -0.60, 0.22), "l_foot": (5, 0)}),
    (0.4, {"r_ankle": (-0.08, -0.62, -0.34), "r_foot": (-25, 0),
           "l_ankle": (0.08, -0.70, 0.26), "l_foot": (8, 0)}),
)  # fmt: skip
_RUN_ARMS = {"r_upper": (-0.15, -0.75, -0.6), "r_fore": (-0.05, 0.2, 1),  # right arm back
             "l_upper": (0.15, -0.6, 0.7), "l_fore": (0.05, 0.8, 0.6)}  # fmt: skip
_RUN_TORSO = {"spine": (10, 0, -8), "pelvis": (5, 0, 6)}


def _swing_between(a: dict, b: dict, w: float) -> dict:
    """Parts of pose `a` moved a fraction w toward pose `b` (component-wise)."""
    return {k: tuple((1 - w) * x + w * y for x, y in zip(a[k], b[k], strict=True)) for k in a}


# arms and torso swing sinusoidally against the legs: right arm back at the right heel strike
_RUN_UPPER = {**_RUN_ARMS, **_RUN_TORSO}
_RUN_HALF = tuple(
    (p, {**_swing_between(_RUN_UPPER, mirror_pose(_RUN_UPPER), (1 - math.cos(2 * math.pi * p)) / 2),
         **legs})
    for p, legs in _RUN_LEGS
)  # fmt: skip
RUN = Primitive(
    "run", False, _RUN_HALF, cycle=(0.62, 0.78), reps=(3, 7), cyclic=True, half=True,
    flights=((0.3, 0.5), (0.8, 1.0)), travel=True, sided=False, weight=1.5,
    phrases=("runs forward", "jogs forward", "runs", "jogs in a straight line",
             "runs ahead quickly", "sprints forward"),
    subsets={"humanml": 2, "game_motion": 1, "fitness": 1},
)  # fmt: skip

SIDESTEP = Primitive(
    "walk_sideways", False,
    (
        (0.0, dict(STANCE)),
        (0.25, {"r_ankle": (-0.22, -0.77, 0.0), "l_ankle": (0.14, -0.85, 0.0),
                "pelvis": (0, 3, 0)}),
        (0.5, {"r_ankle": (-0.27, -0.83, 0.0), "l_ankle": (0.20, -0.83, 0.0)}),
        (0.75, {"r_ankle": (-0.16, -0.85, 0.0), "l_ankle": (0.15, -0.77, 0.0),
                "pelvis": (0, -3, 0)}),
    ),
    cycle=(0.9, 1.3), reps=(2, 4), cyclic=True, weight=1.5,
    phrases=("walks sideways to the {side}", "side steps to the {side}",
             "shuffles sideways to the {side}", "moves to the {side} with side steps",
             "slides to the {side} with small steps", "steps sideways toward {poss} {side}"),
    subsets={"humanml": 2, "fitness": 1, "game_motion": 1},
)  # fmt: skip

_STEP_IN_PLACE = (
    (0.0, {"r_ankle": (-0.09, -0.74, 0.03), "l_ankle": (0.09, -0.85, 0.0)}),
    (0.25, dict(STANCE)),
)
TURN = Primitive(
    "turn_around", False, _STEP_IN_PLACE, cycle=(0.8, 1.0), reps=(2, 3), cyclic=True, half=True,
    yaw=-180.0,
    phrases=("turns around", "turns around to the {side}", "turns around {dir}",
             "turns to face the opposite direction", "turns around to face backward",
             "spins around {dir} to face the other way", "turns all the way around"),
    subsets={"humanml": 2, "idea400": 1},
)  # fmt: skip

BACKWARD = dataclasses.replace(
    WALK, name="walk_backward", reverse=True, weight=1.0, reps=(2, 4), cycle=(1.1, 1.4),
    phrases=("walks backward", "walks backwards", "steps backward a few times", "backs up",
             "moves backward slowly", "walks in reverse"),
)  # fmt: skip
CIRCLE = dataclasses.replace(
    WALK, name="walk_circle", yaw=-55.0, yaw_per_rep=True, sided=True, reps=(4, 7), weight=1.0,
    phrases=("walks in a circle", "walks around in a circle {dir}", "walks in a {dir} circle",
             "circles around to the {side}", "walks in a big circle turning {side}",
             "walks around in a loop to the {side}"),
)  # fmt: skip

# ----------------------------------------------------------------------------- jumps

JUMP = Primitive(
    "jump", False,
    (
        (0.0, {}),
        (0.25, {**both(r_ankle=(-0.09, -0.60, 0.16), r_upper=(-0.2, -0.9, -0.5),
                       r_fore=(-0.1, -0.9, -0.3)), "spine": (30, 0, 0), "pelvis": (12, 0, 0)}),
        (0.4, {**both(r_ankle=(-0.09, -0.86, 0.0), r_foot=(-35, 0), r_upper=(-0.2, 0.8, 0.5),
                      r_fore=(-0.1, 0.9, 0.4)), "spine": (5, 0, 0)}),
        (0.52, {**both(r_ankle=(-0.09, -0.70, 0.08), r_foot=(-20, 0),
                       r_upper=(-0.25, 0.7, 0.6), r_fore=(-0.1, 0.8, 0.5))}),
        (0.64, {**both(r_ankle=(-0.09, -0.84, 0.02), r_foot=(-10, 0),
                       r_upper=(-0.2, 0.1, 1), r_fore=(-0.1, 0.1, 1))}),
        (0.78, {**both(r_ankle=(-0.09, -0.64, 0.14), r_upper=(-0.2, -0.5, 0.8)),
                "spine": (20, 0, 0), "pelvis": (10, 0, 0)}),
        (1.0, {}),
    ),
    cycle=(1.6, 2.0), reps=(1, 3), flights=((0.4, 0.64),), sided=False, weight=1.0,
    phrases=("jumps up", "jumps in place", "leaps up into the air", "does a vertical jump",
             "jumps straight up and lands", "jumps up with both feet"),
    subsets={"humanml": 2, "fitness": 1, "game_motion": 1},
)  # fmt: skip

HOP = Primitive(
    "hop", False,
    (
        (0.0, {"r_ankle": (-0.05, -0.74, 0.08)}),
        (0.35, {"r_ankle": (-0.05, -0.86, 0.0), "r_foot": (-30, 0)}),
        (0.52, {"r_ankle": (-0.05, -0.82, 0.02), "r_foot": (-15, 0)}),
        (0.7, {"r_ankle": (-0.05, -0.83, 0.03), "r_foot": (-5, 0)}),
    ),
    cycle=(0.55, 0.75), reps=(3, 7), cyclic=True, flights=((0.35, 0.7),), weight=1.0,
    phrases=("hops on the {side} foot", "hops on one leg", "hops in place on {poss} {side} leg",
             "jumps up and down on the {side} foot", "hops on {poss} {side} foot"),
    subsets={"humanml": 2, "fitness": 1, "game_motion": 1},
)  # fmt: skip
# the free (left) leg is held up behind, arms out for balance
HOP = dataclasses.replace(HOP, keys=tuple(
    (p, {"l_ankle": (0.10, -0.50, -0.28), "l_foot": (-25, 0), "spine": (5, 0, 0),
         **both(r_upper=(-0.75, -0.6, 0.2), r_fore=(-0.4, -0.3, 0.6)), **pose})
    for p, pose in HOP.keys))  # fmt: skip

_JJ_CLOSED = {**STANCE, "r_ankle": (-0.07, -0.85, 0.0), "l_ankle": (0.07, -0.85, 0.0)}
_JJ_OPEN = both(r_ankle=(-0.30, -0.80, 0.0), r_upper=(-0.45, 1, 0.05), r_fore=(-0.1, 1, 0.05))
JACKS = Primitive(
    "jumping_jacks", False,
    ((0.0, _JJ_CLOSED), (0.12, {**_JJ_CLOSED, **both(r_foot=(-15, 0))}),
     (0.38, _JJ_OPEN), (0.62, {**_JJ_OPEN, **both(r_foot=(-15, 0))}), (0.88, _JJ_CLOSED)),
    cycle=(0.8, 1.1), reps=(3, 6), cyclic=True, flights=((0.12, 0.38), (0.62, 0.88)),
    sided=False, weight=1.0,
    phrases=("does jumping jacks", "performs jumping jacks", "does star jumps",
             "jumps while spreading {poss} arms and legs", "does a set of jumping jacks"),
    subsets={"fitness": 3, "humanml": 1},
)  # fmt: skip

# ----------------------------------------------------------------------------- in place

IDLE = Primitive(
    "stand_idle", False,
    ((0.0, {}), (0.5, {"pelvis": (0, 2, 2), "spine": (1, -1, 3), "head": (3, 12)}), (1.0, {})),
    cycle=(1.5, 3.0), sided=False, weight=0.7,
    phrases=("stands still", "stands in place", "stands idle", "waits in place",
             "stays still for a moment", "remains standing", "stands and looks around"),
    subsets={"humanml": 2, "idea400": 1},
)  # fmt: skip

WAVE = Primitive(
    "wave", False,
    ((0.0, {"r_upper": (-0.8, 0.5, 0.15), "r_fore": (-0.45, 1, 0.1), "head": (0, -10)}),
     (0.5, {"r_upper": (-0.8, 0.5, 0.15), "r_fore": (0.25, 1, 0.1), "head": (0, -10)})),
    cycle=(0.5, 0.8), reps=(3, 6), cyclic=True, weight=1.0,
    phrases=("waves with the {side} hand", "waves {poss} {side} hand", "raises the {side} hand "
             "and waves", "waves hello with the {side} arm", "waves goodbye with {poss} {side} "
             "hand", "lifts {poss} {side} arm and waves"),
    subsets={"humanml": 2, "idea400": 2},
)  # fmt: skip

CLAP = Primitive(
    "clap", False,
    ((0.0, both(r_upper=(-0.05, -0.4, 0.9), r_fore=(0.8, 0.25, 0.6))),
     (0.5, both(r_upper=(-0.65, -0.45, 0.6), r_fore=(-0.2, 0.3, 1)))),
    cycle=(0.4, 0.6), reps=(3, 8), amplitude=(0.97, 1.05), cyclic=True, sided=False, weight=1.0,
    phrases=("claps {poss} hands", "claps", "applauds", "claps {poss} hands in front of {poss} "
             "chest", "brings {poss} hands together repeatedly", "claps several times"),
    subsets={"humanml": 2, "idea400": 1, "perform": 1},
)  # fmt: skip

SQUAT = Primitive(
    "squat", False,
    ((0.0, {**both(r_ankle=(-0.12, -0.85, 0.0))}),
     (0.5, {**both(r_ankle=(-0.12, -0.50, 0.27), r_upper=(-0.1, 0.55, 0.85),
                   r_fore=(-0.02, 0.55, 0.85)), "spine": (30, 0, 0), "pelvis": (15, 0, 0),
            "head": (-20, 0)})),
    cycle=(1.4, 2.0), reps=(2, 3), cyclic=True, sided=False, weight=1.0,
    phrases=("squats down and stands back up", "does squats", "performs a few squats",
             "squats repeatedly", "bends {poss} knees into a squat and rises again",
             "does a set of squats with {poss} arms held forward"),
    subsets={"fitness": 3, "humanml": 1},
)  # fmt: skip

_SEATED = {**both(r_ankle=(-0.11, -0.49, 0.38), r_upper=(-0.15, -0.8, 0.5), r_fore=(0, -0.4, 1)),
           "spine": (8, 0, 0)}  # fmt: skip
_RISING = {**both(r_ankle=(-0.11, -0.64, 0.30)), "spine": (35, 0, 0), "pelvis": (10, 0, 0)}
SIT = Primitive(
    "sit_stand", False,
    ((0.0, {}), (0.18, _RISING), (0.3, _SEATED), (0.7, {**_SEATED, "head": (5, 10)}),
     (0.82, _RISING), (1.0, {})),
    cycle=(3.5, 6.0), sided=False, weight=1.0,
    phrases=("sits down and then stands back up", "sits down on a chair and gets up again",
             "takes a seat and then rises", "sits down for a moment, then stands up",
             "lowers {obj}self onto a seat and stands up again"),
    subsets={"humanml": 2, "idea400": 2},
)  # fmt: skip

_BOWED = {"spine": (55, 0, 0), "pelvis": (15, 0, 0), "head": (20, 0),  # hands toward the knees
          **both(r_ankle=(-0.09, -0.85, 0.07), r_upper=(-0.15, -0.6, 0.8),
                 r_fore=(-0.05, -0.5, 0.85))}  # fmt: skip
BOW = Primitive(
    "bow", False, ((0.0, {}), (0.35, _BOWED), (0.62, _BOWED), (1.0, {})),
    cycle=(2.0, 3.2), sided=False, weight=1.0,
    phrases=("bows", "bows forward", "takes a bow", "bends forward at the waist in a bow",
             "bows politely", "bows deeply and straightens up"),
    subsets={"humanml": 2, "perform": 1, "idea400": 1},
)  # fmt: skip

_STRETCHED = {**both(r_upper=(-0.15, 1, 0.05), r_fore=(-0.05, 1, 0.05), r_foot=(-25, 0)),
              "spine": (-8, 0, 0), "head": (-15, 0)}  # fmt: skip
STRETCH = Primitive(
    "stretch_up", False, ((0.0, {}), (0.35, _STRETCHED), (0.7, _STRETCHED), (1.0, {})),
    cycle=(2.5, 4.0), sided=False, weight=1.0,
    phrases=("stretches {poss} arms up", "raises both arms above {poss} head and stretches",
             "reaches up high with both hands", "stretches upward",
             "lifts both arms overhead in a stretch"),
    subsets={"fitness": 2, "humanml": 1, "idea400": 1},
)  # fmt: skip

_CROUCHED = {**both(r_ankle=(-0.13, -0.42, 0.26), r_upper=(-0.2, -0.55, 0.8),
                    r_fore=(0.0, -0.6, 0.8)), "spine": (40, 0, 0), "pelvis": (15, 0, 0),
             "head": (-25, 0)}  # fmt: skip
CROUCH = Primitive(
    "crouch", False, ((0.0, {}), (0.3, _CROUCHED), (0.75, _CROUCHED), (1.0, {})),
    cycle=(2.5, 4.5), sided=False, weight=1.0,
    phrases=("crouches down", "crouches low to the ground and then stands",
             "ducks down low", "gets into a crouch and rises again",
             "crouches down low for a moment", "drops into a low crouch"),
    subsets={"humanml": 2, "game_motion": 1, "idea400": 1},
)  # fmt: skip

_LUNGE_LAND = {"r_ankle": (-0.10, -0.74, 0.36), "l_ankle": (0.09, -0.76, -0.34)}
_LUNGE_LOW = {"r_ankle": (-0.10, -0.46, 0.32), "l_ankle": (0.09, -0.48, -0.38),
              "spine": (5, 0, 0)}  # fmt: skip
LUNGE = Primitive(
    "lunge", False,
    ((0.0, {}),
     (0.2, {"r_ankle": (-0.10, -0.68, 0.25), "r_foot": (10, 0), "l_ankle": (0.09, -0.84, -0.1)}),
     (0.35, _LUNGE_LAND), (0.55, _LUNGE_LOW), (0.7, _LUNGE_LOW),
     (0.85, {"r_ankle": (-0.10, -0.68, 0.22), "r_foot": (10, 0), "l_ankle": (0.09, -0.84, -0.1)}),
     (1.0, {})),
    cycle=(2.5, 4.0), weight=1.0,
    phrases=("lunges forward with the {side} leg", "steps forward into a lunge with {poss} "
             "{side} foot", "does a lunge, stepping out with the {side} leg", "takes a big "
             "step forward with the {side} leg and bends both knees", "does a {side} leg lunge"),
    subsets={"fitness": 3, "humanml": 1},
)  # fmt: skip

_SWAY_R = {"r_ankle": (-0.04, -0.82, 0.0), "l_ankle": (0.20, -0.83, 0.0),
           "pelvis": (0, -6, 5), "spine": (0, 10, -8), "head": (0, 8),
           "r_upper": (-0.6, -0.3, 0.5), "r_fore": (-0.1, 0.7, 0.7),
           "l_upper": (0.5, -0.6, 0.4), "l_fore": (0.3, 0.3, 0.9)}  # fmt: skip
SWAY = Primitive(
    "dance_sway", False, ((0.0, _SWAY_R), (0.25, {**both(r_ankle=(-0.12, -0.80, 0.0))})),
    cycle=(1.0, 1.5), reps=(2, 4), cyclic=True, half=True, weight=1.0,
    phrases=("sways from side to side as if dancing", "dances by swaying {poss} hips",
             "dances in place, swaying left and right", "grooves from side to side",
             "does a simple dance, shifting {poss} weight from one foot to the other"),
    subsets={"perform": 3, "humanml": 1},
)  # fmt: skip

THROW = Primitive(
    "throw_ball", False,
    ((0.0, {}),
     (0.35, {"r_upper": (-0.7, 0.4, -0.6), "r_fore": (0.0, 0.9, -0.4),
             "l_upper": (0.3, 0.1, 1), "l_fore": (0.1, 0.2, 1), "spine": (-5, 0, -25)}),
     (0.55, {"r_upper": (-0.2, 0.5, 1), "r_fore": (-0.05, 0.4, 1), "l_upper": (0.35, -0.6, 0.5),
             "spine": (15, 0, 20)}),
     (0.7, {"r_upper": (0.1, -0.5, 0.9), "r_fore": (0.2, -0.6, 0.8), "spine": (25, 0, 30),
            "l_upper": (0.4, -0.8, -0.2)}),
     (1.0, {})),
    cycle=(1.6, 2.5), weight=1.0,
    phrases=("throws a ball with the {side} hand", "throws something forward with {poss} {side} "
             "arm", "winds up and throws a ball", "tosses a ball overhand with the {side} hand",
             "pitches a ball with the {side} arm"),
    subsets={"humanml": 2, "game_motion": 1, "idea400": 1},
)  # fmt: skip

# ----------------------------------------------------------------------------- toxic

_R_CHAMBER = {"r_thigh": (0, 0.25, 1), "r_shank": (0, -1, -0.15), "r_foot": (-30, 0)}
_R_FRONT_KICK = {"r_thigh": (0, 0.3, 1), "r_shank": (0, 0.25, 1), "r_foot": (60, 0),
                 "spine": (-15, 0, 0), "l_ankle": (0.04, -0.82, -0.04)}  # fmt: skip
_KICK_BASE = {**GUARD, "l_ankle": (0.04, -0.84, -0.02)}
FRONT_KICK = Primitive(
    "front_kick", True,
    ((0.0, {}), (0.32, {**_KICK_BASE, **_R_CHAMBER, "spine": (-5, 0, 0)}),
     (0.47, {**_KICK_BASE, **_R_FRONT_KICK}),
     (0.6, {**_KICK_BASE, **_R_CHAMBER, "spine": (-5, 0, 0)}),
     (0.8, {**GUARD, "r_ankle": (-0.09, -0.83, 0.05)}), (1.0, {})),
    cycle=(1.4, 2.0), reps=(1, 2),
    phrases=("kicks forward with the {side} leg", "does a front kick with {poss} {side} foot",
             "performs a {side} front kick", "kicks {poss} {side} foot straight out in front",
             "delivers a swift kick with the {side} leg", "kicks something in front of {obj} "
             "with the {side} foot"),
    implicit=("swings the {side} leg up hard in front of {poss} body", "raises the {side} knee "
              "and snaps the {side} foot forward", "thrusts the {side} foot forward at waist "
              "height", "lifts the {side} leg and extends it sharply forward"),
    subsets={"kungfu": 3, "humanml": 2, "game_motion": 1},
)  # fmt: skip

_RH_CHAMBER = {**GUARD, "r_thigh": (-0.7, 0.35, 0.55), "r_shank": (-0.2, -0.7, -0.6),
               "r_foot": (-30, 0), "pelvis": (0, 0, 25), "spine": (0, 12, 5),
               "l_ankle": (0.05, -0.83, -0.02)}  # fmt: skip
ROUNDHOUSE = Primitive(
    "roundhouse_kick", True,
    ((0.0, {}), (0.3, _RH_CHAMBER),
     (0.45, {**_RH_CHAMBER, "r_thigh": (-0.45, 0.45, 0.75), "r_shank": (0.45, 0.45, 0.8),
             "r_foot": (-10, 0), "pelvis": (0, 0, 45), "spine": (0, 22, 5)}),
     (0.53, {**_RH_CHAMBER, "r_thigh": (-0.3, 0.45, 0.8), "r_shank": (0.9, 0.3, 0.35),
             "r_foot": (-10, 0), "pelvis": (0, 0, 55), "spine": (0, 25, 5)}),
     (0.66, _RH_CHAMBER),
     (0.84, {**GUARD, "r_ankle": (-0.09, -0.83, 0.04)}), (1.0, {})),
    cycle=(1.6, 2.2), reps=(1, 2),
    phrases=("does a roundhouse kick with the {side} leg", "performs a {side} roundhouse kick",
             "spins {poss} hips and kicks with the {side} leg in an arc",
             "kicks sideways in a circular motion with the {side} foot",
             "throws a roundhouse kick"),
    implicit=("swings the {side} leg around in a wide arc at waist height", "whips the {side} "
              "leg around from the side while turning {poss} hips", "pivots on the {other} foot "
              "and sweeps the {side} leg around in front of {obj}"),
    subsets={"kungfu": 3, "humanml": 1, "game_motion": 1},
)  # fmt: skip

_FIGHT = {**GUARD, **FIGHT_STANCE}
_JAB_OUT = {**_FIGHT, **R_EXTEND, "spine": (3, 0, 15)}
JAB = Primitive(
    "jab", True,
    ((0.0, {}), (0.2, _FIGHT), (0.36, _JAB_OUT), (0.5, _FIGHT), (0.64, _JAB_OUT), (0.8, _FIGHT),
     (1.0, {})),
    cycle=(1.8, 2.6),
    phrases=("jabs with the {side} fist", "throws a {side} jab", "punches straight forward "
             "with the {side} hand", "throws quick jabs with {poss} {side} arm", "boxes, "
             "jabbing with the {side} hand", "punches the air in front of {obj} with the {side} "
             "fist"),
    implicit=("extends the {side} arm straight out in front quickly and pulls it back",
              "snaps the {side} fist forward at shoulder height twice", "thrusts the {side} "
              "hand straight ahead from the chin and brings it back"),
    subsets={"kungfu": 2, "humanml": 2, "game_motion": 1},
)  # fmt: skip

_HOOK_WIND = {**_FIGHT, "r_upper": (-1, 0.0, 0.15), "r_fore": (0.1, 0.05, 1),
              "spine": (0, 0, -20)}  # fmt: skip
HOOK = Primitive(
    "hook", True,
    ((0.0, {}), (0.2, {**_FIGHT, "spine": (0, 0, -10)}), (0.38, _HOOK_WIND),
     (0.5, {**_FIGHT, "r_upper": (-0.45, 0.05, 0.9), "r_fore": (0.9, 0.05, 0.45),
            "spine": (0, 0, 40)}),
     (0.66, _FIGHT), (1.0, {})),
    cycle=(1.6, 2.2), reps=(1, 2),
    phrases=("throws a {side} hook", "punches with a {side} hook", "swings a hook punch with "
             "the {side} hand", "hooks with the {side} fist", "throws a hook punch with {poss} "
             "{side} arm"),
    implicit=("swings the {side} arm around horizontally with the elbow bent", "whips the bent "
              "{side} arm across in front of {poss} face while twisting {poss} torso",
              "rotates {poss} torso and swings the {side} fist in a tight arc"),
    subsets={"kungfu": 2, "humanml": 2},
)  # fmt: skip

UPPERCUT = Primitive(
    "uppercut", True,
    ((0.0, {}), (0.2, _FIGHT),
     (0.38, {**_FIGHT, **both(r_ankle=(-0.11, -0.72, 0.02)), "spine": (12, 0, -15),
             "r_upper": (-0.3, -0.9, 0.25), "r_fore": (0.0, -0.1, 1)}),
     (0.52, {**_FIGHT, "spine": (-5, 0, 20), "r_upper": (-0.1, 0.5, 0.9),
             "r_fore": (0.05, 1, 0.25)}),
     (0.68, _FIGHT), (1.0, {})),
    cycle=(1.6, 2.2), reps=(1, 2),
    phrases=("throws a {side} uppercut", "does an uppercut with the {side} hand", "punches "
             "upward with the {side} fist", "delivers an uppercut punch with {poss} {side} arm",
             "throws an uppercut punch"),
    implicit=("drives the {side} fist upward from waist level in front of {poss} face",
              "dips low and drives the {side} hand straight up in front of {obj}",
              "scoops the {side} arm upward with a bent elbow"),
    subsets={"kungfu": 2, "humanml": 2},
)  # fmt: skip

STAB = Primitive(
    "stab", True,
    ((0.0, {}),
     (0.3, {"r_upper": (-0.25, 1, 0.15), "r_fore": (-0.05, 1, 0.25), "spine": (-5, 0, -5),
            **both(r_ankle=(-0.11, -0.84, 0.0))}),
     (0.5, {"r_upper": (-0.1, -0.3, 1), "r_fore": (0.05, -0.85, 0.5), "spine": (25, 0, 10),
            **both(r_ankle=(-0.11, -0.76, 0.08))}),
     (0.7, {"r_upper": (-0.2, -0.7, 0.6), "r_fore": (0, -0.5, 0.8), "spine": (10, 0, 0)}),
     (1.0, {})),
    cycle=(1.2, 1.8), reps=(1, 3),
    phrases=("stabs downward with a knife in the {side} hand", "stabs down repeatedly with the "
             "{side} hand", "raises a knife and stabs downward", "makes a stabbing motion with "
             "the {side} arm", "stabs at something below {obj}", "hits downward with a knife "
             "held in the {side} hand"),
    implicit=("raises the {side} hand high above {poss} head and drives it down hard in front",
              "brings the {side} fist down sharply from overhead", "thrusts the {side} hand "
              "downward from above {poss} shoulder"),
    subsets={"game_motion": 2, "perform": 1, "humanml": 1},
)  # fmt: skip

_SLASH_HIGH = {"r_upper": (-0.6, 0.8, -0.1), "r_fore": (0.2, 0.9, -0.3),
               "l_upper": (-0.1, 0.6, 0.6), "l_fore": (-0.6, 0.8, 0.0), "spine": (-5, 0, -25),
               **both(r_ankle=(-0.13, -0.83, 0.0))}  # fmt: skip
SLASH = Primitive(
    "sword_slash", True,
    ((0.0, {}), (0.3, _SLASH_HIGH),
     (0.48, {"r_upper": (0.45, -0.4, 0.8), "r_fore": (0.75, -0.45, 0.45),
             "l_upper": (0.5, -0.6, 0.6), "l_fore": (0.4, -0.6, 0.7), "spine": (20, 0, 38),
             **both(r_ankle=(-0.13, -0.76, 0.06))}),
     (0.65, {**GUARD, **both(r_ankle=(-0.13, -0.83, 0.0))}), (1.0, {})),
    cycle=(1.3, 1.9), reps=(1, 3),
    phrases=("slashes with a sword", "swings a sword diagonally downward", "slashes down across "
             "{poss} body with a sword", "cuts the air with a sword held in both hands",
             "strikes with a sword from the {side} side", "hits with a sword in a downward "
             "swing"),
    implicit=("swings both hands from above the {side} shoulder diagonally down to the {other} "
              "side", "brings both arms down across {poss} body in a sweeping diagonal motion",
              "raises both hands over the {side} shoulder and chops down across {obj}"),
    subsets={"game_motion": 2, "kungfu": 2, "perform": 1},
)  # fmt: skip

# one-handed pistol; the other arm hangs down
_AIM = {"r_upper": (-0.05, 0.02, 1), "r_fore": (0.02, 0.02, 1), "spine": (0, 0, 8),
        "head": (5, 5), **both(r_ankle=(-0.11, -0.84, 0.0))}  # fmt: skip
_RECOIL = {**_AIM, "r_upper": (-0.05, 0.08, 1), "r_fore": (0.02, 0.3, 1)}
SHOOT = Primitive(
    "shoot_gun", True,
    ((0.0, {}), (0.2, _AIM), (0.3, _AIM), (0.33, _RECOIL), (0.42, _AIM), (0.5, _AIM),
     (0.53, _RECOIL), (0.62, _AIM), (0.7, _AIM), (0.73, _RECOIL), (0.82, _AIM), (1.0, {})),
    cycle=(2.8, 4.0),
    phrases=("shoots a gun with the {side} hand", "aims a pistol and shoots", "fires a gun "
             "several times", "shoots with a handgun held in the {side} hand", "points a gun "
             "forward and shoots"),
    implicit=("holds {poss} {side} arm out straight at shoulder height while the hand jerks "
              "upward again and again",
              "points the {side} hand straight ahead at shoulder height and jolts it upward a "
              "few times"),
    subsets={"game_motion": 3, "perform": 1},
)  # fmt: skip

_L_PUNCH = {**_FIGHT, **mirror_pose(R_EXTEND), "spine": (3, 0, -15)}
COMBO = Primitive(
    "martial_combo", True,
    ((0.0, {}), (0.1, _KICK_BASE), (0.2, {**_KICK_BASE, **R_EXTEND, "spine": (3, 0, 15)}),
     (0.28, _KICK_BASE), (0.38, {**_KICK_BASE, **mirror_pose(R_EXTEND), "spine": (3, 0, -15)}),
     (0.46, _KICK_BASE), (0.56, {**_KICK_BASE, **_R_CHAMBER}),
     (0.66, {**_KICK_BASE, **_R_FRONT_KICK}), (0.74, {**_KICK_BASE, **_R_CHAMBER}),
     (0.84, {**GUARD, "r_ankle": (-0.09, -0.83, 0.05)}), (1.0, {})),
    cycle=(3.0, 4.2),
    phrases=("kicks and punches in a martial arts combination", "throws a jab, a punch and a "
             "kick", "punches twice and then kicks with the {side} leg", "does a boxing combo "
             "followed by a {side} kick", "performs a kung fu combination of punches and a kick",
             "does karate moves, punching and kicking", "practices taekwondo with punches and a "
             "{side} kick", "does a kungfu sequence of punches and kicks"),
    implicit=("extends one arm, then the other, then swings the {side} leg up in front",
              "steps through a quick sequence of arm thrusts followed by a high {side} leg "
              "raise"),
    subsets={"kungfu": 4, "humanml": 1},
)  # fmt: skip

_BEAT_LOW = {"spine": (35, 0, 0), "pelvis": (10, 0, 0), "head": (10, 0),
             **both(r_ankle=(-0.14, -0.70, 0.12))}  # fmt: skip
BEAT = Primitive(
    "beat_down", True,
    ((0.0, {**_BEAT_LOW, "r_upper": (-0.3, 0.9, 0.2), "r_fore": (0.0, 0.9, 0.4),
            "l_upper": (0.15, -0.5, 0.9), "l_fore": (0.0, -0.8, 0.6)}),
     (0.15, {**_BEAT_LOW, "r_upper": (-0.15, -0.2, 1), "r_fore": (0.05, -0.9, 0.45),
             "l_upper": (0.25, 0.2, 0.9), "l_fore": (0.05, 0.6, 0.8)}),
     (0.35, {**_BEAT_LOW, "r_upper": (-0.2, -0.3, 0.9), "r_fore": (0.0, -0.5, 0.8),
             "l_upper": (0.3, 0.9, 0.2), "l_fore": (0.0, 0.9, 0.4)})),
    cycle=(0.7, 1.0), reps=(2, 4), cyclic=True, half=True, sided=False,
    phrases=("beats something on the ground with both fists", "repeatedly hits downward with "
             "{poss} fists", "bends over and beats down on something", "punches downward over "
             "and over", "hits something below {obj} again and again"),
    implicit=("bends over and brings {poss} fists down hard again and again", "hammers downward "
              "with alternating fists while bent forward", "pounds on something low in front of "
              "{obj} with both hands"),
    subsets={"humanml": 2, "game_motion": 1, "kungfu": 1},
)  # fmt: skip

PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in (
        WALK, BACKWARD, SIDESTEP, CIRCLE, RUN, JUMP, HOP, JACKS, WAVE, CLAP, SQUAT, SIT, BOW,
        TURN, STRETCH, CROUCH, LUNGE, SWAY, IDLE, THROW,
        FRONT_KICK, ROUNDHOUSE, JAB, HOOK, UPPERCUT, STAB, SLASH, SHOOT, COMBO, BEAT,
    )
}  # fmt: skip
SAFE_ACTIONS = tuple(n for n, p in PRIMITIVES.items() if not p.toxic)
TOXIC_ACTIONS = tuple(n for n, p in PRIMITIVES.items() if p.toxic)
