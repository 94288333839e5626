"""Which model names the server answers to, and which adapter each one means.

Names: the profile's model id (the base model; ``base`` is an alias), every run id with a finished
adapter, ``promoted`` (the profile's promoted adapter, read at each request so a promotion by
``engine finetune`` takes effect without a restart) and the profile's name (the server's default,
``--adapter``). No torch here.
"""

from __future__ import annotations

from engine import adapters as pointer
from engine.errors import UserError
from engine.serve.openai_errors import APIError

BASE_ALIAS = "base"
PROMOTED_ALIAS = "promoted"


class ModelCatalog:
    def __init__(self, home, profile, default: str | None) -> None:
        """``default``: what the profile's name means: ``promoted``, ``base``/None, or a run id."""
        self.home = home
        self.profile = profile
        self.base_name = profile.model.id
        self.default = default or BASE_ALIAS

    def run_ids(self) -> list[str]:
        return pointer.run_ids(self.home, self.profile.name)

    def entries(self) -> list[dict]:
        """``/v1/models`` data: the base model, each finished adapter, then the two aliases."""

        def entry(name: str, adapter: str | None, **extra) -> dict:
            return {"id": name, "object": "model", "created": 0, "owned_by": "tuneloop", "adapter": adapter, **extra}

        promoted = pointer.promoted_run(self.home, self.profile.name)
        out = [entry(self.base_name, None)]
        out += [entry(run, run, promoted=run == promoted) for run in self.run_ids()]
        out.append(entry(PROMOTED_ALIAS, promoted, alias=True))
        try:
            default = self.resolve(self.profile.name)
        except APIError:  # the default adapter's run was removed while serving
            default = None
        out.append(entry(self.profile.name, default, alias=True))
        return out

    def resolve(self, name: str) -> str | None:
        """The run id the model ``name`` stands for (None: the base model); 404 for an unknown name."""
        if name == self.profile.name and name != self.base_name:
            name = self.default
        if name in (self.base_name, BASE_ALIAS, "none"):
            return None
        if name == PROMOTED_ALIAS:
            return pointer.promoted_run(self.home, self.profile.name)
        if name in self.run_ids():
            return name
        known = [self.base_name] + self.run_ids() + [PROMOTED_ALIAS, self.profile.name]
        raise APIError(
            404,
            f"the model {name!r} does not exist here; use one of: {', '.join(known)}.",
            param="model",
            code="model_not_found",
        )

    def adapter_dir(self, run_id: str):
        """The folder of a finished adapter (UserError if it has gone meanwhile)."""
        from engine.adapters import resolve_adapter

        _, path = resolve_adapter(self.home, self.profile.name, run_id)
        if path is None:
            raise UserError(f"run {run_id!r} has no adapter.")
        return path
