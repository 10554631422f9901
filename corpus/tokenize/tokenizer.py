"""sentencepiece BPE tokenizer: training on a text sample, loading once per worker.

Settings chosen so that decode(encode(text)) == text for any Unicode text: identity normalization, no
extra-whitespace removal, no dummy prefix, byte fallback for characters outside the vocabulary.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import sentencepiece as spm

CHAT_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
UNK_ID, BOS_ID, EOS_ID, PAD_ID = 0, 1, 2, 3


class TokenizerError(ValueError):
    pass


TRAIN_THREADS = 4  # fixed: sentencepiece records it in the model, so it must not follow the machine


def train_tokenizer(text_file: str | Path, model_prefix: str | Path, vocab_size: int,
                    character_coverage: float = 0.9995) -> Path:
    """Train a BPE model from a one-sentence-per-line file; returns the .model path.

    The model file embeds the trainer's input and output paths, so training runs in a scratch folder
    with fixed relative names: the same sample then gives a byte-identical model wherever it runs.
    """
    model_prefix = Path(model_prefix).resolve()
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copyfile(text_file, Path(scratch) / "sample.txt")
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            try:
                _train_here(vocab_size, character_coverage)
            except RuntimeError as e:  # a small sample cannot fill a large vocabulary: cap it, as documented
                cap = max_vocab_size(str(e))
                if cap is None:
                    raise TokenizerError(too_small_for_characters(str(e), vocab_size, character_coverage)
                                         or f"sentencepiece could not train a {vocab_size}-token model: {e}") from e
                warnings.warn(f"the tokenizer sample supports at most {cap} tokens: vocab_size {vocab_size} capped "
                              f"to {cap} (more text, or a smaller tokenize.vocab_size, avoids this)", stacklevel=2)
                _train_here(cap, character_coverage)
        finally:
            os.chdir(cwd)
        for suffix in (".model", ".vocab"):
            shutil.copyfile(Path(scratch) / f"tokenizer{suffix}", f"{model_prefix}{suffix}")
    return Path(f"{model_prefix}.model")


def max_vocab_size(message: str) -> int | None:
    """The largest vocabulary sentencepiece says the sample supports, from its "Vocabulary size too high" error."""
    m = re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", message)
    return int(m.group(1)) if m else None


def too_small_for_characters(message: str, vocab_size: int, character_coverage: float) -> str | None:
    """The fix for sentencepiece's "Vocabulary size is smaller than required_chars" (Chinese and Japanese samples
    hold thousands of distinct characters, each its own piece at this coverage), or None for another error."""
    m = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if m is None:
        return None
    chars = int(m.group(2))
    return (f"the tokenizer sample has {chars:,} distinct characters within character_coverage {character_coverage}, "
            f"more than tokenize.vocab_size {vocab_size:,}: raise tokenize.vocab_size well above {chars:,} (Chinese "
            "and Japanese need thousands of single-character pieces, plus room for merges), or lower "
            "tokenize.character_coverage (rarer characters then become byte-fallback tokens, 3 per character)")


def _train_here(vocab_size: int, character_coverage: float) -> None:
    spm.SentencePieceTrainer.train(
        input="sample.txt",
        model_prefix="tokenizer",
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=character_coverage,
        byte_fallback=True,
        user_defined_symbols=CHAT_TOKENS,
        unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        max_sentence_length=1 << 16,
        shuffle_input_sentence=False,  # the sample is already a deterministic selection
        num_threads=TRAIN_THREADS,
        minloglevel=2,
    )


def load_tokenizer(path: str | Path) -> spm.SentencePieceProcessor:
    path = Path(path)
    if not path.exists():
        raise TokenizerError(f"tokenizer model not found: {path}")
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as e:
        raise TokenizerError(f"{path} is not a sentencepiece model: {e}") from e


_WORKER_TOKENIZERS: dict[str, spm.SentencePieceProcessor] = {}


def worker_tokenizer(path: str) -> spm.SentencePieceProcessor:
    """One processor per Python worker and model file."""
    if path not in _WORKER_TOKENIZERS:
        _WORKER_TOKENIZERS[path] = load_tokenizer(path)
    return _WORKER_TOKENIZERS[path]
