"""What a job is, and the handle a job's body writes through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Connection

from revenge.db import Database
from revenge.jobs._fence import pass_fence

_T = TypeVar("_T")


class RunInterrupted(Exception):
    """The scheduler is stopping: the run ends before its next write."""


class Job(Protocol):
    """A periodic leader-only job: a name, an interval and a body."""

    @property
    def name(self) -> str:
        """Its name in the ledger, metrics, logs and ``/api/v1/jobs``."""

    @property
    def interval(self) -> float:
        """Seconds per period."""

    async def run(self, run: JobRun) -> None:
        """
        Do the work of one run. Every database write goes through
        ``run.write`` (the fence); anything done outside the database (a
        storage delete) is preceded by a ``run.write`` that decides it. Record
        progress in ``run.details`` and set ``run.changed`` once something
        was changed.
        """


async def write_fenced(
    database: Database, job: str, term: int, work: Callable[[Connection], _T]
) -> _T:
    """``work`` in one write transaction that first passes the fence of ``job`` for ``term``."""

    def fenced(connection: Connection) -> _T:
        pass_fence(connection, job, term)
        return work(connection)

    return await database.write(fenced)


class JobRun:
    """
    One run of a job under one fencing term: scheduled (``period`` set, with
    a ledger row) or manual (``period`` None, no ledger row).
    """

    def __init__(
        self,
        *,
        job: str,
        term: int,
        node_id: str,
        period: int | None,
        request_id: str | None,
        database: Database,
        ensure_current: Callable[[], None],
    ) -> None:
        self.job = job
        self.term = term
        self.node_id = node_id
        self.period = period
        self.request_id = request_id
        # Private: a job reaches the database only through write() (the
        # fence) and read().
        self._database = database
        self._ensure_current = ensure_current
        # Written to the run's activity row.
        self.details: dict[str, Any] = {}
        # Whether the run changed anything (then it writes an activity row).
        self.changed = False

    def ensure_current(self) -> None:
        """
        Raise :class:`~revenge.jobs.Fenced` when this node no longer leads
        under this run's term, :class:`RunInterrupted` when it is stopping.
        """
        self._ensure_current()

    async def write(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in one transaction through the fence (see :func:`write_fenced`)."""
        self.ensure_current()
        return await write_fenced(self._database, self.job, self.term, work)

    async def read(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in a read-only transaction (no fence: it changes nothing)."""
        self.ensure_current()
        return await self._database.read(work)
