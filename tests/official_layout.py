"""The upstream checkpoint key layouts (tests/data/official_keys.json), kept in the repository so
that every clone runs the checkpoint-loading tests; a missing fixture is an error, not a skip."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

OFFICIAL_KEYS = Path(__file__).parent / "data" / "official_keys.json"


@cache
def _all_layouts() -> dict:
    return json.loads(OFFICIAL_KEYS.read_text(encoding="utf-8"))


def official_layout(name: str) -> dict:
    """The entry `name` of official_keys.json: {"checkpoint_key", "ctor", "keys": {key: shape}}."""
    return _all_layouts()[name]
