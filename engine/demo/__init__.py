"""The offline demo model (tiny random-weight Llama + BPE tokenizer), built locally on first use.

No torch at import time: the builder imports it inside its functions.
"""

from engine.demo.build import CHAT_TEMPLATE, build_demo_model, ensure_demo_model, is_built

__all__ = ["CHAT_TEMPLATE", "build_demo_model", "ensure_demo_model", "is_built"]
