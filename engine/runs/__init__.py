"""Training run directories: ids, the per-profile lock, the manifest, checkpoints that can be trusted,
stop signals and time budgets.

Shared by ``engine finetune`` and ``engine reward`` (any command that trains overnight). A run lives in
``home/runs/<profile>/<run-id>/``; everything here is plain Python (no torch at import time) so the
CLI can refuse bad input before any heavy import. Distributed helpers import torch only when a
process group is actually running.

Overnight-safety rules kept here:
- a checkpoint is trusted only when its ``COMPLETE`` marker exists; the marker is written last, after
  every file in the checkpoint was fsync'd, so a run killed mid-save leaves a checkpoint without it;
- finished artefacts (an adapter, a reward model) are written to a temp dir beside the target and
  renamed into place, so a full disk or a crash never leaves a half-written adapter under its name;
- stops (budget, signals) live in engine.runs.stopping and rank-0-only helpers in
  engine.runs.distributed; both are re-exported here so callers need one import;
- one run per profile at a time (``flock`` on ``runs/<profile>/.<name>.lock``), released by the kernel
  when the process dies, so a SIGKILLed run never blocks the next one.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from engine.errors import UserError
from engine.home import Home, check_name
from engine.runs.checkpoints import (  # noqa: F401 (re-exported: callers use runs.X)
    CHECKPOINT_HASHES,
    TORCH_FILE_SUFFIXES,
    checkpoint_step,
    is_complete,
    mark_complete,
    newest_complete_checkpoint,
    verify_checkpoint,
)
from engine.runs.files import (  # noqa: F401
    COMPLETE_MARKER,
    MANIFEST,
    METRICS,
    REPORT_JSON,
    append_jsonl,
    as_disk_error,
    as_write_error,
    clean_leftovers,
    copy_adapter,
    disk_full_error,
    exchange,
    fingerprint_dir,
    fsync_tree,
    jsonl_line,
    open_append,
    package_versions,
    publish_dir,
    read_json,
    read_jsonl,
    settings_fingerprint,
    sha256_file,
    write_json,
)
from engine.runs.lock import RunLock  # noqa: F401
from engine.safe_files import check_tree

EXIT_INTERRUPTED = 3
"""Exit code of a run stopped by SIGINT/SIGTERM after saving a checkpoint (resume with ``--resume``)."""

_RUN_ID = re.compile(r"^(\d{8}-\d{6})(?:-(\d+))?-([a-z0-9][a-z0-9-]*)$")


# ----------------------------------------------------------------------------------------------
# run ids and directories


def new_run_id(kind: str, now: float | None = None) -> str:
    """``YYYYMMDD-HHMMSS-<kind>`` in local time, sortable by start time."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return check_name(f"{stamp}-{kind}", "run id")


def run_kind(run_id: str) -> str | None:
    """The ``<kind>`` part of a run id (``sft``, ``sft-dpo``, ``reward`` ...), None if not a run id."""
    m = _RUN_ID.match(run_id)
    return m.group(3) if m else None


@dataclass(frozen=True)
class RunDir:
    """The paths of one run. Nothing is created until ``create``/``ensure`` is called."""

    home: Home
    profile: str
    run_id: str

    @property
    def root(self) -> Path:
        return self.home.run_dir(self.profile, self.run_id)

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def report_json(self) -> Path:
        return self.root / REPORT_JSON

    @property
    def finished(self) -> bool:
        return self.report_json.is_file()

    def read_manifest(self) -> dict:
        """manifest.json, checked against :class:`engine.runs.records.Manifest` (a damaged one: one sentence)."""
        from engine.runs.records import check_manifest

        return check_manifest(read_json(self.manifest), self.manifest)

    def read_report(self) -> dict:
        """report.json, checked against :class:`engine.runs.records.Report`; ``{}`` until the run finished."""
        from engine.runs.records import check_report

        return check_report(read_json(self.report_json), self.report_json) if self.finished else {}

    def write_manifest(self, manifest: dict) -> None:
        """Write manifest.json; the checkpoint hashes :func:`mark_complete` recorded there are kept."""
        try:
            recorded = read_json(self.manifest).get(CHECKPOINT_HASHES)
        except (UserError, OSError):
            recorded = None
        if isinstance(recorded, dict) and CHECKPOINT_HASHES not in manifest:
            manifest = {**manifest, CHECKPOINT_HASHES: recorded}
        write_json(self.manifest, manifest, self.home)

    def write_json(self, path: Path, obj) -> None:
        """write_json for a file of this run, reached from the home without following links."""
        write_json(path, obj, self.home)

    def check(self, *folders: Path) -> None:
        """Refuse (one sentence) if the run folder, or one of ``folders`` in it, is reached through a link;
        called before libraries write there (Trainer checkpoints, adapters)."""
        self.home.check_dir(self.root)
        for folder in folders:
            self.home.check_dir(folder, create=True)
        check_tree(self.root, self.home)  # and nothing in it is a link (metrics.jsonl, stages/, checkpoints)

    @classmethod
    def create(cls, home: Home, profile: str, kind: str, now: float | None = None) -> "RunDir":
        """Make a fresh run directory; a second run in the same second gets ``-2``, ``-3`` ... suffixes."""
        base = new_run_id(kind, now)
        stamp, rest = base[:15], base[16:]
        home.check_dir(home.runs_dir(profile), create=True)
        for n in range(1, 1000):
            run_id = base if n == 1 else f"{stamp}-{n}-{rest}"
            path = home.run_dir(profile, run_id)
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            os.chmod(path, 0o700)
            return cls(home, profile, run_id)
        raise UserError(f"cannot create a run directory in {home.runs_dir(profile)}: too many runs this second.")


