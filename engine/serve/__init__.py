"""``engine serve``: an OpenAI-compatible HTTP server on a profile's model, with a feedback API.

Clients (Open WebUI, aider, Continue, the ``openai`` package) chat through ``/v1/chat/completions``;
every reply is written to the profile's feedback log like a reply in the chat app, and its id comes
back in the response so ``/v1/feedback`` can rate, edit or pick it. See docs/ARCHITECTURE.md
("Serving"). Importing this package is cheap: fastapi, uvicorn and torch load inside functions.
"""
