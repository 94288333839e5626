"""Fuzzing profile loading: whatever a user writes into a profile file, the answer is a Profile or
one UserError sentence naming the file, never a traceback, and the CLI exits 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import UserError
from engine.profiles import TABLES as _TABLES
from engine.profiles import Profile, load_profile, parse_profile

from .faultlib import engine_cmd, engine_env

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- a tiny TOML writer (no TOML writer is installed; tomllib only reads) -----------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, RawToml):
        return v.text
    raise TypeError(v)


@dataclasses.dataclass(frozen=True)
class RawToml:
    """A TOML literal written verbatim (dates, times: types a profile never expects)."""

    text: str


_scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
    st.sampled_from(["auto", "cpu", "cuda", "cuda:1", "mps", "fp16", "bf16", "sft", "dpo", "kto", "all-linear", ""]),
    st.sampled_from([RawToml("1979-05-27T07:32:00Z"), RawToml("07:32:00"), RawToml("1979-05-27")]),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["a", "id", "r"]), inner, max_size=3)),
    max_leaves=6,
)


_VALID = {
    ("model", "device"): st.sampled_from(["auto", "cpu", "cuda", "cuda:1", "mps"]),
    ("model", "dtype"): st.sampled_from(["auto", "bf16", "fp16", "fp32"]),
    ("model", "id"): st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=12),
    ("train", "method"): st.sampled_from(["auto", "sft", "dpo", "kto"]),
}
_BY_TYPE = {
    "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "int | None": st.integers(min_value=0, max_value=2**31),
    "float": st.one_of(st.floats(), st.integers(min_value=-10, max_value=10)),
    "float | None": st.one_of(st.floats(), st.integers(min_value=-10, max_value=10)),
    "bool": st.booleans(),
    "str": _text,
    "str | None": _text,
    "str | list[str]": st.one_of(_text, st.lists(_text, max_size=3)),
}


def value_for(table: str, key: str):
    """Mostly a value of the right type (so some documents load), sometimes anything at all."""
    types = {f.name: f.type for f in dataclasses.fields(_TABLES[table])}
    if key not in types:
        return _value
    if (table, key) in _VALID:
        right = _VALID[(table, key)]
    elif str(types[key]).startswith("Literal["):  # one of the allowed words
        right = st.sampled_from(re.findall(r"'([^']*)'", str(types[key])))
    else:
        right = _BY_TYPE[types[key]]
    return st.one_of(right, right, right, _value)


@st.composite
def profile_documents(draw) -> dict:
    """A document with real tables and keys (sometimes a stray one) and random values."""
    doc: dict = {}
    tables = draw(st.lists(st.sampled_from(sorted(_TABLES)), unique=True, max_size=5))
    if draw(st.booleans()) and "model" not in tables:
        tables.append("model")
    for table in tables:
        fields = [f.name for f in dataclasses.fields(_TABLES[table])]
        pool = fields + ["bogus"] if draw(st.integers(0, 9)) == 0 else fields
        keys = draw(st.lists(st.sampled_from(pool), unique=True, max_size=4))
        if table == "model" and draw(st.integers(0, 4)) > 0:
            keys = ["id", *[k for k in keys if k != "id"]]
        doc[table] = {k: draw(value_for(table, k)) for k in keys}
    if draw(st.booleans()):
        key = draw(st.sampled_from(["system_prompt", "description", "system_prompt", "description", "colour"]))
        doc[key] = draw(st.one_of(_text, _value))
    return doc


def dump(doc: dict) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for table, body in doc.items():
        if isinstance(body, dict):
            lines.append(f"[{table}]")
            lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


_FRAGMENTS = [
    "[model]", "[generation]", "[train]", "[lora]", "[reward]", "[[model]]", "[model.sub]",
    'id = "builtin:demo"', "id = 3", "trust_remote_code = true", "dtype = 'fp8'", "device = 'tpu'",
    "max_new_tokens = -1", "temperature = nan", "target_modules = ['q_proj', 1]", "model = 1",
    'system_prompt = """multi\nline"""', "epochs = inf", "id = ", "= 1", "[", "]]", "\\", "\x00",
    "key = 'unterminated", "a.b.c = 1", "id = 1979-05-27", "method = 'auto'", "x = {y = {z = []}}",
]
_toml_ish = st.lists(st.one_of(st.sampled_from(_FRAGMENTS), _text), max_size=12).map("\n".join)


def check_outcome(text: str, path) -> Profile | None:
    """Parse ``text``; a failure must be one UserError sentence that names ``path``."""
    try:
        return parse_profile("fuzz", text, path)
    except UserError as exc:
        msg = str(exc)
        assert "\n" not in msg and "\r" not in msg, msg
        assert str(path) in msg, msg
        return None


@pytest.mark.slow
@given(text=_toml_ish)
@FUZZ
def test_toml_ish_text_gives_profile_or_one_sentence(tmp_path, fault_stats, text):
    fault_stats["profile fuzz cases"] += 1
    check_outcome(text, tmp_path / "fuzz.toml")


@pytest.mark.slow
@given(doc=profile_documents())
@FUZZ
def test_random_values_for_real_keys(tmp_path, fault_stats, doc):
    fault_stats["profile fuzz cases"] += 1
    profile = check_outcome(dump(doc), tmp_path / "fuzz.toml")
    if profile is None:
        return
    # Accepted: every value the user wrote is what the loaded profile holds (nothing coerced away).
    for table, body in doc.items():
        for key, value in body.items() if isinstance(body, dict) else [(None, body)]:
            got = getattr(getattr(profile, table), key) if key is not None else getattr(profile, table)
            assert got == value or (isinstance(value, float) and math.isnan(value) and math.isnan(got))


@given(data=st.binary(max_size=200))
@FUZZ
def test_random_bytes_on_disk(home, fault_stats, data):
    """load_profile reads the real file: non-UTF-8 and binary junk give one sentence naming it."""
    fault_stats["profile fuzz cases"] += 1
    home.profiles_dir.mkdir(parents=True, exist_ok=True)
    path = home.profiles_dir / "junk.toml"
    path.write_bytes(data)
    try:
        load_profile("junk", home)
    except UserError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), str(exc)


def test_unreadable_profile_paths(home, fault_stats):
    """A profile that is a directory, or a dangling symlink, is a sentence, not a crash."""
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "adir.toml").mkdir()
    (home.profiles_dir / "dangling.toml").symlink_to(home.root / "nowhere.toml")
    for name in ("adir", "dangling"):
        fault_stats["profile fuzz cases"] += 1
        with pytest.raises(UserError) as exc:
            load_profile(name, home)
        assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "text",
    [
        b"\xff\xfe[model]\nid = 'x'\n",
        b"[model]\nid = 'x'\ndevice = 'tpu'\n",
        b"[model]\nid = 3\n",
        b"[generation]\ntemperature = 'hot'\n[model]\nid = 'x'\n",
    ],
    ids=["non-utf8", "bad-device", "id-not-string", "bad-type"],
)
@pytest.mark.slow
def test_cli_exits_2_with_one_sentence(home, text):
    """The real ``engine`` process: a bad user profile prints one ``error:`` line per file, exit 2."""
    home.profiles_dir.mkdir(parents=True)
    path = home.profiles_dir / "bad.toml"
    path.write_bytes(text)
    proc = subprocess.run(engine_cmd("profiles"), env=engine_env(home), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0], proc.stderr
