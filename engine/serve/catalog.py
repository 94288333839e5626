"""Which model names the server answers to, and which adapter each one means.

Names: the profile's model id (the base model; ``base`` is an alias), every run id with a finished
adapter that can be loaded (a damaged one is refused with why), ``promoted`` (the profile's promoted adapter, read at each request so a promotion by
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

    def problem(self, run_id: str) -> str | None:
        """Why a run's adapter cannot be served (damaged config or weights, a link in its folder), or None."""
        try:
            pointer.read_adapter_config(pointer.adapter_path(self.home, self.profile.name, run_id))
        except UserError as exc:
            return str(exc)
        except OSError as exc:
            return f"its adapter cannot be read ({exc.strerror or exc})"
        return None

    def _promoted(self) -> str | None:
        try:
            return pointer.promoted_run(self.home, self.profile.name)
        except UserError as exc:
            raise APIError(400, str(exc), param="model", code="adapter_unavailable") from None

    def entries(self) -> list[dict]:
        """``/v1/models`` data: the base model and its alias ``base``, each finished adapter that can be
        loaded (a damaged one is left out; asking for it says why), then ``promoted`` and the profile's name."""
        try:
            promoted = self._promoted()
        except APIError:  # a damaged promoted.json: asking for "promoted" says so; the list still answers
            promoted = None
        out = [self._entry(self.base_name, None), self._entry(BASE_ALIAS, None, alias=True)]
        out += [self._entry(run, run, promoted=run == promoted) for run in self.run_ids() if self.problem(run) is None]
        out.append(self._entry(PROMOTED_ALIAS, promoted, alias=True))
        try:
            default = self.resolve(self.profile.name)
        except APIError:  # the default adapter's run was removed (or damaged) while serving
            default = None
        out.append(self._entry(self.profile.name, default, alias=True))
        return out

    @staticmethod
    def _entry(name: str, adapter: str | None, **extra) -> dict:
        return {"id": name, "object": "model", "created": 0, "owned_by": "tuneloop", "adapter": adapter, **extra}

    def entry(self, name: str) -> dict:
        """``/v1/models/{name}``: the model object of any name a request may use (404/400 as ``resolve``)."""
        for item in self.entries():
            if item["id"] == name:
                return item
        adapter = self.resolve(name)
        return self._entry(name, adapter, alias=adapter != name)

    def resolve(self, name: str) -> str | None:
        """The run id the model ``name`` stands for (None: the base model); 404 for an unknown name, 400 for
        an adapter that cannot be loaded (with why)."""
        if name == self.profile.name and name != self.base_name:
            name = self.default
        if name in (self.base_name, BASE_ALIAS, "none"):
            return None
        if name == PROMOTED_ALIAS:
            run = self._promoted()
        elif name in self.run_ids():
            run = name
        else:
            known = [self.base_name, BASE_ALIAS] + self.run_ids() + [PROMOTED_ALIAS, self.profile.name]
            raise APIError(
                404,
                f"the model {name[:200]!r} does not exist here; use one of: {', '.join(known)}.",
                param="model",
                code="model_not_found",
            )
        if run is not None:
            problem = self.problem(run)
            if problem is not None:
                raise APIError(
                    400,
                    f"the adapter of run {run!r} cannot be served: {problem}",
                    param="model",
                    code="adapter_unavailable",
                )
        return run

    def adapter_dir(self, run_id: str):
        """The folder of a finished adapter (UserError if it has gone meanwhile)."""
        from engine.adapters import resolve_adapter

        _, path = resolve_adapter(self.home, self.profile.name, run_id)
        if path is None:
            raise UserError(f"run {run_id!r} has no adapter.")
        return path
