"""Build the offline demo model: a tiny random-weight Llama with a BPE tokenizer trained on corpus.txt.

Why it exists: tests, CI and first-time users need a chat model without any download. Its replies are
nonsense (random weights), but it has everything a real chat model has: a byte-level BPE tokenizer,
special tokens, a ChatML chat template with ``{% generation %}`` markers (so TRL's
``assistant_only_loss`` works) and safetensors weights, so the whole loop (chat, feedback, LoRA
training, reward models) runs on it in seconds.

The build is deterministic: the same code gives byte-identical files, so runs and tests are
reproducible. It is atomic: files are written to a temp dir next to the target and renamed into
place, so an interrupted build never leaves a half-written model behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from engine.home import Home
from engine.safe_files import DIR_MODE, FILE_MODE, ensure_dir, fsync_dir

CORPUS = Path(__file__).resolve().parent / "corpus.txt"

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]

VOCAB_SIZE = 1024
SEED = 1234
# ChatML with generation markers around what the assistant writes (content and end token), so a
# trainer can mask everything else. add_generation_prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "chat_template.jinja")


def is_built(target: Path) -> bool:
    """True if ``target`` holds a complete demo model (the rename makes this all or nothing)."""
    return (Path(target) / "model.safetensors").is_file() and (Path(target) / "tokenizer.json").is_file()


def _train_tokenizer():
    """A byte-level BPE trained on the shipped corpus; byte fallback covers any input text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    text = CORPUS.read_text(encoding="utf-8")
    # One "sentence" per paragraph keeps training input stable and order-independent of threads.
    tok.train_from_iterator([p for p in text.split("\n\n") if p.strip()], trainer=trainer)
    return tok


def _wrap_tokenizer(tok):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,
        additional_special_tokens=[IM_START],
        model_max_length=2048,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _unprintable_ids(fast) -> list[int]:
    """Tokens that decode to control characters or to a lone UTF-8 fragment.

    Random weights pick them as often as words; suppressing them in the demo's generation config
    keeps its (nonsense) replies printable in a terminal: no stray escape bytes, no replacement marks.
    """
    bad = []
    for token_id in range(len(fast)):
        if token_id in fast.all_special_ids:
            continue
        text = fast.decode([token_id])
        if "\ufffd" in text or any((ord(c) < 32 and c not in "\n") or ord(c) == 127 for c in text):
            bad.append(token_id)
    return bad


def _make_model(vocab_size: int, pad_id: int, eos_id: int, suppress: list[int]):
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        # Larger than the usual 0.02 so greedy replies vary with the prompt instead of one token.
        initializer_range=0.2,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config)
    # Heads added later (a reward model's score layer) get the usual small init, not the wide one.
    model.config.initializer_range = 0.02
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=None, suppress_tokens=suppress or None
    )
    return model.eval()


def build_demo_model(target: Path) -> Path:
    """Build the demo model into ``target`` (replacing it), atomically; return ``target``."""
    target = Path(target)
    ensure_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        from engine.routed_progress import routed_progress

        tok = _wrap_tokenizer(_train_tokenizer())
        model = _make_model(len(tok), tok.pad_token_id, tok.eos_token_id, _unprintable_ids(tok))
        with routed_progress():
            model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        os.chmod(tmp, DIR_MODE)
        for f in tmp.iterdir():
            os.chmod(f, FILE_MODE)
        old = None
        if target.exists() or target.is_symlink():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        if old is not None:
            if old.is_symlink() or old.is_file():
                old.unlink()
            else:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def ensure_demo_model(home: Home, force: bool = False) -> Path:
    """The demo model's directory in ``home`` (home/models/demo), built first if missing or forced.

    A lock file serialises builders, so a TUI and a CLI starting together build it once.
    """
    import fcntl

    target = home.demo_model_dir
    if not force and (is_built(target) or target.is_symlink()):
        return check_demo_model(home)
    home.check_dir(target.parent, create=True)  # a linked models/ folder is refused, never built into
    try:  # no link followed: a planted .demo.lock (dangling or not) is refused, never created or opened
        fd = home.open(target.parent / ".demo.lock", os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        from engine.safe_files import unwritable

        raise unwritable(exc, target.parent) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if force or not is_built(target):
            build_demo_model(target)
    finally:
        os.close(fd)
    return check_demo_model(home)


_CONFIG_INTS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "max_position_embeddings")


def check_demo_model(home: Home) -> Path:
    """The demo model folder if it is tuneloop's own and readable: no link to it or in it (libraries open its
    files by path), a config whose sizes are numbers, and weights that are whole safetensors; else one
    sentence that says how to rebuild it."""
    import json

    from engine.adapters import check_safetensors
    from engine.errors import UserError
    from engine.safe_files import check_tree, read_bytes

    target = home.demo_model_dir
    check_tree(target, home)
    fix = "rebuild it with `engine demo-model --force`"
    config = target / "config.json"
    try:
        data = json.loads(read_bytes(config, home).decode("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{config} is missing; {fix}.") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise UserError(f"{config} is damaged (not a JSON object); {fix}.")
    for key in _CONFIG_INTS:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"{config} is damaged ('{key}' must be a positive whole number, not {value!r:.40}); {fix}.")
    try:
        check_safetensors(target / "model.safetensors")
    except UserError as exc:
        raise UserError(str(exc).split(";")[0] + f"; {fix}.") from None
    return target
