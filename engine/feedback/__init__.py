"""The feedback log: append-only events, replay into trees, TRL training rows, import/export, stats.

No torch, transformers or datasets here (the TUI imports this before the model loads).
"""

from engine.feedback.events import InvalidEvent
from engine.feedback.log import FeedbackLog, Snapshot
from engine.feedback.log_lines import parse_bytes
from engine.feedback.read_result import Problem, ReadResult
from engine.feedback.replay import Choice, Conversation, Message, State, replay
from engine.feedback.rows import Row, preference_rows, sft_rows, unpaired_rows

__all__ = [
    "Choice",
    "Conversation",
    "FeedbackLog",
    "InvalidEvent",
    "Message",
    "Problem",
    "ReadResult",
    "Row",
    "Snapshot",
    "State",
    "parse_bytes",
    "preference_rows",
    "replay",
    "sft_rows",
    "unpaired_rows",
]
