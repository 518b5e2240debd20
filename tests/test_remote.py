"""Shared DVC remote cache: push/pull round trips through a directory remote and an S3 remote.

Each test builds a tiny git+DVC project (2 stages, params.yaml), reproduces it, configures the
default remote with scripts/remote_setup.sh, pushes, clones the git repository into a fresh
folder, pulls, and checks that the clone is complete and that `dvc repro` runs no command.
The S3 remote is moto's server on 127.0.0.1 with fake credentials; nothing else is contacted.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "remote_setup.sh"
VENV_BIN = Path(sys.executable).parent  # stage commands and the script find python/dvc here

FAKE_KEY_ID, FAKE_SECRET = "hmu-test-key", "hmu-test-secret"
BUCKET, REGION = "hmu-cache", "us-east-1"

# Each command appends its stage name to $RUN_LOG, so a test sees exactly which stages ran.
_LOG_RUN = "open(os.environ['RUN_LOG'], 'a').write('{}' + chr(10))"
PREPARE_CMD = (
    'python -c "import os, yaml; '
    "n = yaml.safe_load(open('params.yaml'))['prepare']['n']; "
    "os.makedirs('data', exist_ok=True); "
    "[open(f'data/part{i}.txt', 'w').write(str(i * i)) for i in range(n)]; "
    f'{_LOG_RUN.format("prepare")}"'
)
TRAIN_CMD = (
    'python -c "import json, os, pathlib, yaml; '
    "scale = yaml.safe_load(open('params.yaml'))['train']['scale']; "
    "total = scale * sum(int(p.read_text()) for p in pathlib.Path('data').glob('part*.txt')); "
    "pathlib.Path('model.txt').write_text(str(total)); "
    "json.dump({'total': total}, open('metrics.json', 'w')); "
    f'{_LOG_RUN.format("train")}"'
)
DVC_YAML = {
    "stages": {
        "prepare": {"cmd": PREPARE_CMD, "params": ["prepare.n"], "outs": ["data"]},
        "train": {
            "cmd": TRAIN_CMD,
            "deps": ["data"],
            "params": ["train.scale"],
            "outs": ["model.txt"],
            "metrics": [{"metrics.json": {"cache": False}}],
        },
    }
}
PARAMS = {"prepare": {"n": 4}, "train": {"scale": 3}}
N_PARTS = PARAMS["prepare"]["n"]
CACHED_OUTPUTS = [*(f"data/part{i}.txt" for i in range(N_PARTS)), "model.txt"]
EXPECTED_TOTAL = PARAMS["train"]["scale"] * sum(i * i for i in range(N_PARTS))


def base_env(tmp_path: Path) -> dict[str, str]:
    """Environment for git/dvc subprocesses, isolated from the user's git, DVC and AWS setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DVC_", "GIT_"))}
    config_home = tmp_path / "config"
    for sub in ("dvc-global", "dvc-system", "dvc-site-cache"):
        (config_home / sub).mkdir(parents=True, exist_ok=True)
    (config_home / "dvc-global" / "config").write_text(
        "[core]\n    analytics = false\n    check_update = false\n"
    )
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        DVC_STUDIO_OFFLINE="1",
        DVC_GLOBAL_CONFIG_DIR=str(config_home / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(config_home / "dvc-system"),
        DVC_SITE_CACHE_DIR=str(config_home / "dvc-site-cache"),
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="HMU test",
        GIT_AUTHOR_EMAIL="hmu-test@example.invalid",
        GIT_COMMITTER_NAME="HMU test",
        GIT_COMMITTER_EMAIL="hmu-test@example.invalid",
        # No credentials except those a test passes; no instance metadata lookups; no proxy.
        AWS_CONFIG_FILE=str(config_home / "aws-config-absent"),
        AWS_SHARED_CREDENTIALS_FILE=str(config_home / "aws-credentials-absent"),
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(proxy, None)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command, fail the test with its output if it fails, return its stdout."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return done.stdout


def dvc(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run the venv's DVC CLI in `cwd`."""
    return run([sys.executable, "-m", "dvc", *args], cwd, env)


def make_project(root: Path, env: dict[str, str]) -> None:
    """Create a git+DVC project with a 2-stage pipeline in `root` and reproduce it."""
    root.mkdir()
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    run(["git", "init", "-q"], root, env)
    dvc(["init", "-q"], root, env)
    dvc(["config", "core.analytics", "false"], root, env)
    dvc(["repro"], root, env)
    assert run_log(env) == ["prepare", "train"]
    assert (root / "model.txt").read_text() == str(EXPECTED_TOTAL)


def run_log(env: dict[str, str]) -> list[str]:
    """Stages whose command ran since $RUN_LOG was set (empty if none)."""
    log = Path(env["RUN_LOG"])
    return log.read_text().split() if log.exists() else []


def local_cache_objects(root: Path) -> set[str]:
    """md5 object names ("ab/cdef...") in a project's local cache, .dir manifests included."""
    return object_names(root / ".dvc" / "cache" / "files" / "md5")


def object_name(content: bytes) -> str:
    """Name ("ab/cdef...") under which DVC stores a file with this content (its md5)."""
    digest = hashlib.md5(content).hexdigest()
    return f"{digest[:2]}/{digest[2:]}"


def object_names(md5_dir: Path) -> set[str]:
    """Object names ("ab/cdef...") of the files under an md5 store (its tmp/ folder skipped)."""
    names = {p.relative_to(md5_dir).as_posix() for p in md5_dir.rglob("*") if p.is_file()}
    return {name for name in names if name.count("/") == 1 and len(name.split("/")[0]) == 2}


def push_clone_pull(
    tmp_path: Path,
    env: dict[str, str],
    setup_args: list[str],
    remote_objects: Callable[[], set[str]],
    clone_env: dict[str, str],
    setup_env: dict[str, str] | None = None,
) -> None:
    """Build, push with the remote set up by `setup_args`, clone, pull; check the clone is done.

    `remote_objects` lists the objects on the remote ("ab/cdef..."); `clone_env` is the
    environment in the clone (e.g. credentials the clone cannot get from git); `setup_env` the
    environment of scripts/remote_setup.sh (default `env`).
    """
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    make_project(origin, {**env, "RUN_LOG": str(tmp_path / "origin.log")})
    run(["bash", str(SETUP_SCRIPT), *setup_args], origin, setup_env or env)
    run(["git", "add", "-A"], origin, env)
    run(["git", "commit", "-q", "-m", "pipeline and shared remote"], origin, env)
    assert remote_objects() == set()
    dvc(["push"], origin, env)
    on_remote = remote_objects()
    outputs = {object_name((origin / out).read_bytes()) for out in CACHED_OUTPUTS}
    assert outputs <= on_remote <= local_cache_objects(origin)
    extra = on_remote - outputs  # besides the outputs: only the manifest of the data/ folder
    assert len(extra) == 1 and extra.pop().endswith(".dir"), on_remote - outputs
    assert json.loads(dvc(["status", "--cloud", "--json"], origin, env)) == {}

    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    clone_env = {**clone_env, "RUN_LOG": str(tmp_path / "clone.log")}
    assert not any((clone / out).exists() for out in CACHED_OUTPUTS)
    assert json.loads(dvc(["status", "--json"], clone, clone_env)) != {}  # outputs missing

    dvc(["pull"], clone, clone_env)
    for out in [*CACHED_OUTPUTS, "metrics.json"]:
        assert (clone / out).read_bytes() == (origin / out).read_bytes(), out
    assert json.loads(dvc(["status", "--json"], clone, clone_env)) == {}

    mtimes = {out: (clone / out).stat().st_mtime_ns for out in CACHED_OUTPUTS}
    repro_output = dvc(["repro"], clone, clone_env)
    assert "Data and pipelines are up to date." in repro_output, repro_output
    assert run_log(clone_env) == []  # no stage command ran
    assert {out: (clone / out).stat().st_mtime_ns for out in CACHED_OUTPUTS} == mtimes
    assert run(["git", "status", "--porcelain"], clone, clone_env) == ""  # dvc.lock unchanged


def test_directory_remote_round_trip(tmp_path: Path) -> None:
    """Push to a directory remote, pull into a fresh clone: `dvc repro` is then a no-op."""
    env = base_env(tmp_path)
    remote = tmp_path / "team-cache"

    def remote_objects() -> set[str]:
        return object_names(remote / "files" / "md5")

    # A relative path: the script stores it absolute, so clones elsewhere find the same folder.
    push_clone_pull(tmp_path, env, ["../team-cache"], remote_objects, clone_env=env)
    config = (tmp_path / "clone" / ".dvc" / "config").read_text()
    assert f"url = {remote.resolve()}\n" in config and "remote = shared\n" in config


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """Moto's S3 server on a free loopback port, holding an empty bucket; stopped afterwards."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def s3_client(endpoint: str):
    """A boto3 S3 client for the loopback server with the fake credentials."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY_ID,
        aws_secret_access_key=FAKE_SECRET,
    )


def test_s3_remote_round_trip(tmp_path: Path, s3_endpoint: str) -> None:
    """Push to S3 (moto on loopback), pull into a fresh clone: `dvc repro` is then a no-op.

    The origin stores the credentials in .dvc/config.local (not committed, so the clone
    lacks them); the clone reads them from the environment instead.
    """
    env = base_env(tmp_path)
    creds = {"AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET}
    prefix = "hmu"

    def remote_objects() -> set[str]:
        listing = s3_client(s3_endpoint).list_objects_v2(Bucket=BUCKET)
        keys = [obj["Key"] for obj in listing.get("Contents", [])]
        assert all(key.startswith(f"{prefix}/files/md5/") for key in keys), keys
        return {"/".join(key.split("/")[-2:]) for key in keys}

    setup = [f"s3://{BUCKET}/{prefix}", "-n", "team", "--endpoint", s3_endpoint, "--region", REGION]
    # Only the setup script sees the credentials (and stores them in .dvc/config.local); the
    # origin's push sees no AWS_* variable, the clone (no config.local) gets them from env.
    push_clone_pull(
        tmp_path,
        env,
        [*setup, "--store-credentials"],
        remote_objects,
        clone_env={**env, **creds},
        setup_env={**env, **creds},
    )
    dvc_dir = tmp_path / "origin" / ".dvc"
    assert FAKE_SECRET in (dvc_dir / "config.local").read_text()
    assert FAKE_SECRET not in (dvc_dir / "config").read_text()
    config = (dvc_dir / "config").read_text()
    assert f"endpointurl = {s3_endpoint}\n" in config and "remote = team\n" in config
    assert not (tmp_path / "clone" / ".dvc" / "config.local").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing URL"),
        (["/a", "/b"], "only one URL expected"),
        (["--region", REGION, "/mnt/cache"], "apply to s3:// URLs only"),
        (["gs://bucket/hmu"], "unsupported URL"),
        (["s3://"], "has no bucket name"),
        (["--bogus", "/mnt/cache"], "unknown option '--bogus'"),
        (["--store-credentials", "s3://bucket/hmu"], "needs AWS_ACCESS_KEY_ID"),
    ],
)
def test_setup_script_rejects_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    """The setup script stops with a clear message (exit 2) before touching any config."""
    done = subprocess.run(
        ["bash", str(SETUP_SCRIPT), *args],
        cwd=tmp_path,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr
