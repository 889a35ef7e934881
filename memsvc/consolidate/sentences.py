"""Text helpers the summaries, profile and merge steps share, without an LLM.

They live here rather than in `memsvc.text` because they lean on the extractors' sentence
splitter and the retrievers' stopwords, which sit above the text layer.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from memsvc.extractors.statements import split_sentences
from memsvc.text.stopwords import STOPWORDS

WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Bracketed photo notes and "(answering ...)" context a turn may carry: not what it says.
ANNOTATION = re.compile(r"\s*\[[^\]]{0,300}\]|\s*\(answering[^)]{0,300}\)", re.IGNORECASE)
_FILLER = frozenset(
    """wow awesome cool great amazing nice love loved lovely glad happy thanks thank sure yeah
    yes really totally definitely super so much good beautiful gorgeous wonderful fantastic
    hey hi hello oh omg haha lol cute sweet proud incredible stunning""".split()
)


def content_words(text: str) -> frozenset[str]:
    """The words of a text that are not stopwords, casefolded."""
    return frozenset(w for w in WORD.findall(text.casefold()) if w not in STOPWORDS)


def extractive_summary(texts: Sequence[str], limit: int) -> list[str]:
    """The `limit` sentences that best cover what the texts talk about, in their order."""
    return [sentence for _, sentence in pick_sentences(texts, limit)]


def pick_sentences(texts: Sequence[str], limit: int) -> list[tuple[int, str]]:
    """(index of the text it came from, sentence) for the `limit` sentences that best cover
    what the texts talk about, in their original order. Deterministic: ties break by position.

    A sentence scores by the content words it shares with the others — leaving out fillers
    ("wow", "awesome") and words in most sentences (the speakers' names), which say nothing
    about the topic; questions only count when nothing else is left. After each pick its
    words count half, so the picks cover different things.
    """
    sentences: list[str] = []
    origin: list[int] = []
    for index, text in enumerate(texts):
        text = " ".join(ANNOTATION.sub("", text).split())
        speaker, body = "", text
        head, sep, rest = text.partition(": ")
        if sep and len(head) <= 40 and " " not in head.strip():
            speaker, body = f"{head}: ", rest
        for sentence in split_sentences(body):
            sentence = sentence.strip()
            if sentence:
                sentences.append(f"{speaker}{sentence}"[:300])
                origin.append(index)
    words = [
        {w for w in WORD.findall(s.casefold()) if w not in STOPWORDS and w not in _FILLER}
        for s in sentences
    ]
    df = Counter(w for ws in words for w in ws)
    common = {w for w, n in df.items() if len(sentences) >= 4 and n > len(sentences) / 2}
    weight = {w: float(n) for w, n in df.items() if w not in common}
    pool = [
        i for i, (s, ws) in enumerate(zip(sentences, words, strict=True))
        if len(ws - common) >= 3 and not s.rstrip().endswith("?")
    ] or [i for i, ws in enumerate(words) if ws] or list(range(len(sentences)))
    chosen: list[int] = []
    seen: set[str] = set()
    while pool and len(chosen) < limit:
        best = max(
            pool,
            key=lambda i: (
                sum(weight.get(w, 0.0) for w in words[i]) / math.sqrt(len(words[i]) + 1), -i
            ),
        )
        pool.remove(best)
        if sentences[best].casefold() in seen:
            continue
        seen.add(sentences[best].casefold())
        chosen.append(best)
        for w in words[best]:
            if w in weight:
                weight[w] /= 2
    return [(origin[i], sentences[i]) for i in sorted(chosen)]


def profile_line(text: str, limit: int = 200) -> str:
    """A memory as one line: quoted context and photo notes dropped, cut at a word."""
    line = " ".join(ANNOTATION.sub("", text).split())
    if len(line) > limit:
        line = line[:limit].rsplit(" ", 1)[0] + " …"
    return line
