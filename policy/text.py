"""Instruction tokenizers of the builtin backbone: no vocabulary to download or train.

    bytes  1 + the UTF-8 bytes: any text, but long (a plug instruction is ~60 tokens).
    words  lower-cased words (runs of letters and digits) hashed into a fixed number of buckets (CRC-32, stable
           across runs and machines): ~6x fewer tokens, so the backbone's fusion layers cost about half
           (measured in docs/benchmarks.md); a word never seen in training lands in some bucket, as an unknown
           word would.

Both map a batch of strings to ids (b, t) long and mask (b, t) bool, with 0 the pad id and 1 a begin token.
"""

from __future__ import annotations

import re
import zlib
from typing import Literal

import torch
from torch import Tensor

TokenizerKind = Literal["bytes", "words"]
WORD_BUCKETS = 4096  # hash buckets of the words tokenizer (embedding rows); collisions are rare at task vocabularies
_WORD = re.compile(r"[a-z0-9]+")


def tokens_of(kind: TokenizerKind, text: str) -> list[int]:
    """The ids of `text` (begin token first, no padding, not cut)."""
    if kind == "bytes":
        return [1, *(c + 2 for c in text.encode("utf-8"))]
    if kind == "words":
        return [1, *(2 + zlib.crc32(w.encode()) % WORD_BUCKETS for w in _WORD.findall(text.lower()))]
    raise ValueError(f"tokenizer must be 'bytes' or 'words', got {kind!r}")


def vocab_size(kind: TokenizerKind) -> int:
    return 2 + (256 if kind == "bytes" else WORD_BUCKETS)


class Tokenizer:
    """texts → ids (b, max_tokens) long, mask (b, max_tokens) bool; longer texts are cut (training refuses data
    that would be: `rho.policy.data.check_instructions`)."""

    def __init__(self, kind: TokenizerKind, max_tokens: int) -> None:
        vocab_size(kind)  # validates the kind
        self.kind, self.max_tokens = kind, max_tokens
        self.vocab_size = vocab_size(kind)

    def __call__(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        ids = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        for i, text in enumerate(texts):
            toks = tokens_of(self.kind, text)[: self.max_tokens]
            ids[i, : len(toks)] = torch.tensor(toks)
        return ids, ids != 0
