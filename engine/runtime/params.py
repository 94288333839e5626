"""Generation parameters: the profile's [generation] table plus per-call overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.errors import UserError

# The params recorded with every reply (the seed is recorded beside them).
RECORDED = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "do_sample")


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 0
    """0 disables top-k."""
    repetition_penalty: float = 1.0
    do_sample: bool = True
    """False: greedy decoding (temperature, top_p and top_k are then ignored)."""
    seed: int | None = None
    """None draws a fresh seed per reply; the seed used is always recorded."""

    @classmethod
    def from_profile(cls, profile, **overrides) -> "GenerationParams":
        """The profile's generation settings with ``overrides`` applied; None-valued overrides are
        ignored, so CLI flags that were not given can be passed straight through."""
        g = profile.generation
        values = {f.name: getattr(g, f.name) for f in dataclasses.fields(cls)}
        unknown = set(overrides) - set(values)
        if unknown:
            raise TypeError(f"unknown generation parameter(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).checked()

    def replace(self, **changes) -> "GenerationParams":
        return dataclasses.replace(self, **changes).checked()

    def checked(self) -> "GenerationParams":
        """Raise a UserError for values generate() would reject with a traceback."""
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be at least 1, not {self.max_new_tokens}.")
        if self.do_sample and self.temperature < 0:
            raise UserError(f"temperature must be >= 0, not {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], not {self.top_p}.")
        if self.top_k < 0:
            raise UserError(f"top_k must be >= 0 (0 disables it), not {self.top_k}.")
        if self.repetition_penalty <= 0:
            raise UserError(f"repetition_penalty must be > 0, not {self.repetition_penalty}.")
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
        kw = {"max_new_tokens": self.max_new_tokens, "repetition_penalty": self.repetition_penalty}
        if self.greedy:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kw.update(do_sample=True, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or None)
        return kw
