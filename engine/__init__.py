"""tuneloop's engine: profiles, home, feedback log, model runtime, training, evaluation, CLI.

Importing ``engine`` (and ``engine.profiles``, ``engine.feedback``) never imports torch or
transformers; the heavy imports happen inside the functions that need them.

Nothing leaves the machine: before any library is imported, the opt-out switches of every library
that reports usage are set here (huggingface_hub's ``send_telemetry``, which TRL's trainers call in a
background thread on every ``Trainer.__init__``, reads them once at import). They are forced, not
defaulted: a stray ``DISABLE_TELEMETRY=0`` in the environment must not turn reporting back on.
"""

import os as _os

__version__ = "0.1.0"

TELEMETRY_OFF = {
    "HF_HUB_DISABLE_TELEMETRY": "1",  # huggingface_hub.send_telemetry (TRL, transformers, datasets, peft)
    "DISABLE_TELEMETRY": "1",  # the older name the same libraries also read
    "DO_NOT_TRACK": "1",  # https://donottrack.sh, honoured by huggingface_hub and others
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",  # the hub CLI's PyPI version check
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",  # never send a stored hub token with a request we did not ask for
    "WANDB_DISABLED": "true",  # if wandb is installed, the Trainer must not pick it up
    "WANDB_MODE": "disabled",
    "GRADIO_ANALYTICS_ENABLED": "False",
}
_os.environ.update(TELEMETRY_OFF)
