"""README examples: every command in a bash code block either runs here (against a tiny
fixture) or says what it needs (`# needs: dvc repro`, real data, a GPU, ...)."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDS = re.compile(r"#\s*needs:\s*\S")


def readme_commands(text: str) -> list[str]:
    """Command lines of the README's bash code blocks (comment-only lines left out)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _command(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _hmu_methods(tmp_path: Path) -> str:
    """`hmu methods` on a fixture with one produced method."""
    method = tmp_path / "models" / "toy" / "momask" / "lcr" / "method.json"
    method.parent.mkdir(parents=True)
    method.write_text(json.dumps({"method": "lcr"}))
    out = subprocess.run([sys.executable, "-m", "hmu.cli", "methods"], cwd=tmp_path,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout


COVERED = {"hmu methods": _hmu_methods}  # command -> the run that checks it


def test_every_readme_command_runs_here_or_says_what_it_needs():
    lines = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(lines) > 10
    unmarked = [line for line in lines if not NEEDS.search(line) and _command(line) not in COVERED]
    assert not unmarked, f"README commands neither tested nor marked '# needs: ...': {unmarked}"


def test_covered_readme_commands_run(tmp_path):
    lines = {_command(line) for line in readme_commands((ROOT / "README.md").read_text())}
    assert set(COVERED) <= lines  # a covered command that left the README: drop it here
    assert _hmu_methods(tmp_path).strip() == "toy momask: lcr"


def test_the_parser_sees_markers_and_skips_other_blocks():
    text = "```bash\n# a comment\nfoo   # needs: a GPU\nbar\n```\n```mermaid\nx --> y\n```\n"
    assert readme_commands(text) == ["foo   # needs: a GPU", "bar"]
