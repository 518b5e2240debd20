"""Stick-figure animations of 22-joint motions (GIF, MP4 where ffmpeg is available, PNG frames).

Frames are rasterised directly with PIL (no plotting library in the loop): a fixed perspective
camera looks at the motion's bounding box from the front-left and above, the floor carries a
1 m grid, the root's path is drawn on the floor, and every kinematic chain has its own colour
(right limbs warm, left limbs cool, spine grey).

Command line (also `hmu viz`):
    python -m hmu.viz.anim --dataset humanml3d --action front_kick --out kick.gif
    python -m hmu.viz.anim --dataset humanml3d --id 000021 --out x.mp4 [--fps 20]
    python -m hmu.viz.anim --npy motions.npy --index 2 --out x.bvh [--frame 30 --out f.png]
--action picks the first test motion whose ground-truth labels name that action (the embedded
benchmark); --npy reads joints (T, 22, 3), a batch (B, T, 22, 3) as `hmu generate` writes, or
features (T, 263) / (B, T, 263); .bvh writes a BVH file (hmu.viz.bvh) instead of a picture.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hmu.data.skeleton import KINEMATIC_CHAIN, NUM_JOINTS, check_joints
from hmu.io import atomic_path

# right leg, left leg, spine, right arm, left arm (the order of KINEMATIC_CHAIN)
CHAIN_COLOURS = ((214, 39, 40), (31, 119, 180), (90, 90, 90), (255, 127, 14), (23, 190, 207))
BACKGROUND = (250, 250, 250)
GRID = (205, 205, 205)
PATH = (160, 160, 220)
SUPERSAMPLE = 2  # draw at twice the size, then downsample: cheap antialiasing


class Camera:
    """A fixed pinhole camera aimed at the centre of a motion's bounding box."""

    def __init__(self, joints: np.ndarray, size: int, azimuth=-35.0, elevation=18.0):
        low, high = joints.reshape(-1, 3).min(0), joints.reshape(-1, 3).max(0)
        low[1], high[1] = 0.0, max(high[1], 1.0)
        self.target = (low + high) / 2
        radius = 0.5 * np.linalg.norm(high - low) + 0.25
        az, el = math.radians(azimuth), math.radians(elevation)
        # view from the front (+z) and a little to the side, looking down
        direction = np.array(
            [math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)]
        )
        self.distance = radius / math.sin(math.radians(22))  # the box's sphere fits the view
        self.eye = self.target + direction * self.distance
        forward = -direction
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        self.axes = np.stack([right, up, forward])  # rows: camera x, y, z
        self.focal = size / 2 / math.tan(math.radians(24))
        self.size = size

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> pixel coordinates (..., 2) (y down)."""
        cam = (points - self.eye) @ self.axes.T
        depth = np.maximum(cam[..., 2], 1e-3)
        x = self.focal * cam[..., 0] / depth + self.size / 2
        y = -self.focal * cam[..., 1] / depth + self.size / 2
        return np.stack([x, y], -1)


def _grid_lines(joints: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Floor grid segments (1 m spacing) covering the motion's footprint plus a margin."""
    low = np.floor(joints[..., [0, 2]].min((0, 1)) - 1.0)
    high = np.ceil(joints[..., [0, 2]].max((0, 1)) + 1.0)
    lines = []
    for x in np.arange(low[0], high[0] + 0.5):
        lines.append((np.array([x, 0, low[1]]), np.array([x, 0, high[1]])))
    for z in np.arange(low[1], high[1] + 0.5):
        lines.append((np.array([low[0], 0, z]), np.array([high[0], 0, z])))
    return lines


