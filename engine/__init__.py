"""tuneloop's engine: profiles, home, feedback log, model runtime, training, evaluation, CLI.

Importing ``engine`` (and ``engine.profiles``, ``engine.feedback``) never imports torch or
transformers; the heavy imports happen inside the functions that need them.
"""

__version__ = "0.1.0"
