"""Every stage depends on all the code it runs: the import closure of its script inside hmu/
(function-level imports included) must be covered by the stage's deps in dvc.yaml, where a
directory dep covers the files under it. Otherwise an edit to that code would not rerun it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hmu"


def _module_file(name: str) -> Path | None:
    """The file of module `name` (hmu.a.b -> hmu/a/b.py or hmu/a/b/__init__.py), if any."""
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_modules(path: Path) -> set[str]:
    """Names of hmu modules imported anywhere in `path`, with their parent packages; for
    `from hmu.a import b`, also hmu.a.b when b is a module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    ours = {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}
    return {".".join(n.split(".")[:i]) for n in ours for i in range(1, n.count(".") + 2)}


def import_closure(script: Path) -> set[Path]:
    """The hmu files that running `script` may import, relative to the repository root."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in _imported_modules(todo.pop()):
            file = _module_file(name)
            if file is not None and file not in seen:
                seen.add(file)
                todo.append(file)
    return {file.relative_to(ROOT) for file in seen}


PIPELINES = ("dvc.yaml", "studies/dvc.yaml")  # the main pipeline and the studies (wdir: ..)


def stage_code() -> dict[str, tuple[Path, list[str]]]:
    """'<dvc.yaml>:<stage>' -> (its script, its deps) for every stage of PIPELINES run by a
    stage script; paths relative to the repository root (the studies' stages run there)."""
    out = {}
    for pipeline in PIPELINES:
        stages = yaml.safe_load((ROOT / pipeline).read_text(encoding="utf-8"))["stages"]
        for name, stage in stages.items():
            body = stage.get("do", stage)
            match = re.search(r"python (stages/\S+\.py)", body["cmd"])
            if match:
                deps = [str(d) for d in body.get("deps", [])]
                out[f"{pipeline}:{name}"] = (Path(match.group(1)), deps)
    return out


def _covered(file: Path, deps: list[str]) -> bool:
    return any(file == Path(dep) or Path(dep) in file.parents for dep in deps)


def test_the_closure_follows_function_level_imports():
    closure = import_closure(Path("stages/evaluate.py"))
    assert Path("hmu/unlearn/lcr.py") in closure  # imported inside load_generator
    assert Path("hmu/__init__.py") in closure and Path("hmu/eval/run.py") in closure


@pytest.mark.parametrize("stage", sorted(stage_code()))
def test_stage_deps_cover_its_import_closure(stage):
    script, deps = stage_code()[stage]
    assert str(script) in deps, f"{stage}: {script} is not a dep"
    missing = sorted(str(f) for f in import_closure(ROOT / script) if not _covered(f, deps))
    assert not missing, f"stage {stage} runs code it does not depend on: {missing}"
