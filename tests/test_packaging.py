"""A non-editable install (a wheel) carries the built-in profiles as package data (issue 11: a wheel
install had none, because profiles/ was found by a path outside any package). In the repo they live at the
top, in profiles/ (issue 27 item 6); pyproject maps that folder to the package data engine/builtin_profiles/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_the_builtin_profiles(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("engine", "tui", "profiles"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=ignore)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(src),
                    "-w", str(wheels)], check=True, env=env, cwd=tmp_path, capture_output=True)
    (wheel,) = wheels.glob("tuneloop-*.whl")
    target = tmp_path / "target"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, env=env, cwd=tmp_path, capture_output=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = ("import json, engine, engine.profiles as p; "
            "from engine.train import regression, rehearsal; "
            "assert len(regression.pool()) >= 96 and len(rehearsal.prompts()) >= 64; "  # the training data files too
            "print(json.dumps([engine.__file__, [x.name for x in p.list_profiles()]]))")
    run_env = {**os.environ, "PYTHONPATH": str(target), "TUNELOOP_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], env=run_env, cwd=outside, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    where, names = json.loads(out.stdout)
    assert where.startswith(str(target))  # the installed copy, not the repo
    assert {"demo", "qwen2.5-0.5b-instruct", "qwen2.5-7b-instruct", "llama-3.1-8b-instruct"} <= set(names)
    cli = subprocess.run([sys.executable, "-m", "engine", "profiles"], env={**run_env, "COLUMNS": "200"},
                         cwd=outside, capture_output=True, text=True)
    assert cli.returncode == 0 and "builtin:demo" in cli.stdout, cli.stderr


def test_builtin_profiles_live_in_the_top_level_folder():
    from engine.profiles import BUILTIN_DIR, list_profiles

    assert BUILTIN_DIR == REPO / "profiles"
    assert not (REPO / "engine" / "builtin_profiles").exists()
    assert {p.name for p in list_profiles() if not isinstance(p, Exception)} >= {
        "demo", "smollm2-135m-instruct", "qwen2.5-0.5b-instruct", "qwen2.5-7b-instruct", "llama-3.1-8b-instruct"}


def test_pyproject_lists_every_package_and_maps_the_profiles():
    """``packages`` is a list (``find`` cannot add a mapped package): a new package folder missing from it would
    be missing from the wheel."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(REPO).parts) for top in ("engine", "tui")
               for p in (REPO / top).rglob("__init__.py")}
    assert set(tool["packages"]) == folders | {"engine.builtin_profiles"}
    assert tool["package-dir"] == {"engine.builtin_profiles": "profiles"}
    assert tool["package-data"]["engine.builtin_profiles"] == ["*.toml"]
