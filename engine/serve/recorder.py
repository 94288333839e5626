"""Writes what the server did to the profile's feedback log: the same events as the chat app
(``message``, ``rating``, ``edit``, ``choice``; engine/feedback/events.py), each with ``"source":
"serve"`` (an extra key, allowed by the schema) so the log says where a judgement came from."""

from __future__ import annotations

from dataclasses import dataclass

from engine.feedback.events import new_id
from engine.serve.conversations import ConversationIndex, step
from engine.serve.openai_errors import APIError

SOURCE = "serve"


@dataclass
class CompletionResult:
    """A finished reply as the handler answers it (and as the log has it)."""

    reply_id: str
    conversation_id: str
    text: str
    finish_reason: str  # stop / length (cancelled replies are never answered)
    prompt_tokens: int
    completion_tokens: int
    record: dict
    logprobs: list[dict] | None = None  # OpenAI's logprobs.content entries not yet sent (all, unstreamed)


class Recorder:
    def __init__(self, log, index: ConversationIndex) -> None:
        self.log = log
        self.index = index

    def record(self, job, text: str, generation: dict):
        """Append the request's new turns and the reply in one write (all or nothing)."""
        plan = self.index.plan(job.input.turns)
        conversation = plan.conversation_id or new_id()
        parent = plan.parent_id
        events, keys = [], []
        for turn, key in zip(plan.new_turns, plan.keys):
            mid = new_id()
            events.append(
                {
                    "type": "message",
                    "id": mid,
                    "conversation_id": conversation,
                    "parent_id": parent,
                    "role": turn["role"],
                    "content": turn["content"],
                    "source": SOURCE,
                }
            )
            keys.append((key, mid, turn["role"]))
            parent = mid
        events.append(
            {
                "type": "message",
                "id": job.reply_id,
                "conversation_id": conversation,
                "parent_id": parent,
                "role": "assistant",
                "content": text,
                "generation": generation,
                "source": SOURCE,
            }
        )
        self.log.append_many(events)
        for key, mid, role in keys:
            self.index.add(key, conversation, mid, role)
        # a cut-off reply is not what a client sends back as context: not indexed as a path
        reply_key = None if generation.get("stopped") else step(plan.parent_key, "assistant", text)
        self.index.add(reply_key, conversation, job.reply_id, "assistant")
        reason = generation.get("finish_reason", "stop")
        return CompletionResult(
            job.reply_id,
            conversation,
            text,
            "length" if reason == "length" else "stop",
            int(generation.get("prompt_tokens") or 0),
            int(generation.get("completion_tokens") or 0),
            generation,
        )

    def feedback(self, body) -> list[dict]:
        """The events of one ``/v1/feedback`` request, written in one append."""
        reply_id = body.reply_id.removeprefix("chatcmpl-")
        known = self.index.message(reply_id)
        if known is None:
            self.index.rebuild(self.log)  # the chat app may have written it since the server started
            known = self.index.message(reply_id)
        if known is None:
            raise APIError(
                404,
                f"no reply with id {reply_id!r} in this profile's feedback log.",
                param="reply_id",
                code="reply_not_found",
            )
        if known.role != "assistant":
            raise APIError(
                400, f"message {reply_id!r} is a {known.role} message; judge an assistant reply.", param="reply_id"
            )
        events = []
        if body.rating is not None:
            events.append(
                {
                    "type": "rating",
                    "message_id": reply_id,
                    "value": body.rating,
                    "tags": list(body.tags),
                    "comment": body.comment,
                    "source": SOURCE,
                }
            )
        elif body.tags or body.comment is not None:
            raise APIError(400, "'tags' and 'comment' go with a 'rating'.", param="rating")
        if body.edit is not None:
            events.append({"type": "edit", "message_id": reply_id, "content": body.edit, "source": SOURCE})
        if body.candidates is not None:
            candidates = [c.removeprefix("chatcmpl-") for c in body.candidates]
            if reply_id not in candidates:
                candidates.insert(0, reply_id)
            if len(set(candidates)) != len(candidates):
                raise APIError(400, "'candidates' lists a reply twice.", param="candidates")
            for c in candidates:
                other = self.index.message(c)
                if other is None or other.role != "assistant" or other.conversation_id != known.conversation_id:
                    raise APIError(400, f"candidate {c!r} is not a reply in the same conversation.", param="candidates")
            events.append(
                {"type": "choice", "chosen_id": reply_id, "candidates": candidates, "kind": body.kind, "source": SOURCE}
            )
        if not events:
            raise APIError(400, "give a 'rating', an 'edit' or 'candidates'.", param="rating")
        return self.log.append_many(events)
