"""The scheduler a server runs, built from its configuration."""

from __future__ import annotations

from typing import Any

from revenge.config import Config
from revenge.db import Database
from revenge.election import IElection
from revenge.jobs._activity_cleanup import ActivityCleanup
from revenge.jobs._avatar_sweep import AvatarSweep
from revenge.jobs._job import Job
from revenge.jobs._scheduler import JobScheduler
from revenge.metrics import Metrics
from revenge.storage import IStorage


def create_scheduler(
    config: Config,
    reactor: Any,
    *,
    database: Database,
    election: IElection,
    storage: IStorage,
    metrics: Metrics,
) -> JobScheduler:
    """
    The built-in jobs on their intervals. Both are housekeeping and share
    ``jobs.cleanup.interval``; the sweep has no interval of its own.
    """
    interval = config.jobs.cleanup.interval
    jobs: list[Job] = [
        ActivityCleanup(
            interval=interval,
            retention=config.jobs.cleanup.activity_retention,
            clock=reactor,
            metrics=metrics,
        ),
        AvatarSweep(storage=storage, interval=interval, clock=reactor),
    ]
    return JobScheduler(
        jobs,
        database=database,
        election=election,
        metrics=metrics,
        node_id=config.node_id,
        clock=reactor,
    )
