"""Time expressions in a statement, resolved against the message's own timestamp.

"I went to the support group yesterday", said on 8 May 2023, happened on 7 May 2023: the
memory must say so, or a question asked a year later ("when did Caroline go to the support
group?") has nothing to match. This module finds the expressions (a vocabulary of patterns:
"last Saturday", "two weeks ago", "next month", "in 2022", "8 May 2023") and leaves the date
arithmetic to dateparser, which knows calendars, weekdays and month lengths. What dateparser
does not cover is mapped onto what it does ("a few days ago" → "3 days ago", "last weekend" →
the Saturday before) or, for seasons, computed from a month table.

Each hit becomes a `TimeSpan`: a start, an exclusive end, a granularity, and a label such as
"7 May 2023", "the week of 15 May 2023", "June 2023" or "2022" that the extractor writes into
the memory's text so BM25 and the vector channel both see the resolved date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal

import dateparser

Granularity = Literal["day", "week", "month", "season", "year"]

_NUM = (
    r"(?:\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"a\s+few|a\s+couple\s+of|a\s+couple|couple\s+of|few|several)"
)
_UNIT = r"(?:day|week|month|year)s?"
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MONTH = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|"
    r"december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)"
)
_SEASON = r"(?:summer|winter|spring|fall|autumn)"
_YEAR = r"(?:19|20)\d{2}"

# Order matters: longer, more specific forms first so "8 May 2023" wins over "May".
_PATTERNS: list[tuple[str, str]] = [
    ("date", rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+{_YEAR}\b"),
    ("date", rf"\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+{_YEAR}\b"),
    ("date", r"\b\d{4}-\d{2}-\d{2}\b"),
    ("date", rf"\b{_MONTH}\.?\s+{_YEAR}\b"),
    ("ago", rf"\b{_NUM}\s+{_UNIT}\s+ago\b"),
    ("ahead", rf"\bin\s+{_NUM}\s+{_UNIT}\b"),
    ("weekend", r"\b(?:last|this|next|past)\s+weekend\b"),
    ("season", rf"\b(?:last|this|next|past)\s+{_SEASON}\b"),
    ("relative", rf"\b(?:last|this|next|past)\s+(?:week|month|year|{_WEEKDAY})\b"),
    ("before", rf"\bthe\s+(?:{_WEEKDAY}|week|weekend|day|month)\s+before\b"),
    ("word", r"\b(?:yesterday|today|tonight|tomorrow|last\s+night)\b"),
    ("weekday", rf"\b(?:on\s+)?{_WEEKDAY}s?\b"),
    ("date", rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\b"),
    ("date", rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?\b"),
    ("month", rf"\b(?:in|this|last|next|since|during|early|late|mid)[\s-]+(?:{_MONTH})\b"),
    ("year", rf"\b(?:in|since|during|back\s+in|of|from)\s+{_YEAR}\b"),
    ("year", rf"\b{_YEAR}\b"),
]
_FINDER = re.compile(
    "|".join(f"(?P<{kind}{i}>{pat})" for i, (kind, pat) in enumerate(_PATTERNS)), re.IGNORECASE
)
_KIND_OF_GROUP = {f"{kind}{i}": kind for i, (kind, _) in enumerate(_PATTERNS)}

_VAGUE = [
    (re.compile(r"\ba\s+couple(?:\s+of)?\b|\bcouple\s+of\b", re.I), "2"),
    (re.compile(r"\ba\s+few\b|\bfew\b|\bseveral\b", re.I), "3"),
    (re.compile(r"\ban?\b", re.I), "1"),
]
_FUTURE_CUES = re.compile(
    r"\b(?:will|'ll|going\s+to|gonna|plan(?:ning|s)?\s+to|planning|next|tomorrow|"
    r"upcoming|can't\s+wait|looking\s+forward|hope\s+to|about\s+to|intend)\b",
    re.IGNORECASE,
)
_SEASON_MONTH = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}
_MONTH_NAMES = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]


@dataclass(frozen=True)
class TimeSpan:
    """One resolved time expression: [start, end) in the world, with a readable label."""

    expression: str
    start: datetime
    end: datetime
    granularity: Granularity
    label: str
    approximate: bool = False


def is_future(statement: str) -> bool:
    """Whether the statement talks about what will happen (so "Saturday" is the next one)."""
    return bool(_FUTURE_CUES.search(statement))


def find_times(statement: str, reference: datetime) -> list[TimeSpan]:
    """Every time expression in `statement`, resolved against `reference` (the message time)."""
    future = is_future(statement)
    spans: list[TimeSpan] = []
    for match in _FINDER.finditer(statement):
        group = match.lastgroup
        if group is None:
            continue
        kind = _KIND_OF_GROUP[group]
        expression = match.group(0)
        if kind == "weekday" and not expression.lower().startswith("on ") and expression.endswith(
            "s"
        ):
            continue  # "on Saturdays" is a habit, not a date
        if kind == "year" and not _plausible_year(expression, reference):
            continue
        span = _resolve(kind, expression, reference, future)
        if span is not None:
            spans.append(span)
    return spans


def _plausible_year(expression: str, reference: datetime) -> bool:
    year = int(re.search(r"\d{4}", expression).group(0))  # type: ignore[union-attr]
    return 1950 <= year <= reference.year + 10


def _resolve(kind: str, expression: str, reference: datetime, future: bool) -> TimeSpan | None:
    text = re.sub(r"\s+", " ", expression.strip().lower())
    if kind == "season":
        return _season(expression, text, reference)
    if kind == "weekend":
        return _weekend(expression, text, reference)
    if kind == "before":
        # "the Sunday before" (said now) = last Sunday; "the week before" = last week.
        text = "last " + text.removeprefix("the ").removesuffix(" before")
        if text == "last day":
            text = "yesterday"
        elif text == "last weekend":
            return _weekend(expression, text, reference)
        kind = "relative"
    approximate = False
    if kind in ("ago", "ahead"):
        for pattern, number in _VAGUE:
            new = pattern.sub(number, text, count=1)
            if new != text:
                approximate = approximate or number != "1" or "few" in text
                text = new
                break
    if kind == "weekday":
        text = text.removeprefix("on ")
    if kind in ("month", "year"):
        text = re.sub(r"^(?:in|since|during|back in|of|from|early|late|mid)[\s-]+", "", text)
    prefer = "future" if (future or kind == "ahead") else "past"
    if text.startswith("this "):
        prefer = "current_period"
    parsed = _parse(text, reference.replace(tzinfo=None), prefer)
    if parsed is None:
        return None
    when, period = parsed
    when = when.replace(tzinfo=reference.tzinfo)
    granularity: Granularity = {
        "week": "week", "month": "month", "year": "year"
    }.get(period, "day")  # type: ignore[assignment]
    if kind == "ago" and granularity == "week":
        granularity, approximate = "day", True  # "two weeks ago" names a day, roughly
    return _span(expression, when, granularity, approximate)


@lru_cache(maxsize=4096)
def _parse(text: str, reference: datetime, prefer: str) -> tuple[datetime, str] | None:
    settings = {
        "RELATIVE_BASE": reference,
        "PREFER_DATES_FROM": prefer,
        "PREFER_DAY_OF_MONTH": "first",
        "RETURN_AS_TIMEZONE_AWARE": False,
    }
    parser = dateparser.date.DateDataParser(languages=["en"], settings=settings)
    data = parser.get_date_data(text)
    if data.date_obj is None:
        return None
    return data.date_obj, data.period or "day"


def _span(
    expression: str, when: datetime, granularity: Granularity, approximate: bool
) -> TimeSpan:
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "year":
        start = day.replace(month=1, day=1)
        return TimeSpan(expression, start, start.replace(year=start.year + 1), "year",
                        str(start.year), approximate)
    if granularity == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return TimeSpan(expression, start, end, "month",
                        f"{_MONTH_NAMES[start.month - 1]} {start.year}", approximate)
    if granularity == "week":
        start = day - timedelta(days=day.weekday())
        return TimeSpan(expression, start, start + timedelta(days=7), "week",
                        f"the week of {format_day(start)}", approximate)
    label = ("around " if approximate else "") + format_day(day)
    return TimeSpan(expression, day, day + timedelta(days=1), "day", label, approximate)


def _weekend(expression: str, text: str, reference: datetime) -> TimeSpan | None:
    word = text.split()[0]
    prefer = "future" if word in ("this", "next") else "past"
    parsed = _parse("saturday", reference.replace(tzinfo=None), prefer)
    if parsed is None:
        return None
    saturday = parsed[0].replace(tzinfo=reference.tzinfo, hour=0, minute=0, second=0,
                                 microsecond=0)
    if word == "next" and (saturday - reference.replace(hour=0, minute=0)).days < 2:
        saturday += timedelta(days=7)
    return TimeSpan(expression, saturday, saturday + timedelta(days=2), "week",
                    f"the weekend of {format_day(saturday)}")


def _season(expression: str, text: str, reference: datetime) -> TimeSpan:
    word, season = text.split()[:2]
    first_month = _SEASON_MONTH[season]
    year = reference.year
    # The season of this year that starts at or before now; "last" steps back, "next" on.
    this_start = reference.replace(year=year, month=first_month, day=1, hour=0, minute=0,
                                   second=0, microsecond=0)
    if word == "last" or word == "past":
        start = this_start if this_start + timedelta(days=92) <= reference else (
            this_start.replace(year=year - 1)
        )
    elif word == "next":
        start = this_start if this_start > reference else this_start.replace(year=year + 1)
    else:
        start = this_start
    end_month = first_month + 3
    end = start.replace(year=start.year + (end_month - 1) // 12, month=(end_month - 1) % 12 + 1)
    name = "autumn" if season == "fall" else season
    return TimeSpan(expression, start, end, "season", f"{name} {start.year}")


def format_day(when: datetime) -> str:
    """'7 May 2023': the form LoCoMo-style questions and answers use."""
    return f"{when.day} {_MONTH_NAMES[when.month - 1]} {when.year}"
