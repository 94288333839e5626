"""docs/ARCHITECTURE.md's "Safe opens" names every function that opens a file under the home, and the manifest
key that vouches for a checkpoint; each name it gives exists."""

from __future__ import annotations

import re
from pathlib import Path

from engine import home as home_module
from engine import runs, safe_files

DOC = (Path(__file__).resolve().parent.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")


def _safe_opens() -> str:
    start = DOC.index("Safe opens (`engine/safe_files.py`)")
    return DOC[start:DOC.index("Telemetry:", start)]


def test_the_safe_opens_paragraph_names_every_open_and_the_checkpoint_key():
    text = _safe_opens()
    for name in ("open_beneath", "open_dir", "write_private", "open_file", "read_bytes", "read_text", "check_tree",
                 "root_of"):
        assert callable(getattr(safe_files, name)) and name in text, name
    assert "runs.open_append" in text and callable(runs.open_append)
    assert f"`{runs.CHECKPOINT_HASHES}`" in text and "verify_checkpoint" in text and "mark_complete" in text


def test_every_function_the_block_lists_exists():
    block = [line for line in _safe_opens().splitlines() if line.startswith("    ")]
    names = {m.group(1) for line in block for m in re.finditer(r"([A-Za-z_.]+)\(", line.split("#")[0])}
    assert names
    for name in names:
        owner, _, attr = name.rpartition(".")
        target = {"": safe_files, "Home": home_module.Home, "engine.runs": runs}[owner]
        assert callable(getattr(target, attr)), name
