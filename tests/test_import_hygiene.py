"""The screen paints before the model loads: headless modules must not pull in torch."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "fastapi", "uvicorn", "starlette")


@pytest.mark.parametrize(
    "module",
    ["engine", "engine.home", "engine.profiles", "engine.adapters", "engine.feedback", "engine.cli", "engine.serve", "tui", "tui.app"],
)
def test_module_does_not_import_heavy_libraries(module):
    code = (
        "import importlib, sys, json\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{module} imported {out.stdout.strip()}"


FIRST_FRAME_LATE = ("pydantic", "engine.profiles", "engine.config", "engine.feedback", "engine.adapters",
                    "tui.config", "tui.session", "tui.model", "tui.replies", "tui.judging", "tui.menus")


@pytest.mark.parametrize("module", ["tui.app", "tui.__main__"])
def test_the_app_imports_only_what_its_first_frame_needs(module):
    """Issue 26: ``tuneloop`` paints its first frame before it reads the profile; the engine's profile, config
    and feedback modules (pydantic) and the app's parts are imported after it (tui/boot.py)."""
    code = (
        "import importlib, sys, json\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {FIRST_FRAME_LATE!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{module} imported {out.stdout.strip()} before the first frame"
