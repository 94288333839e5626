"""Issue 28 item 17: ``engine export-model --out ~/models/my-tuned`` (the README's example) creates
``~/models`` when it does not exist; a file in the way is still refused in one sentence."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.runtime.export import check_out_dir
from tests.engine_cli import run_engine


def test_missing_parents_are_accepted_and_a_file_in_the_way_refused(tmp_path):
    check_out_dir(tmp_path / "models" / "deeper" / "my-tuned")  # nothing there yet: fine
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        check_out_dir(tmp_path / "afile" / "sub" / "my-tuned")


@pytest.mark.slow
def test_export_creates_missing_parent_folders(demo_home, tmp_path):
    out = tmp_path / "models" / "tuned" / "my-tuned"
    code, text = run_engine("export-model", "--profile", "demo", "--adapter", "base", "--out", str(out))
    assert code == 0, text
    assert (out / "config.json").is_file() and (out / "tuneloop_export.json").is_file()
