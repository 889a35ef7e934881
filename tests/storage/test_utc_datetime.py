"""Stored times: fixed-width, zero-padded UTC text that sorts like the instants it names.

The old writer used strftime("%Y…"), which does not pad years below 1000 ("5-06-01…"), and
fromisoformat cannot read that back: every later read of the row failed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from memsvc.storage.schema import UTCDateTime

_TYPE = UTCDateTime()


def _write(value: datetime) -> str:
    text = _TYPE.process_bind_param(value, None)  # type: ignore[arg-type]
    assert text is not None
    return text


def _read(text: str) -> datetime | None:
    return _TYPE.process_result_value(text, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("year", [1, 5, 99, 999, 1000, 1969, 2024, 9999])
def test_every_year_round_trips_at_full_width(year: int) -> None:
    value = datetime(year, 6, 1, 12, 30, 5, 7, tzinfo=UTC)
    text = _write(value)
    assert len(text) == 27 and text.startswith(f"{year:04d}-06-01T12:30:05.000007")
    assert _read(text) == value


def test_the_extremes_round_trip() -> None:
    for value in (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)):
        assert _read(_write(value)) == value


def test_text_order_is_time_order_across_the_whole_range() -> None:
    values = [datetime(y, 1, 1, tzinfo=UTC) for y in (1, 9, 10, 99, 100, 999, 1000, 2024, 9999)]
    assert sorted(values, key=_write) == values


def test_other_offsets_are_stored_as_utc() -> None:
    value = datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert _write(value) == "2024-01-01T00:00:00.000000Z"


def test_rows_written_by_older_versions_still_read() -> None:
    """What the strftime writer left behind for years below 1000."""
    assert _read("5-06-01T00:00:00.000000Z") == datetime(5, 6, 1, tzinfo=UTC)
    assert _read("999-12-31T23:59:59.999999Z") == datetime(999, 12, 31, 23, 59, 59, 999999,
                                                           tzinfo=UTC)
    assert _read("2024-06-01T00:00:00.000000Z") == datetime(2024, 6, 1, tzinfo=UTC)
    assert _read(None) is None  # type: ignore[arg-type]
