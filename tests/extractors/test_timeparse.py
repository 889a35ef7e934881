"""Time expressions resolved against the message's own date (dateparser does the arithmetic)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from memsvc.text.timeparse import find_times

SAID = datetime(2023, 5, 25, 13, 56, tzinfo=UTC)  # a Thursday


def one(text: str, said: datetime = SAID):
    spans = find_times(text, said)
    assert len(spans) == 1, spans
    return spans[0]


@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        ("I went to a support group yesterday.", date(2023, 5, 24), date(2023, 5, 25),
         "24 May 2023"),
        ("I ran a charity race last Saturday.", date(2023, 5, 20), date(2023, 5, 21),
         "20 May 2023"),
        ("I painted it last year!", date(2022, 1, 1), date(2023, 1, 1), "2022"),
        ("We're going camping next month.", date(2023, 6, 1), date(2023, 7, 1), "June 2023"),
        ("I moved here in 2019.", date(2019, 1, 1), date(2020, 1, 1), "2019"),
        ("Last weekend we hiked.", date(2023, 5, 20), date(2023, 5, 22),
         "the weekend of 20 May 2023"),
        ("It happened on 8 May 2023.", date(2023, 5, 8), date(2023, 5, 9), "8 May 2023"),
        ("Last summer we went to Spain.", date(2022, 6, 1), date(2022, 9, 1), "summer 2022"),
        ("I was sick last week.", date(2023, 5, 15), date(2023, 5, 22),
         "the week of 15 May 2023"),
    ],
)
def test_relative_expressions_resolve_against_the_message_date(text, start, end, label):
    span = one(text)
    assert span.start.date() == start
    assert span.end.date() == end
    assert span.label == label
    assert span.start.tzinfo is not None


def test_weeks_ago_is_an_approximate_day():
    span = one("Two weeks ago I got a dog.")
    assert span.start.date() == date(2023, 5, 11)
    assert span.approximate and span.label == "around 11 May 2023"


def test_vague_counts_become_numbers():
    assert one("A few days ago we met.").start.date() == date(2023, 5, 22)
    assert one("A couple of weeks ago I quit.").start.date() == date(2023, 5, 11)


def test_bare_weekday_follows_the_tense():
    assert one("I ran on Saturday.").start.date() == date(2023, 5, 20)
    assert one("I will run on Saturday.").start.date() == date(2023, 5, 27)


def test_the_same_words_on_another_day_resolve_differently():
    later = datetime(2024, 1, 3, tzinfo=UTC)
    assert one("yesterday", later).start.date() == date(2024, 1, 2)


def test_habits_and_plain_numbers_are_not_dates():
    assert find_times("I go swimming on Sundays.", SAID) == []
    assert find_times("I have 3 kids and 2 cats.", SAID) == []
    assert find_times("My code is 4821.", SAID) == []
