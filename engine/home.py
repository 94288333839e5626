"""Where tuneloop keeps its data: one home directory, laid out as docs/ARCHITECTURE.md says.

Nothing here touches the disk at import time. How files under it are opened and written (0700/0600, atomic, no
link followed) is engine/safe_files.py.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError
from engine.safe_files import _ROOTS, FILE_MODE, ensure_dir, open_beneath, open_dir

HOME_ENV = "TUNELOOP_HOME"

# Names that become path components (profiles, run ids, adapters) must stay inside their folder.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe single path component, else raise a UserError."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise UserError(
            f"{what} {name!r} is not allowed: use letters, digits, '.', '_' and '-' only "
            "(no '/', '..' or leading dot)."
        )
    return name


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("tuneloop", appauthor=False))


@dataclass(frozen=True)
class Home:
    """The data directory. Paths are computed, never created, until ``ensure`` is called."""

    root: Path

    def __post_init__(self) -> None:
        _ROOTS.add(Path(self.root).absolute())

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None) -> "Home":
        """``--home`` wins, then ``$TUNELOOP_HOME``, then the platform's user data dir."""
        if home:
            root = Path(home)
        elif os.environ.get(HOME_ENV):
            root = Path(os.environ[HOME_ENV])
        else:
            root = default_home()
        return cls(root.expanduser().absolute())

    def ensure(self) -> "Home":
        ensure_dir(self.root)
        return self

    def open(self, path: Path | str, flags: int = os.O_RDONLY, mode: int = FILE_MODE, make_dirs: bool = False) -> int:
        """:func:`open_beneath` from this home: no link below the home is followed (LinkRefused)."""
        return open_beneath(self.root, path, flags, mode, make_dirs)

    def check_dir(self, path: Path | str, create: bool = False) -> Path:
        """Refuse (LinkRefused) if any folder from the home down to ``path`` is a link; ``create`` makes
        the missing ones. For folders that libraries then write into (Trainer checkpoints)."""
        os.close(open_dir(self.root, path, create=create))
        return Path(path)

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def profiles_dir(self) -> Path:
        return self.root / "profiles"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def demo_model_dir(self) -> Path:
        return self.models_dir / "demo"

    def feedback_dir(self, profile: str) -> Path:
        return self.root / "feedback" / check_name(profile, "profile name")

    def runs_dir(self, profile: str) -> Path:
        return self.root / "runs" / check_name(profile, "profile name")

    def run_dir(self, profile: str, run_id: str) -> Path:
        return self.runs_dir(profile) / check_name(run_id, "run id")
