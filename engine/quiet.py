"""Library noise around our own model loads: transformers' "Loading weights" progress bar, its load
report, and deprecation warnings (FutureWarning) from transformers/peft internals. None of it is
something a user can act on, and it lands in the middle of a command's output (`engine score`,
`engine eval`). Scoped: settings are restored when the block ends."""

from __future__ import annotations

import contextlib
import warnings


@contextlib.contextmanager
def quiet_loading():
    """Within the block: no transformers progress bars, only its errors, and no warnings."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
