"""The one token estimate of memsvc, for budgets when the target model's tokenizer is unknown.

Used by the context packer (``memsvc.retrievers.context``) and the chat history budget
(``memsvc.serving.prompt_layout.fit_history``). It takes the larger of chars/4 and words*4/3,
which over-counts English and code a little, so a block budgeted with it stays under the
real limit. A caller that has the real tokenizer passes its own ``count_tokens``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["TokenCounter", "estimate_tokens"]

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """A conservative token estimate for English-like text (see the module doc)."""
    if not text:
        return 0
    return max(math.ceil(len(text) / 4), math.ceil(len(text.split()) * 4 / 3))
