"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utc_now() -> datetime:
    """The current time as an aware UTC datetime, the only kind the schema stores."""
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator[datetime]):
    """
    Aware UTC datetimes in and out, on every dialect.

    PostgreSQL stores ``timestamp with time zone``; SQLite has no time zones
    and hands back naive values, so they are written as UTC and read back
    with UTC attached. Naive datetimes are refused: their meaning is a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("UtcDateTime columns take aware datetimes only")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntegerKey = BigInteger().with_variant(Integer(), "sqlite")