class _Renderer:
    """Draws frames of one motion with a camera fixed for the whole clip."""

    def __init__(self, joints: np.ndarray, size: int, title: str | None, azimuth=-35.0,
                 elevation=18.0):  # fmt: skip
        self.joints = joints
        self.size = size
        big = size * SUPERSAMPLE
        self.camera = Camera(joints, big, azimuth, elevation)
        self.grid = [self.camera.project(np.stack(line)) for line in _grid_lines(joints)]
        self.path = self.camera.project(joints[:, 0] * [1, 0, 1])
        self.title = title
        try:
            self.font = ImageFont.load_default(size=12 * SUPERSAMPLE)
        except TypeError:  # Pillow < 10.1
            self.font = ImageFont.load_default()

    def frame(self, index: int) -> Image.Image:
        big = self.size * SUPERSAMPLE
        image = Image.new("RGB", (big, big), BACKGROUND)
        draw = ImageDraw.Draw(image)
        for line in self.grid:
            draw.line([tuple(p) for p in line], fill=GRID, width=SUPERSAMPLE)
        draw.line([tuple(p) for p in self.path[: index + 1]], fill=PATH, width=2 * SUPERSAMPLE)
        pixels = self.camera.project(self.joints[index])
        # farther chains first so nearer limbs are drawn over them
        depth = [(self.joints[index, list(c)] - self.camera.eye) @ self.camera.axes[2]
                 for c in KINEMATIC_CHAIN]  # fmt: skip
        for k in np.argsort([-d.mean() for d in depth]):
            chain = KINEMATIC_CHAIN[k]
            draw.line(
                [tuple(pixels[j]) for j in chain],
                fill=CHAIN_COLOURS[k],
                width=4 * SUPERSAMPLE,
                joint="curve",
            )
        radius = 3 * SUPERSAMPLE
        for x, y in pixels:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(40, 40, 40))
        head = pixels[15]
        draw.ellipse(
            [
                head[0] - 3 * radius,
                head[1] - 3 * radius,
                head[0] + 3 * radius,
                head[1] + 3 * radius,
            ],
            outline=(90, 90, 90),
            width=SUPERSAMPLE,
        )
        text = f"{self.title}  " if self.title else ""
        draw.text(
            (8 * SUPERSAMPLE, 6 * SUPERSAMPLE),
            f"{text}frame {index}",
            fill=(0, 0, 0),
            font=self.font,
        )
        return image.resize((self.size, self.size), Image.LANCZOS)


def render_frame(joints, index: int, path, size: int = 480, title: str | None = None) -> Path:
    """Write frame `index` of a motion (T, 22, 3) as a PNG image."""
    joints = check_joints(joints)
    if not 0 <= index < len(joints):
        raise ValueError(f"frame {index} out of range for a motion of {len(joints)} frames")
    path = Path(path)
    with atomic_path(path) as tmp:
        _Renderer(joints, size, title).frame(index).save(tmp, format="PNG")
    return path


