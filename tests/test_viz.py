"""Stick-figure rendering: files, frame counts, colours, camera, command line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hmu.data import skeleton as S
from hmu.viz import anim


def _motion(frames=12):
    """A T-pose standing on the floor and sliding along +z."""
    rest = S.forward_kinematics(np.zeros((frames, 22, 3)), np.zeros((frames, 3)))
    rest[..., 1] -= rest[..., 1].min()
    rest[..., 2] += np.linspace(0, 0.5, frames)[:, None]
    return rest


def _has_colour(image, rgb, tol=40):
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    return (np.abs(pixels - rgb).sum(1) < tol).any()


def test_gif_has_every_frame(tmp_path):
    joints = _motion(9)
    path = anim.render_motion(joints, tmp_path / "m.gif", fps=20, title="t", size=160)
    with Image.open(path) as gif:
        assert gif.size == (160, 160) and gif.n_frames == 9
        assert gif.info["duration"] == 50


def test_frame_png_and_sheet(tmp_path):
    joints = _motion()
    png = anim.render_frame(joints, 3, tmp_path / "f.png", size=200)
    with Image.open(png) as image:
        assert image.size == (200, 200)
        for colour in anim.CHAIN_COLOURS:  # every limb chain is drawn in its colour
            assert _has_colour(image, colour)
    sheet = anim.render_sheet(joints, tmp_path / "s.png", frames=6, columns=3, size=100)
    with Image.open(sheet) as image:
        assert image.size == (300, 200)


def test_camera_projects_the_figure_inside_the_image():
    joints = _motion()
    camera = anim.Camera(joints, 200)
    pixels = camera.project(joints)
    assert (pixels > 0).all() and (pixels < 200).all()
    head, feet = camera.project(joints[0, 15]), camera.project(joints[0, [10, 11]])
    assert (head[1] < feet[:, 1]).all()  # up is up on screen
    left, right = camera.project(joints[0, 20]), camera.project(joints[0, 21])
    assert left[0] > right[0]  # seen from the front, the body's left is on the screen's right


def test_mp4_when_ffmpeg_is_available(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    path = anim.render_motion(_motion(8), tmp_path / "m.mp4", size=96)
    assert path.stat().st_size > 0


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="22, 3"):
        anim.render_motion(np.zeros((5, 21, 3)), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="NaN"):
        anim.render_motion(np.full((5, 22, 3), np.nan), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="format"):
        anim.render_motion(_motion(), tmp_path / "x.avi")
    with pytest.raises(ValueError, match="out of range"):
        anim.render_frame(_motion(4), 9, tmp_path / "x.png")


def test_command_line(tmp_path, capsys):
    from hmu.data.humanml import joints_to_features

    joints = _motion(20)
    np.save(tmp_path / "j.npy", joints.astype(np.float32))
    np.save(tmp_path / "f.npy", joints_to_features(joints))
    folder = tmp_path / "raw" / "humanml3d" / "new_joints"
    folder.mkdir(parents=True)
    np.save(folder / "000012.npy", joints.astype(np.float32))

    anim.main(["--npy", str(tmp_path / "j.npy"), "--out", str(tmp_path / "a.gif"),
               "--size", "64"])  # fmt: skip
    anim.main(["--npy", str(tmp_path / "f.npy"), "--out", str(tmp_path / "b.png"),
               "--frame", "2", "--size", "64"])  # fmt: skip
    anim.main(["--dataset", "humanml3d", "--id", "000012", "--root", str(tmp_path / "raw"),
               "--out", str(tmp_path / "c.gif"), "--size", "64"])  # fmt: skip
    assert "wrote" in capsys.readouterr().out
    for name in ("a.gif", "b.png", "c.gif"):
        assert (tmp_path / name).stat().st_size > 0
    with pytest.raises(SystemExit):  # one error line naming ids that exist, no traceback
        anim.main(["--dataset", "humanml3d", "--id", "000013", "--root", str(tmp_path / "raw"),
                   "--out", str(tmp_path / "d.gif")])  # fmt: skip
    assert "no motion 000013 in humanml3d; e.g. 000012" in capsys.readouterr().err


def test_npy_batch_needs_an_index_and_uses_the_sidecar(tmp_path):
    batch = np.stack([_motion(20), _motion(20) + 1.0]).astype(np.float32)  # (2, 20, 22, 3)
    np.save(tmp_path / "m.npy", batch)
    (tmp_path / "m.json").write_text('{"texts": ["a", "b kicks"], "lengths": [20, 12]}')
    joints, title = anim.load_npy(tmp_path / "m.npy", 1)
    assert title == "b kicks" and np.array_equal(joints, batch[1, :12])
    with pytest.raises(ValueError, match="--index 0..1"):
        anim.load_npy(tmp_path / "m.npy")
    with pytest.raises(ValueError, match="holds 2 motions"):
        anim.load_npy(tmp_path / "m.npy", 2)
    with pytest.raises(ValueError, match="22, 3"):
        np.save(tmp_path / "bad.npy", np.zeros((2, 5, 21, 3)))
        anim.load_npy(tmp_path / "bad.npy", 0)


def test_command_line_writes_bvh(tmp_path):
    np.save(tmp_path / "m.npy", _motion(10)[None].astype(np.float32))  # a batch of one
    anim.main(["--npy", str(tmp_path / "m.npy"), "--out", str(tmp_path / "m.bvh")])
    text = (tmp_path / "m.bvh").read_text()
    assert text.startswith("HIERARCHY") and "Frames: 10" in text
    assert text.count("JOINT ") == 21  # the root plus 21 joints
