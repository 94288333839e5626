"""LoadedModel: a model + tokenizer in memory, streaming replies and switching LoRA adapters.

One reply at a time per model (a lock): a second ``stream()`` returns at once and its worker waits
for the first to finish, so a UI thread never blocks. Adapters are attached with peft next to the
base weights and switched per reply without reloading anything; ``use_adapter(None)`` generates with
the adapters disabled, which is exactly the base model.
"""

from __future__ import annotations

import contextlib
import random
import threading
from pathlib import Path
from typing import Any

from engine.errors import UserError, first_line
from engine.runtime.params import GenerationParams, reply_record
from engine.runtime.token_controls import TokenControls, TokenText


@contextlib.contextmanager
def _oom_as_user_error(model_id: str):
    """Running out of GPU memory mid-reply is something the user can fix, not a crash."""
    import torch

    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower():
            raise UserError(
                f"out of memory while {model_id!r} was replying; start a new conversation, lower "
                "max_new_tokens, or use a smaller model."
            ) from None
        raise


class LoadedModel:
    """The ``transformers`` backend's ChatModel (engine.runtime.backend)."""

    backend = "transformers"
    note: str | None = None

    def __init__(self, *, model, tokenizer, profile, home, device: str, torch_dtype, revision: str,
                 path: Path | None = None) -> None:
        from engine.runtime.device import dtype_name

        self.model = model
        """The base transformers model (with LoRA layers injected once an adapter is loaded)."""
        self.tokenizer = tokenizer
        self.profile = profile
        self.home = home
        self.device = device
        self.torch_dtype = torch_dtype
        self.dtype = dtype_name(torch_dtype)
        self.model_id = profile.model.id
        self.revision = revision
        self.path = path
        """The local folder the weights came from (None for a hub id)."""
        self._lock = threading.RLock()
        self._token_text: TokenText | None = None
        self._peft: Any = None  # peft.PeftModel wrapping self.model, once the first adapter is loaded
        self._adapters: dict[str, tuple[str, Path]] = {}  # run id -> (peft adapter name, folder)
        self._adapter: str | None = None
        self._names = 0
        self._eos = self._eos_ids()

    # -- adapters ---------------------------------------------------------------------------------
    @property
    def adapter(self) -> str | None:
        """The run id of the adapter replies use, or None for the base model."""
        return self._adapter

    @property
    def adapters(self) -> dict[str, Path]:
        """Loaded adapters: run id -> folder."""
        return {run_id: folder for run_id, (_, folder) in self._adapters.items()}

    def _accepted_bases(self) -> list[str]:
        names = [self.model_id]
        if self.path is not None:
            names.append(str(self.path))
        return names

    def load_adapter(self, run_id: str, path) -> None:
        """Attach the LoRA adapter in ``path`` under ``run_id`` (does not switch to it)."""
        from engine.adapters import check_adapter_base

        path = Path(path)
        check_adapter_base(path, self._accepted_bases())
        with self._lock:
            if run_id in self._adapters:
                if self._adapters[run_id][1] == path.resolve():
                    return
                self.unload_adapter(run_id)
            self._names += 1
            name = f"adapter{self._names}"  # peft names may not hold '.', run ids may
            from engine.quiet import quiet_loading

            try:
                with quiet_loading():  # peft/transformers deprecation notices say nothing a user can act on
                    if self._peft is None:
                        from peft import PeftModel

                        self._peft = PeftModel.from_pretrained(self.model, str(path), adapter_name=name,
                                                               is_trainable=False)
                    else:
                        self._peft.load_adapter(str(path), adapter_name=name, is_trainable=False)
            except (ValueError, KeyError, RuntimeError, OSError) as exc:
                first = first_line(exc)
                raise UserError(f"cannot load adapter {path} ({first}); it may be damaged or for another model.") from None
            self._peft.eval()
            self._adapters[run_id] = (name, path.resolve())

    def unload_adapter(self, run_id: str) -> None:
        """Free an adapter's weights; if it was in use, replies go back to the base model."""
        with self._lock:
            name, _ = self._adapters.pop(run_id)
            self._peft.delete_adapter(name)
            if self._adapter == run_id:
                self._adapter = None

    def use_adapter(self, run_id: str | None) -> None:
        """Make later replies use adapter ``run_id`` (None: the base model). No reload, instant."""
        if run_id is not None and run_id not in self._adapters:
            raise UserError(f"adapter {run_id!r} is not loaded; load it first (loaded: {', '.join(self._adapters) or 'none'}).")
        self._adapter = run_id

    def _generation_context(self, run_id: str | None):
        """Under the lock: route the forward pass through ``run_id``'s adapter or none."""
        if self._peft is None:
            return self.model, contextlib.nullcontext()
        if run_id is None or run_id not in self._adapters:  # unloaded since stream() was called
            return self._peft, self._peft.disable_adapter()
        self._peft.set_adapter(self._adapters[run_id][0])
        return self._peft, contextlib.nullcontext()

    # -- generation -------------------------------------------------------------------------------
    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (eos if isinstance(eos, list) else [eos]) + [self.tokenizer.eos_token_id]:
            if isinstance(value, int) and value not in ids:
                ids.append(value)
        return ids

    def prompt_messages(self, messages: list[dict], system_prompt: str | None = None) -> list[dict]:
        """The chat as sent to the template: the system prompt first, then role/content pairs."""
        from engine.runtime.backend import chat_messages

        return chat_messages(self.profile, messages, system_prompt)

    def encode(self, messages: list[dict], system_prompt: str | None = None):
        """Token ids (1 x n tensor) of the chat plus the opening of the assistant's turn."""
        import jinja2

        chat = self.prompt_messages(messages, system_prompt)
        try:
            text = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        except jinja2.TemplateError as exc:
            raise UserError(f"the chat template of {self.model_id!r} rejected this conversation ({exc}); "
                            "set model.chat_template in the profile.") from None
        return self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]

    token_controls = True
    """Replies honour engine serve's logprobs, penalties and logit_bias (``stream(controls=...)``)."""

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def token_text(self) -> TokenText:
        """Each token's text and bytes as OpenAI's logprobs give them (built once)."""
        if self._token_text is None:
            self._token_text = TokenText(self.tokenizer)
        return self._token_text

    def prompt_length(self, messages: list[dict], system_prompt: str | None = None) -> int:
        """Tokens of the prompt ``stream`` would feed the model (engine serve fits replies to the context)."""
        return int(self.encode(messages, system_prompt).shape[1])

    def stream(self, messages: list[dict], params: GenerationParams | None = None,
               system_prompt: str | None = None, *, controls: TokenControls | None = None):
        """Start a reply in a background thread; iterate the returned Generation for text pieces.
        ``controls``: engine serve's logprobs, penalties and logit_bias (engine/runtime/token_controls.py); the
        captured log probabilities are the Generation's ``logprobs``."""
        from engine.runtime.streaming import Generation
        from engine.runtime.token_controls import LogprobCapture, transformers_hooks

        params = (params or GenerationParams.from_profile(self.profile)).checked()
        seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**31)
        system = self.profile.system_prompt if system_prompt is None else system_prompt
        input_ids = self.encode(messages, system)
        run_id = self._adapter
        record = reply_record(self, params, seed, system, int(input_ids.shape[1]))
        kwargs = params.generate_kwargs()
        capture = None
        hooks: dict = {"logits_processors": [], "stopping_criteria": []}
        if controls is not None and controls.active:
            text = self.token_text()
            capture = LogprobCapture(text, controls.top_logprobs) if controls.logprobs else None
            hooks = transformers_hooks(controls, capture, text.special)

        def run(streamer, cancel, started) -> None:
            import torch
            from transformers import LogitsProcessorList, StoppingCriteriaList

            with self._lock:
                started()
                if run_id is not None and run_id not in self._adapters:
                    record["adapter"] = None  # unloaded meanwhile: the reply comes from the base model
                target, context = self._generation_context(run_id)
                ids = input_ids.to(self.model.device)
                torch.manual_seed(seed)
                with context, torch.inference_mode(), _oom_as_user_error(self.model_id):
                    target.generate(
                        input_ids=ids,
                        attention_mask=torch.ones_like(ids),
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([cancel, *hooks["stopping_criteria"]]),
                        logits_processor=LogitsProcessorList(hooks["logits_processors"]),
                        eos_token_id=self._eos or None,
                        pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
                        else (self._eos[0] if self._eos else None),
                        **kwargs,
                    )

        def finish(gen) -> None:
            # a cancel that arrives after the reply already ended (Esc at the last token) stops nothing
            if gen.last_token is not None and gen.last_token in self._eos:
                reason = "stop"
            elif gen.record["completion_tokens"] >= params.max_new_tokens:
                reason = "length"
            else:
                reason = "cancelled" if gen.cancelled else "stop"
            gen.stopped = reason == "cancelled"
            gen.record["stopped"] = gen.stopped
            gen.record["finish_reason"] = reason

        gen = Generation(self.tokenizer, record, run, finish)
        gen.logprobs = capture
        return gen

    def generate(self, messages: list[dict], params: GenerationParams | None = None,
                 system_prompt: str | None = None) -> tuple[str, dict]:
        """The whole reply at once: ``(text, record)``."""
        gen = self.stream(messages, params, system_prompt)
        text = gen.wait()
        return text, gen.record
