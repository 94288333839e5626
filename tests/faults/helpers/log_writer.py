"""A feedback-log writer process for the concurrency test.

Usage: python log_writer.py HOME PROFILE NAME COUNT

Appends COUNT exchanges: a user message, its assistant reply and a +1 rating in one
``append_many`` (one write), then a lone ``rate`` re-confirming it, each content tagged
``NAME:i`` so the test can check order and integrity per writer.
"""

import sys
import time

from engine.feedback import FeedbackLog
from engine.home import Home

root, profile, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
log = FeedbackLog(Home.resolve(root), profile)
print("ready", flush=True)
sys.stdin.readline()  # start together with the other writer
for i in range(count):
    conv = f"{name}-{i:05d}"
    user = {"type": "message", "id": f"{conv}-u", "conversation_id": conv, "parent_id": None,
            "role": "user", "content": f"{name}:{i} question " + "q" * (i % 97)}
    reply = {"type": "message", "id": f"{conv}-a", "conversation_id": conv, "parent_id": f"{conv}-u",
             "role": "assistant", "content": f"{name}:{i} answer " + "a" * (i % 89),
             "generation": {"system_prompt": "be brief"}}
    rating = {"type": "rating", "id": f"{conv}-r", "message_id": f"{conv}-a", "value": 1, "tags": [], "comment": None}
    log.append_many([user, reply, rating])
    log.rate(f"{conv}-a", 1, tags=[f"{name}:{i}"])
    time.sleep(0.002)  # however fast the disk, the freezer gets to overlap the writers
print("done", flush=True)
