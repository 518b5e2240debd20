"""Bad input ends a command with one line naming the file and the fix, and exit code 2.

Readers here turn parser errors (JSON, safetensors) into ValueErrors that name the file and how
to repair it; `exits_on_bad_input` wraps a stage's or the CLI's main so that such errors print
as one line instead of a traceback. Set HMU_DEBUG=1 to get the traceback anyway.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

RESTORE = "restore it with `dvc checkout` or rerun the stage that writes it"
BAD_INPUT = (ValueError, KeyError, FileNotFoundError, IsADirectoryError, yaml.YAMLError)


def one_line(err: BaseException) -> str:
    """The message of `err` on one line (a KeyError's message without its quotes)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    parts = [part.strip() for part in str(text).splitlines() if part.strip()]
    return "; ".join(parts).replace(":;", ":") or type(err).__name__


def read_json(path: str | Path, fix: str = RESTORE) -> Any:
    """The parsed JSON file `path`; ValueError naming the file, the line and `fix` otherwise."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as err:
        where = f"line {err.lineno}, column {err.colno}: {err.msg}"
        raise ValueError(f"{path}: not valid JSON ({where}); {fix}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); {fix}") from None


def read_safetensors(path: str | Path, fix: str = RESTORE) -> dict:
    """The tensors of a safetensors file; ValueError naming the file and `fix` when it is
    truncated or not a safetensors file at all."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err}); {fix}") from None


def read_text_lines(path: str | Path, what: str) -> list[str]:
    """The lines of a UTF-8 text file; ValueError naming `what`, the file and the line of the
    first byte that is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{what} {path}: line {line} is not UTF-8 text; save it as UTF-8"
        ) from None


def exits_on_bad_input(main: Callable, prog: str | None = None) -> Callable:
    """`main` that prints bad input (BAD_INPUT errors) as '<prog>: error: <one line>' on stderr
    and exits with code 2; other exceptions (bugs) keep their traceback."""
    name = prog or Path(sys.argv[0]).stem

    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except BAD_INPUT as err:
            if os.environ.get("HMU_DEBUG"):
                raise
            print(f"{name}: error: {one_line(err)}", file=sys.stderr)
            sys.exit(2)

    return wrapped
