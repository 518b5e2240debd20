"""The repository's DVC cache setup survives in-place damage: truncating a checked-out output
must not reach the cache, `dvc status` must report the output changed, and `dvc checkout`
must restore its bytes. Runs in a tiny DVC repository that uses this repository's .dvc/config."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import yaml
from test_remote import base_env, dvc, run

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTENT = "".join(f"line {i}\n" for i in range(200))
MAKE_CMD = f"python -c \"open('out.txt', 'w').write({CONTENT!r})\""


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _tiny_repo(root: Path, env: dict[str, str]) -> None:
    """git + DVC repository with one stage writing out.txt, after `dvc repro`."""
    run(["git", "init", "-q"], root, env)
    dvc(["init", "-q"], root, env)
    shutil.copy(REPO_ROOT / ".dvc" / "config", root / ".dvc" / "config")
    stage = {"cmd": MAKE_CMD, "outs": ["out.txt"]}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"make": stage}}))
    dvc(["repro", "-q"], root, env)


def test_in_place_damage_is_seen_and_repaired(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    env = base_env(tmp_path)
    _tiny_repo(root, env)
    out = root / "out.txt"
    expected = _md5(out)
    with out.open("r+b") as handle:  # in place: the same inode, as `truncate` does
        handle.truncate(10)
    status = dvc(["status"], root, env)
    assert "make" in status and "modified:" in status and "out.txt" in status, status
    dvc(["checkout", "--force"], root, env)
    assert _md5(out) == expected and out.read_text() == CONTENT
    assert "up to date" in dvc(["status"], root, env)
