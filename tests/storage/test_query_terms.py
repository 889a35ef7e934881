"""A query's FTS5 terms, word by word and remembered (storage/sqlite/lexical.py
`query_terms`), are those the index's tokenizer makes of the query's words together."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from memsvc.storage.sqlite import SQLiteStore, lexical

TEXTS = [
    "When did Caroline go to the LGBTQ support group?",
    "running runners ran; connection connected connecting",
    "Café naïve résumé Zoë's coöperation",
    "x2 2024 3rd H2O e-mail self-care don't",
    "Ärger über Straße ÉCOLE élève",
    "日本語 テキスト 中文",
    "running",  # every word of it seen before: no statement at all
]


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Connection]:
    store = SQLiteStore(tmp_path / "t.db", embedding_dim=4)
    with store.engine.connect() as c:
        c.exec_driver_sql(f"CREATE VIRTUAL TABLE temp.whole USING fts5(text, "
                          f"tokenize='{lexical.TOKENIZE}')")
        c.exec_driver_sql("CREATE VIRTUAL TABLE temp.whole_vocab USING "
                          "fts5vocab(temp, whole, row)")
        yield c
    store.close()


def whole_text_terms(conn: Connection, match: str) -> list[str]:
    """The terms of the words in one row: what query_terms computed before it remembered."""
    words = " ".join(lexical.words_of_match(match))
    conn.exec_driver_sql("DELETE FROM temp.whole")
    conn.exec_driver_sql("INSERT INTO temp.whole(rowid, text) VALUES (1, ?)", (words,))
    return [r[0] for r in conn.exec_driver_sql("SELECT term FROM temp.whole_vocab")]


def test_word_by_word_terms_are_the_whole_texts(conn: Connection,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lexical, "_WORD_TERMS", {})
    for text in TEXTS:
        match = lexical.fts5_match(text)
        expected = whole_text_terms(conn, match)
        assert expected  # the text has terms
        assert lexical.query_terms(conn, match) == expected
        assert lexical.query_terms(conn, match) == expected  # remembered, the same
    assert lexical._WORD_TERMS["running"] == ("run",)


def test_remembered_words_are_dropped_when_too_many(conn: Connection,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lexical, "_WORD_TERMS", {})
    monkeypatch.setattr(lexical, "WORD_TERMS_MAX", 3)
    assert lexical.query_terms(conn, '"rivers" OR "lakes"') == ["lake", "river"]
    assert lexical.query_terms(conn, '"hills" OR "seas"') == ["hill", "sea"]
    assert set(lexical._WORD_TERMS) == {"hills", "seas"}
