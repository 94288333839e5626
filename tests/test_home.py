"""Home: private permissions under any umask, atomic writes, the promoted-adapter pointer."""

import os
import stat

import pytest

from engine import adapters
from engine.errors import UserError
from engine.safe_files import ensure_dir, write_private


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_private_modes_under_permissive_umask(home):
    old = os.umask(0)
    try:
        d = ensure_dir(home.root / "a" / "b")
        f = write_private(d / "x.json", "{}")
    finally:
        os.umask(old)
    assert _mode(home.root) == 0o700 and _mode(home.root / "a") == 0o700 and _mode(d) == 0o700
    assert _mode(f) == 0o600 and f.read_text() == "{}"
    assert [p.name for p in d.iterdir()] == ["x.json"]  # no temp file left behind


def test_promote_use_and_rollback(home):
    assert adapters.promoted_run(home, "demo") is None
    for run in ("20260101-000000-sft", "20260102-000000-sft"):
        d = adapters.adapter_path(home, "demo", run)
        ensure_dir(d)
        write_private(d / "adapter_config.json", "{}")
    assert adapters.run_ids(home, "demo") == ["20260101-000000-sft", "20260102-000000-sft"]
    adapters.set_promoted(home, "demo", "20260101-000000-sft")
    adapters.set_promoted(home, "demo", "20260102-000000-sft")
    assert adapters.promoted_run(home, "demo") == "20260102-000000-sft"
    assert adapters.rollback(home, "demo") == "20260101-000000-sft"
    assert adapters.promoted_run(home, "demo") == "20260101-000000-sft"
    with pytest.raises(UserError):
        adapters.set_promoted(home, "demo", "no-such-run")
    with pytest.raises(UserError):
        adapters.set_promoted(home, "demo", "../../etc")
