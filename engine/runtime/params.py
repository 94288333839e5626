"""Generation parameters: the profile's [generation] table plus per-call overrides (one schema: engine.settings)."""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.settings import SamplingSettings, override, settings_table

# The params recorded with every reply (the seed is recorded beside them).
RECORDED = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "do_sample")


@settings_table
class GenerationParams(SamplingSettings):
    """The per-reply decoding knobs: ``engine.settings.SamplingSettings`` (types, ranges, defaults and docs
    live there, shared with the profile's [generation] table) plus what ``model.generate`` needs."""

    @classmethod
    def from_profile(cls, profile, **overrides) -> "GenerationParams":
        """The profile's generation settings with ``overrides`` applied; None-valued overrides are
        ignored, so CLI flags that were not given can be passed straight through. A bad value is a
        UserError naming the flag (``--max-new-tokens 0 must be an integer >= 1 ...``)."""
        g = profile.generation
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = set(overrides) - set(names)
        if unknown:
            raise TypeError(f"unknown generation parameter(s): {', '.join(sorted(unknown))}")
        return override(cls(**{k: getattr(g, k) for k in names}), overrides)

    def replace(self, **changes) -> "GenerationParams":
        return override(self, changes, name=lambda key: key)

    def checked(self) -> "GenerationParams":
        """Kept for callers of the old API: the schema already checked every value on construction."""
        return self

    @property
    def greedy(self) -> bool:
        """Sampling at temperature 0 is greedy decoding."""
        return not self.do_sample or self.temperature == 0

    def recorded(self) -> dict:
        return {k: getattr(self, k) for k in RECORDED}

    def generate_kwargs(self) -> dict:
        """Keyword arguments for ``model.generate``. Greedy clears the sampling knobs so a model's own
        generation_config (e.g. Qwen's temperature 0.7) does not trigger warnings or leak in."""
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty}
        if self.greedy:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kw.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or None)
        return kw


def reply_record(model, params: GenerationParams, seed: int, system: str | None, prompt_tokens: int,
                 **extra: Any) -> dict:
    """The generation record a reply starts with (every backend's; the streaming code fills in the counts and
    times as it goes): who answered (profile, backend, model, revision, adapter), with what (system prompt, the
    recorded params and seed) and ``extra`` (e.g. llama.cpp's threads)."""
    return {
        "profile": model.profile.name,
        "backend": model.backend,
        "model": model.model_id,
        "revision": model.revision,
        "adapter": model._adapter,
        "system_prompt": system,
        "params": params.recorded(),
        "seed": seed,
        **extra,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 0,
        "ttft_s": None,
        "tokens_per_s": 0.0,
        "elapsed_s": 0.0,
        "stopped": False,
    }