@dataclass(frozen=True)
class RunSummary:
    """What a listing shows about one run (`engine adapters`, the app's F3/F4 panels, reward listings),
    read from its manifest and report.json by :func:`run_summaries`, the one reader of both for listings."""

    run_id: str
    manifest: dict
    report: dict
    """report.json, ``{}`` until the run finished (its presence marks a finished run)."""
    problem: str | None = None
    """One sentence when the manifest or the report cannot be read (the run is listed, not skipped)."""

    @property
    def command(self) -> str | None:
        return self.manifest.get("command")

    @property
    def plan(self) -> list[str]:
        return list(self.manifest.get("plan", []))

    @property
    def finished(self) -> bool:
        return bool(self.report)

    @property
    def verdict(self) -> str:
        """The gate's verdict in words: passed the gate / refused by the gate / no report yet."""
        if self.problem:
            return "report unreadable"
        if not self.report:
            return "no report yet"
        return "passed the gate" if self.report.get("promoted") else "refused by the gate"


def run_summaries(home: Home, profile: str, kinds: Iterable[str] | None = None,
                  command: str | None = None, keep_problems: bool = False) -> list[RunSummary]:
    """One RunSummary per run of ``profile`` (oldest first), optionally only ``kinds`` of run id or runs
    of one ``command`` ("finetune", "reward"); ``keep_problems``: also runs whose files cannot be read (their
    command is unknown), with ``problem`` set."""
    out = []
    for rd in list_runs(home, profile, kinds):
        manifest: dict = {}
        report: dict = {}
        problem = None
        try:
            manifest = rd.read_manifest()
            report = rd.read_report()
        except UserError as exc:
            problem = str(exc)
        if command is not None and manifest.get("command") != command and not (problem and keep_problems):
            continue
        out.append(RunSummary(rd.run_id, manifest, report, problem))
    return out


def list_runs(home: Home, profile: str, kinds: Iterable[str] | None = None) -> list[RunDir]:
    """Every run directory of ``profile`` that has a manifest, oldest first."""
    root = home.runs_dir(profile)
    if not root.is_dir():
        return []
    wanted = set(kinds) if kinds is not None else None
    out = []
    for p in sorted(root.iterdir()):
        if not p.is_dir() or not (p / MANIFEST).is_file() or run_kind(p.name) is None:
            continue
        if wanted is not None and run_kind(p.name) not in wanted:
            continue
        out.append(RunDir(home, profile, p.name))
    return out


def finished_run_ids(home: Home, profile: str, holding: Iterable[str] = ()) -> list[str]:
    """Run ids of ``profile`` that finished (:attr:`RunDir.finished`: report.json, which every kind of run writes
    last) and hold every path of ``holding`` (a reward model, its calibration), oldest first."""
    root = home.runs_dir(profile)
    if not root.is_dir():
        return []
    needed = list(holding)
    return sorted(p.parent.name for p in root.glob(f"*/{REPORT_JSON}")
                  if run_kind(p.parent.name) is not None and all((p.parent / n).exists() for n in needed))


def last_unfinished_run(home: Home, profile: str, kinds: Iterable[str] | None = None) -> RunDir | None:
    """The newest run that has a manifest but no report (it was stopped or killed)."""
    runs = list_runs(home, profile, kinds)
    if not runs or runs[-1].finished:
        return None
    return runs[-1]


# Re-exported so callers keep one import (engine.reward uses runs.Deadline, runs.StopRequest, ...).
from engine.runs.distributed import (  # noqa: E402,F401
    any_rank,
    barrier,
    broadcast,
    init_distributed,
    is_distributed,
    is_main_process,
    on_main,
    world_size,
)
from engine.runs.stopping import Deadline, StopRequest, parse_duration, parse_until  # noqa: E402,F401
