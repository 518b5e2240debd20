"""The embedded synthetic benchmark: procedural text-motion datasets in upstream layouts.

- `actions`: the action primitives (keyframed poses, timing, caption templates) as data;
- `motion`: plans -> joint rotations -> positions (`generate_action`, `plan_motion`,
  `render_plan`);
- `captions`: HumanML3D-style captions, explicit and implicit, and their mirror images;
- `writer`: whole datasets in the HumanML3D or Motion-X layout (`generate_dataset`).
"""

from hmu.data.synth.actions import PRIMITIVES, SAFE_ACTIONS, TOXIC_ACTIONS, Primitive
from hmu.data.synth.captions import mirror_caption, motion_captions
from hmu.data.synth.motion import (
    Motion,
    MotionPlan,
    SegmentPlan,
    generate_action,
    plan_motion,
    render_plan,
)
from hmu.data.synth.writer import (
    SynthConfig,
    build_motion,
    generate_dataset,
    mirror_rotations,
    motion_labels,
    sample_actions,
)

__all__ = [
    "PRIMITIVES", "SAFE_ACTIONS", "TOXIC_ACTIONS", "Primitive", "mirror_caption",
    "motion_captions", "Motion", "MotionPlan", "SegmentPlan", "generate_action", "plan_motion",
    "render_plan", "SynthConfig", "build_motion", "generate_dataset", "mirror_rotations",
    "motion_labels", "sample_actions",
]  # fmt: skip
