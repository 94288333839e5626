"""``backend = "llamacpp"``: a GGUF file run in this process by llama.cpp (llama-cpp-python), without torch.

Why: on a CPU llama.cpp decodes the quantized file several times faster than transformers decodes the
de-quantized weights, and it is ready in well under a second instead of importing torch (bench/README.md,
bench/llamacpp_speed.py). Training stays on transformers; this backend only chats.

- Prompt: the profile's ``model.chat_template``, else the file's own (``tokenizer.chat_template``), rendered
  the way transformers renders templates (same sandbox and globals), then tokenized with special tokens
  parsed: the text the transformers backend feeds its tokenizer.
- Sampling: a llama.cpp sampler chain in transformers' order (repetition penalty over prompt and reply,
  temperature, top-k, top-p, then a draw seeded with the recorded seed; greedy when ``do_sample`` is off or
  the temperature is 0), so the profile's [generation] table means the same on both backends.
  (llama-cpp-python's own chain cuts top-p before the temperature and adds ``min_p = 0.05``.)
- Decoding: one ``eval`` per token in the reply's worker thread, the cancel checked between tokens (Esc stops
  within a token). The previous prompt's KV cache is kept for the whole 64-token chunks the next prompt shares
  with it (same adapter), so a chat's next turn evaluates only its new turns and a reply never depends on what
  was asked before it (same prompt, seed and adapter: same reply).
- Adapters: a run's PEFT adapter converted once into a GGUF LoRA file (engine.runtime.gguf_lora) and loaded
  with ``llama_adapter_lora_init``; switching is ``llama_set_adapters_lora`` on the context, so A/B, F4 and
  serve's per-request adapters never reload the model.
- Threads: :func:`decode_threads`. llama.cpp's decode threads spin while they wait; one more than the cores
  left free by the app's own threads makes every thread wait for a preempted one (bench/README.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import threading
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.runtime.backend import BackendUnavailable, Progress, chat_messages
from engine.runtime.chat_template import ChatTemplate
from engine.runtime.llamacpp_tokens import LogitControls, TokenPieces
from engine.runtime.params import GenerationParams, reply_record
from engine.runtime.token_controls import LogprobCapture, TokenControls

MAX_CONTEXT = 4096
"""Tokens of context allocated (prompt + reply), or the model's own context when smaller."""
CHUNK = 64
"""Prompts are evaluated in chunks starting at multiples of this (see LlamaCppModel._evaluate_prompt)."""


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def decode_threads(cores: int | None = None) -> int:
    """Decode threads: every core but one for the app (its UI thread and the reply's reader) on small machines,
    up to 8. ``TUNELOOP_LLAMA_THREADS`` overrides."""
    env = os.environ.get("TUNELOOP_LLAMA_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = cores or cpu_count()
    return max(1, min(cores - 1, 8))


def _import_llama_cpp():
    try:
        import llama_cpp
    except (ImportError, OSError) as exc:  # not installed, or its shared library does not load
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise BackendUnavailable(f"llama-cpp-python cannot be imported ({first})") from None
    return llama_cpp


def load(profile, home, progress: Progress, run_id: str | None, adapter_dir: Path | None) -> LlamaCppModel:
    """The ``llamacpp`` backend (engine.runtime.backend)."""
    from engine.runtime import gguf
    from engine.runtime.gguf_f16 import runnable_base

    llama_cpp = _import_llama_cpp()
    path = runnable_base(home, gguf.locate(profile.model.id), progress)  # the weights the gate judged
    progress("weights", None)
    threads = decode_threads()
    try:
        llama = llama_cpp.Llama(model_path=str(path), n_ctx=MAX_CONTEXT, n_threads=threads,
                                n_threads_batch=threads, n_gpu_layers=_gpu_layers(profile),
                                verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"llama.cpp cannot load {path} ({first}); the file may be damaged, or set "
                        'model.backend = "transformers" in the profile.') from None
    lm = LlamaCppModel(llama, profile, home, path, threads)
    if run_id is not None and adapter_dir is not None:
        progress("adapter", None)
        lm.load_adapter(run_id, adapter_dir)
        lm.use_adapter(run_id)
    progress("ready", 1.0)
    return lm


def _gpu_layers(profile) -> int:
    """All layers on the GPU when the profile asks for one and this build has GPU support, else none."""
    device = profile.model.device
    if device == "cpu":
        return 0
    try:
        import llama_cpp

        return -1 if llama_cpp.llama_supports_gpu_offload() else 0
    except (ImportError, AttributeError):
        return 0


class LlamaCppModel:
    """The ``llamacpp`` backend's ChatModel: a GGUF file in llama.cpp, one reply at a time (a lock)."""

    backend = "llamacpp"
    note: str | None = None
    dtype = "gguf"

    def __init__(self, llama, profile, home, path: Path, threads: int) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.llama = llama
        self.profile = profile
        self.home = home
        self.path = path
        """The GGUF file the weights came from."""
        self.threads = threads
        self.model_id = profile.model.id
        from engine.runtime.gguf import file_revision

        self.revision = file_revision(path)
        self.device = "cpu" if _gpu_layers(profile) == 0 else "gpu"
        self.context_length = min(llama.n_ctx(), llama._model.n_ctx_train() or llama.n_ctx())
        self._vocab = llama._model.vocab
        self._lock = threading.RLock()
        self._adapters: dict[str, tuple[Any, Path]] = {}  # run id -> (llama_adapter_lora pointer, adapter folder)
        self._adapter: str | None = None
        self._applied: str | None = None  # the adapter set on the context now
        self._cached_for: str | None = None  # the adapter the KV cache's prompt was evaluated with
        self._prompt_cached: list[int] = []  # the prompt whose whole chunks the KV cache holds
        self._template = self._chat_template()
        self._eog: dict[int, bool] = {}
        self._batch = llama_cpp.llama_batch_init(1, 0, 1)  # freed with the process (one per model, a few bytes)
        self._decode, self._ctx = llama_cpp.llama_decode, llama._ctx.ctx

    # -- prompt -----------------------------------------------------------------------------------
    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llama._model.token_get_text(token)

    def _chat_template(self) -> ChatTemplate:
        source = self.profile.model.chat_template or self.llama.metadata.get("tokenizer.chat_template")
        if not source:
            raise UserError(f"model {self.model_id!r} has no chat template; set model.chat_template in the profile.")
        return ChatTemplate(source, self._token_text(self.llama.token_bos()), self._token_text(self.llama.token_eos()))

    def prompt_messages(self, messages: list[dict], system_prompt: str | None = None) -> list[dict]:
        return chat_messages(self.profile, messages, system_prompt)

    def encode(self, messages: list[dict], system_prompt: str | None = None) -> list[int]:
        """Token ids of the chat plus the opening of the assistant's turn."""
        import jinja2

        try:
            text = self._template.render(self.prompt_messages(messages, system_prompt))
        except jinja2.TemplateError as exc:
            raise UserError(f"the chat template of {self.model_id!r} rejected this conversation ({exc}); "
                            "set model.chat_template in the profile.") from None
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def prompt_length(self, messages: list[dict], system_prompt: str | None = None) -> int:
        return len(self.encode(messages, system_prompt))

    # -- adapters ---------------------------------------------------------------------------------
    @property
    def adapter(self) -> str | None:
        return self._adapter

    @property
    def adapters(self) -> dict[str, Path]:
        return {run_id: folder for run_id, (_, folder) in self._adapters.items()}

    def load_adapter(self, run_id: str, path) -> None:
        """The run's PEFT adapter, converted once to a GGUF LoRA file beside it, loaded next to the model."""
        from engine.adapters import check_adapter_base
        from engine.runtime.gguf_lora import ensure_gguf_lora

        path = Path(path)
        check_adapter_base(path, [self.model_id, str(self.path)])
        with self._lock:
            if run_id in self._adapters and self._adapters[run_id][1] == path.resolve():
                return
            lora_file = ensure_gguf_lora(path, self.path)
            handle = self._llama_cpp.llama_adapter_lora_init(self.llama._model.model, str(lora_file).encode("utf-8"))
            if not handle:
                raise UserError(f"llama.cpp cannot load the adapter {lora_file}; it may be damaged or for another "
                                "model.")
            if run_id in self._adapters:
                self.unload_adapter(run_id)
            self._adapters[run_id] = (handle, path.resolve())

    def unload_adapter(self, run_id: str) -> None:
        with self._lock:
            handle, _ = self._adapters.pop(run_id)
            if self._applied == run_id:
                self._apply(None)
            if self._adapter == run_id:
                self._adapter = None
            self._llama_cpp.llama_adapter_lora_free(handle)

    def use_adapter(self, run_id: str | None) -> None:
        """Later replies use ``run_id``'s adapter (None: the base model); applied when the next reply starts."""
        if run_id is not None and run_id not in self._adapters:
            raise UserError(f"adapter {run_id!r} is not loaded; load it first (loaded: {', '.join(self._adapters) or 'none'}).")
        self._adapter = run_id

    def _apply(self, run_id: str | None) -> None:
        """Under the lock: set ``run_id``'s adapter (or none) on the context."""
        if run_id == self._applied:
            return
        lib = self._llama_cpp
        if run_id is None:
            status = lib.llama_set_adapters_lora(self.llama._ctx.ctx, None, 0, None)
        else:
            handles = (lib.llama_adapter_lora_p_ctypes * 1)(self._adapters[run_id][0])
            status = lib.llama_set_adapters_lora(self.llama._ctx.ctx, handles, 1, (ctypes.c_float * 1)(1.0))
        if status != 0:
            raise UserError(f"llama.cpp could not switch to {'adapter ' + run_id if run_id else 'the base model'}.")
        self._applied = run_id

    # -- replies ----------------------------------------------------------------------------------
    def _is_eog(self, token: int) -> bool:
        """End of generation (end of turn or of text), asked of llama.cpp once per token id."""
        known = self._eog.get(token)
        if known is None:
            known = self._eog[token] = bool(self._llama_cpp.llama_vocab_is_eog(self._vocab, token))
        return known

    def _step(self, token: int, pos: int) -> None:
        """Under the lock: decode one generated token at ``pos``: one call into llama.cpp and no bookkeeping
        (``Llama.eval`` also trims the cache and copies ids for every token)."""
        b = self._batch
        b.n_tokens = 1
        b.token[0] = token
        b.pos[0] = pos
        b.n_seq_id[0] = 1
        b.seq_id[0][0] = 0
        b.logits[0] = True
        status = self._decode(self._ctx, b)
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")

    def _sampler(self, params: GenerationParams, seed: int, prompt: list[int]):
        """transformers' order: repetition penalty, temperature, top-k, top-p, seeded draw (or greedy)."""
        from llama_cpp._internals import LlamaSampler

        sampler = LlamaSampler()
        if params.repetition_penalty != 1.0:  # over the prompt too, as transformers does
            sampler.add_penalties(self.llama.n_vocab(), self.llama.n_ctx(), params.repetition_penalty, 0.0, 0.0)
            for token in prompt:
                sampler.accept(token)
        if params.greedy:
            sampler.add_greedy()
        else:
            sampler.add_temp(params.temperature)
            if params.top_k:
                sampler.add_top_k(params.top_k)
            if params.top_p < 1.0:
                sampler.add_top_p(params.top_p, 1)
            sampler.add_dist(seed)
        return sampler

    def _evaluate_prompt(self, prompt: list[int], run_id: str | None) -> None:
        """Under the lock: evaluate ``prompt`` into the KV cache, keeping what the previous reply's prompt left there.

        A reply must not depend on what was asked before it (same prompt, seed and adapter: same reply), but
        llama.cpp's numbers depend on how tokens were batched. So prompts are always evaluated in chunks that start
        at multiples of CHUNK, and only whole chunks of the previous *prompt* (never its reply, decoded a token at
        a time) that the new prompt shares are kept (same adapter only): the KV cache then holds exactly what a
        fresh evaluation would write. A chat's next turn evaluates only its new turns."""
        llama = self.llama
        keep = 0
        if self._cached_for == run_id and self._prompt_cached:
            cached = self._prompt_cached
            limit = min(len(cached), len(prompt) - 1)  # the last prompt token is always evaluated: its logits
            while keep < limit and cached[keep] == prompt[keep]:
                keep += 1
            keep -= keep % CHUNK
        self._cached_for, self._prompt_cached = None, []  # until the evaluation below completes
        if keep == 0:
            llama.reset()
        llama.n_tokens = keep  # eval() drops the cache past n_tokens before it decodes
        for start in range(keep, len(prompt), CHUNK):
            llama.eval(prompt[start:start + CHUNK])
        self._cached_for, self._prompt_cached = run_id, list(prompt)

    token_controls = True
    """Replies honour engine serve's logprobs, penalties and logit_bias (``stream(controls=...)``)."""

    @property
    def vocab_size(self) -> int:
        return self.llama.n_vocab()

    def _special(self, token: int) -> bool:
        return self._is_eog(token) or bool(self._llama_cpp.llama_vocab_is_control(self._vocab, token))

    def stream(self, messages: list[dict], params: GenerationParams | None = None,
               system_prompt: str | None = None, *, controls: TokenControls | None = None):
        """Start a reply in a background thread; iterate the returned Generation for text pieces. ``controls``:
        engine serve's logprobs, penalties and logit_bias; the log probabilities are the Generation's ``logprobs``."""
        from engine.runtime.streaming import Generation

        params = params or GenerationParams.from_profile(self.profile)
        seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**31)
        system = self.profile.system_prompt if system_prompt is None else system_prompt
        prompt = self.encode(messages, system)
        room = self.context_length - len(prompt)
        if room < 1:
            raise UserError(f"the conversation is {len(prompt)} tokens long, and this model's context is "
                            f"{self.context_length} tokens; start a new conversation.")
        max_new = min(params.max_new_tokens, room)
        run_id = self._adapter
        record = reply_record(self, params, seed, system, len(prompt), threads=self.threads)
        lib, vocab = self._llama_cpp, self._vocab
        sample, ctx = lib.llama_sampler_sample, self.llama._ctx.ctx
        active = controls if controls is not None and controls.active else None
        capture = LogprobCapture(TokenPieces(vocab, lib).text, active.top_logprobs) if active and active.logprobs else None

        def run(streamer, cancel: threading.Event, started) -> None:
            with self._lock:
                started()
                adapter = run_id if run_id is None or run_id in self._adapters else None
                if adapter != run_id:
                    record["adapter"] = None  # unloaded meanwhile: the reply comes from the base model
                self._apply(adapter)
                sampler = self._sampler(params, seed, prompt)
                sampler_p = sampler.sampler
                try:
                    self._evaluate_prompt(prompt, adapter)
                    shape = LogitControls(lib, ctx, self.vocab_size, active, capture, prompt, params.repetition_penalty,
                                          self._special) if active else None
                    step, token = self._step, -1
                    for i in range(max_new):
                        if i:
                            step(token, len(prompt) + i - 1)
                        if cancel.is_set():
                            break
                        if shape is not None:
                            shape.before()
                        token = sample(sampler_p, ctx, -1)
                        if shape is not None:
                            shape.after(token)
                        streamer.put([token])
                        if self._is_eog(token):
                            break
                except BaseException:
                    self._cached_for, self._prompt_cached = None, []  # a failed decode leaves no cache to trust
                    raise
                finally:
                    with contextlib.suppress(Exception):
                        sampler.close()

        def finish(gen) -> None:
            last = gen.last_token
            if last is not None and self._is_eog(last):
                reason = "stop"
            elif gen.record["completion_tokens"] >= max_new:
                reason = "length"
            else:
                reason = "cancelled" if gen.cancelled else "stop"
            gen.stopped = reason == "cancelled"
            gen.record["stopped"] = gen.stopped
            gen.record["finish_reason"] = reason

        gen = Generation(None, record, run, finish, decoder=TokenPieces(vocab, lib), stop_hook=lambda event: event,
                         skip_prompt=False)
        gen.logprobs = capture
        return gen

    def generate(self, messages: list[dict], params: GenerationParams | None = None,
                 system_prompt: str | None = None) -> tuple[str, dict]:
        """The whole reply at once: ``(text, record)``."""
        gen = self.stream(messages, params, system_prompt)
        text = gen.wait()
        return text, gen.record
