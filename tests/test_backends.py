"""engine.runtime.backend: one registry row per backend, which one a profile gets, and the one-line fallback
when llama.cpp cannot be had. (Real llama.cpp replies: tests/real/test_llamacpp.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import typing

import pytest

from engine.errors import UserError
from engine.profiles import load_profile
from engine.runtime.backend import ALIASES, AUTO, BACKENDS, choose_backend
from engine.settings import ModelSettings
from tests.conftest import add_user_profile

GGUF = '[model]\nid = "/models/some.Q4_0.gguf"\n'


def _profile(home, text, name="p"):
    add_user_profile(home, name, text)
    return load_profile(name, home)


def test_the_setting_accepts_exactly_the_registry_its_aliases_and_auto():
    hints = typing.get_type_hints(ModelSettings, include_extras=True)
    assert set(typing.get_args(hints["backend"])) == {AUTO, *BACKENDS, *ALIASES}
    assert all(row.module.startswith("engine.runtime.") for row in BACKENDS.values())


def test_old_profiles_saying_local_still_load_on_transformers(home):
    assert choose_backend(_profile(home, '[model]\nid = "builtin:demo"\nbackend = "local"\n')).backend.name == \
        "transformers"
    assert choose_backend(_profile(home, '[model]\nid = "builtin:demo"\n')).backend.name == "transformers"


def test_a_gguf_profile_without_llama_cpp_falls_back_with_one_line(home, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now fails
    for text in (GGUF, GGUF + 'backend = "llamacpp"\n'):
        choice = choose_backend(_profile(home, text))
        assert choice.backend.name == "transformers"
        assert len(choice.note.splitlines()) == 1 and "llama-cpp-python" in choice.note and "'p'" in choice.note


def test_llamacpp_on_a_model_that_is_not_gguf_is_one_sentence(home):
    with pytest.raises(UserError, match="runs GGUF files"):
        choose_backend(_profile(home, '[model]\nid = "org/model"\nbackend = "llamacpp"\n'))


def test_a_gguf_profile_uses_llama_cpp_when_it_is_installed(home):
    pytest.importorskip("llama_cpp")
    choice = choose_backend(_profile(home, GGUF))
    assert choice.backend.name == "llamacpp" and choice.note is None
    assert choose_backend(_profile(home, GGUF), "transformers").backend.name == "transformers"


def test_code_working_on_the_trained_weights_keeps_transformers_unless_the_profile_chats_through_a_server(home):
    """load_model (training, the gate, engine eval, export) reads `auto` and `llamacpp` as transformers (llama.cpp
    cannot train, merge or score a PEFT adapter); chatting picks llama.cpp."""
    assert choose_backend(_profile(home, GGUF), chat=False).backend.name == "transformers"
    explicit = _profile(home, GGUF.replace("[model]\n", '[model]\nbackend = "llamacpp"\n'))
    assert explicit.model.backend == "llamacpp"
    assert choose_backend(explicit).backend.name == "llamacpp"
    assert choose_backend(explicit, chat=False).backend.name == "transformers"
    assert choose_backend(_profile(home, '[model]\nid = "org/m"\nbackend = "openai"\nbase_url = "http://h/v1"\n'),
                          chat=False).backend.name == "openai"


SSE_SERVER = textwrap.dedent('''
    import http.server, json, threading
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200); self.send_header("Content-Type", "text/event-stream"); self.end_headers()
            for piece in ("Paris", " it is."):
                chunk = {"id": "x", "choices": [{"delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(("data: " + json.dumps(chunk) + "\\n\\n").encode())
            usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
            self.wfile.write(("data: " + json.dumps(usage) + "\\n\\ndata: [DONE]\\n\\n").encode())
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    URL = f"http://127.0.0.1:{srv.server_address[1]}/v1"
''')


@pytest.mark.slow
def test_a_remote_profile_replies_without_importing_torch(home):
    code = SSE_SERVER + textwrap.dedent(f'''
        import sys
        from engine.home import Home
        from engine.profiles import load_profile
        from engine.runtime import load_model
        home = Home.resolve({str(home.root)!r})
        (home.profiles_dir).mkdir(parents=True, exist_ok=True)
        (home.profiles_dir / "r.toml").write_text('[model]\\nid = "org/m"\\nbackend = "openai"\\nbase_url = "' + URL + '"\\n')
        lm = load_model(load_profile("r", home), home)
        text, record = lm.generate([{{"role": "user", "content": "Capital of France?"}}])
        print(json.dumps({{"text": text, "backend": record["backend"],
                          "heavy": [m for m in ("torch", "transformers") if m in sys.modules]}}))
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"text": "Paris it is.", "backend": "openai", "heavy": []}