def render_sheet(joints, path, frames: int = 8, columns: int = 4, size: int = 240,
                 title: str | None = None, azimuth: float = -35.0) -> Path:  # fmt: skip
    """Write `frames` evenly spaced frames of a motion side by side as one PNG (a contact sheet).

    `azimuth` (degrees) turns the camera about the vertical: 0 looks at the motion from +z
    (the front of a motion that faces +z), 90 from +x (the body's left side).
    """
    joints = check_joints(joints)
    renderer = _Renderer(joints, size, title, azimuth)
    indices = np.linspace(0, len(joints) - 1, frames).round().astype(int)
    rows = math.ceil(frames / columns)
    sheet = Image.new("RGB", (columns * size, rows * size), BACKGROUND)
    for k, index in enumerate(indices):
        sheet.paste(renderer.frame(int(index)), ((k % columns) * size, (k // columns) * size))
    path = Path(path)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path


def render_motion(joints, path, fps: int = 20, title: str | None = None, size: int = 480) -> Path:
    """Write a stick-figure animation of joints (T, 22, 3), y-up metres, to GIF or MP4.

    The format follows the suffix of `path` (.gif, .mp4). MP4 needs imageio-ffmpeg; without it a
    RuntimeError says so (GIF always works).
    """
    joints = check_joints(joints)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"{path}: unsupported animation format {suffix!r} (use .gif or .mp4)")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    renderer = _Renderer(joints, size, title)
    frames = [renderer.frame(i) for i in range(len(joints))]
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            frames[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=frames[1:],
                duration=round(1000 / fps),
                loop=0,
            )
        else:
            _write_mp4(tmp, frames, fps)
    return path


def _write_mp4(path: Path, frames: list[Image.Image], fps: int) -> None:
    try:
        import imageio_ffmpeg
    except ImportError as err:
        raise RuntimeError("MP4 output needs imageio-ffmpeg; write a .gif instead") from err
    writer = imageio_ffmpeg.write_frames(
        str(path),
        frames[0].size,
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=16,
        output_params=["-f", "mp4"],  # the temporary name has no .mp4
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(np.asarray(frame.convert("RGB"))).tobytes())
    writer.close()


# ----------------------------------------------------------------------------- command line


def _joints_from(array: np.ndarray) -> np.ndarray:
    """Joints (T, 22, 3) of a joints array or of HumanML3D features (T, 263)."""
    if array.ndim == 2 and array.shape[1] == 263:
        from hmu.data.humanml import recover_from_ric

        array = recover_from_ric(array)
    return check_joints(array)


def load_npy(path, index: int | None = None) -> tuple[np.ndarray, str]:
    """Joints (T, 22, 3) and a title from a .npy of one motion or of a batch.

    One motion: joints (T, 22, 3) or features (T, 263). A batch, (B, T, 22, 3) or (B, T, 263),
    needs `index` unless B == 1; the `<stem>.json` that `hmu generate` writes beside it trims the
    motion to its length and gives its prompt as the title.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--npy {path}: no such file")
    array = np.load(path)
    single = array.ndim == 3 and array.shape[1:] == (NUM_JOINTS, 3)
    single = single or (array.ndim == 2 and array.shape[1] == 263)
    if single:
        if index not in (None, 0):
            raise ValueError(f"--index {index}: {path} holds one motion")
        return _joints_from(array), path.name
    if array.ndim not in (3, 4) or array.shape[-1] not in (3, 263):
        raise ValueError(
            f"--npy {path}: expected (T, 22, 3), (B, T, 22, 3), (T, 263) or "
            f"(B, T, 263), got shape {array.shape}"
        )
    if index is None and len(array) != 1:
        raise ValueError(
            f"--npy {path} holds {len(array)} motions: pick one with --index 0..{len(array) - 1}"
        )
    index = 0 if index is None else index
    if not 0 <= index < len(array):
        raise ValueError(
            f"--index {index}: {path} holds {len(array)} motions (0..{len(array) - 1})"
        )
    motion, title = array[index], f"{path.name}[{index}]"
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        info = json.loads(sidecar.read_text())
        if len(info.get("lengths", [])) == len(array):
            motion = motion[: max(int(info["lengths"][index]), 1)]
        if len(info.get("texts", [])) == len(array):
            title = info["texts"][index]
    return _joints_from(motion), title


def _motion_sources(dataset: str, root: Path) -> list[tuple[str, Path]]:
    """Where a dataset's motions can be read, in order of preference."""
    folder = root / dataset
    return [
        ("new_joints", folder / "new_joints"),  # HumanML3D layout: one joints file per id
        ("groundtruth", folder / "_groundtruth"),  # embedded Motion-X: a joints store
        ("processed", root.parent / "processed" / dataset / "motions"),  # features store
    ]


def _store(kind: str, path: Path):
    from hmu.data.store import TABLE_NAME, MotionStore

    array = "joints.npy" if kind == "groundtruth" else "features.npy"
    if not (path / TABLE_NAME).is_file() or not (path / array).is_file():
        return None
    return MotionStore.open(path, array_name=array)


def load_dataset_motion(dataset: str, motion_id: str, root="data/raw") -> np.ndarray:
    """Joints (T, 22, 3) of a dataset motion: <root>/<ds>/new_joints/<id>.npy (HumanML3D layout),
    the ground-truth joint store <root>/<ds>/_groundtruth (embedded Motion-X), or the processed
    features store data/processed/<ds>/motions beside <root> (any dataset after `dvc repro`).
    An unknown id raises ValueError naming two ids that exist."""
    root = Path(root)
    known: list[str] = []
    for kind, path in _motion_sources(dataset, root):
        if kind == "new_joints":
            if (path / f"{motion_id}.npy").is_file():
                return check_joints(np.load(path / f"{motion_id}.npy"))
            known = known or sorted(p.stem for p in path.glob("*.npy"))
            continue
        store = _store(kind, path)
        if store is None:
            continue
        if motion_id in set(store.ids):
            return _joints_from(store.get_id(motion_id))
        known = known or sorted(store.ids)
    if not known:
        raise FileNotFoundError(
            f"no motions of {dataset} under {root / dataset} (new_joints/, "
            f"_groundtruth/) or {root.parent / 'processed' / dataset}: run "
            f"`dvc repro` or point --root at the dataset's parent folder"
        )
    raise ValueError(f"no motion {motion_id} in {dataset}; e.g. {', '.join(known[:2])}")


def load_motion(dataset: str | None = None, motion_id: str | None = None, npy=None,
                root: str | Path = "data/raw", index: int | None = None) -> np.ndarray:  # fmt: skip
    """Joints (T, 22, 3) of a dataset motion (`load_dataset_motion`) or of a .npy (`load_npy`)."""
    if npy is not None:
        return load_npy(npy, index)[0]
    if dataset is None or motion_id is None:
        raise ValueError("give either --npy or --dataset with --id or --action")
    return load_dataset_motion(dataset, motion_id, root)


def find_action(dataset: str, action: str, root="data/raw") -> str:
    """The first test motion (test.txt order) of a dataset whose ground-truth labels name
    `action`, preferring motions that do nothing else; ValueError when there is none."""
    from hmu.data.groundtruth import groundtruth_file, load_groundtruth

    folder = Path(root) / dataset
    labels = load_groundtruth(folder)
    if labels is None:
        raise FileNotFoundError(
            f"--action needs ground-truth labels ({groundtruth_file(folder)}, "
            "written by the embedded benchmark's synth stage); use --id"
        )
    split = folder / "test.txt"
    ids = split.read_text().split() if split.is_file() else list(labels.index)
    ids = [i for i in ids if i in labels.index] or list(labels.index)
    actions = labels.loc[ids, "actions"]
    for wanted in (lambda a: list(a) == [action], lambda a: action in a):
        hits = [i for i, a in zip(ids, actions, strict=True) if wanted(a)]
        if hits:
            return hits[0]
    names = sorted({a for acts in actions for a in acts})
    raise ValueError(f"no test motion of {dataset} does {action!r}; actions: {', '.join(names)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The animation command's arguments (shared by `python -m hmu.viz.anim` and `hmu viz`)."""
    parser.add_argument("--dataset", help="dataset folder name under --root, e.g. humanml3d")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--id", dest="motion_id", help="motion id, e.g. 000012 or kungfu/000012")
    which.add_argument(
        "--action",
        help="the first test motion doing this action (ground-truth "
        "labels of the embedded benchmark), e.g. front_kick",
    )
    which.add_argument(
        "--npy",
        help="joints (T, 22, 3) or (B, T, 22, 3), or features "
        "(T, 263) or (B, T, 263), e.g. what `hmu generate --out x.npy` writes",
    )
    parser.add_argument("--index", type=int, help="which motion of a --npy batch (from 0)")
    parser.add_argument("--root", default="data/raw", help="folder holding the datasets")
    parser.add_argument(
        "--out", required=True, help="output .gif, .mp4, .bvh (or .png with --frame)"
    )
    parser.add_argument("--fps", type=int, default=20)
    parser.add_argument("--frame", type=int, help="write this single frame as PNG instead")
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--title", help="text drawn in the corner (default: the id or file)")


def run(args: argparse.Namespace) -> str:
    """Render what the parsed arguments ask for; returns a one-line summary."""
    out = Path(args.out)
    if args.npy is not None:
        joints, title = load_npy(args.npy, args.index)
    else:
        if args.dataset is None or (args.motion_id is None and args.action is None):
            raise ValueError("give --npy, or --dataset with --id or --action")
        motion_id = args.motion_id or find_action(args.dataset, args.action, args.root)
        joints = load_dataset_motion(args.dataset, motion_id, args.root)
        title = motion_id if args.action is None else f"{motion_id} ({args.action})"
    title = args.title or title
    if out.suffix.lower() == ".bvh":
        if args.frame is not None:
            raise ValueError("--frame writes a PNG; drop it for --out .bvh")
        from hmu.viz.bvh import write_bvh

        write_bvh(out, joints, fps=args.fps)
    elif args.frame is not None:
        render_frame(joints, args.frame, out, args.size, title)
        return f"wrote {out} (frame {args.frame} of {title})"
    else:
        render_motion(joints, out, args.fps, title, args.size)
    return f"wrote {out} ({title}, {len(joints)} frames)"


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Command line entry point; bad input gives one error line and exit code 2."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Render a motion as a stick-figure animation or a BVH file."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        print(run(args))
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m hmu.viz.anim"))
