"""A non-editable install (a wheel) carries the built-in profiles as package data (issue 11: a wheel
install had none, because profiles/ was found by a path outside any package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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
    for pkg in ("engine", "tui"):
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
