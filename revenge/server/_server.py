"""Assembling one node from its configuration."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import ILogObserver, Logger

from revenge.activity import install_activity_routes
from revenge.avatars import install_avatar_routes, remove_deleted_users_avatar
from revenge.config import Config
from revenge.db import Database, DatabaseService, DatabaseUrlError
from revenge.election import (
    IElection,
    IElectionHealth,
    LeadershipChange,
    install_cluster_routes,
    install_local_cluster_route,
)
from revenge.jobs import (
    FOLLOWER_STORAGE_INTERVAL_S,
    Eligibility,
    create_scheduler,
    install_job_routes,
)
from revenge.media import MediaService, install_media_routes
from revenge.metrics import IInstrumented, Metrics
from revenge.providers import ELECTION_GROUP, STORAGE_GROUP, ProviderError, create_provider
from revenge.server._service import RevengeService
from revenge.storage import IStorage
from revenge.storage._instrumented import InstrumentedStorage
from revenge.users import hint_without_an_admin, install_user_routes
from revenge.web import (
    HealthChecks,
    ListenerService,
    RevengeApp,
    RevengeSite,
    StartupError,
    install_openapi_route,
)

_log = Logger(namespace="revenge.server")


@dataclass
class Server:
    """
    One node's parts, as built by :func:`build_server`. Domain packages
    never see it: each install function is given the parts it uses.
    """

    config: Config
    reactor: Any
    metrics: Metrics
    health: HealthChecks
    app: RevengeApp
    storage: IStorage
    election: IElection
    service: RevengeService
    database: Database
    eligibility: Eligibility


class ElectionService(Service):
    """Runs the election provider for as long as the server runs."""

    name = "election"

    def __init__(self, election: IElection) -> None:
        self._election = election

    def startService(self) -> None:  # noqa: N802 (Twisted's name)
        super().startService()
        maybeDeferred(self._election.start).addErrback(
            lambda failure: _log.failure("election backend failed to start", failure=failure)
        )

    def stopService(self) -> Deferred[None]:  # noqa: N802 (Twisted's name)
        super().stopService()
        return maybeDeferred(self._election.stop)


def _track_election(election: IElection, metrics: Metrics) -> None:
    last_leader: list[str | None] = [None]

    def on_change(change: LeadershipChange) -> None:
        metrics.election_is_leader.set(1 if change.is_leader else 0)
        metrics.election_term.set(change.term)
        metrics.election_has_quorum.set(1 if election.status().get("has_quorum", True) else 0)
        if change.leader != last_leader[0]:
            last_leader[0] = change.leader
            if change.leader is not None:
                metrics.election_leader_changes_total.inc()
        _log.info(
            "leadership: leader={leader} term={term} this node leads: {is_leader}",
            leader=change.leader,
            term=change.term,
            is_leader=change.is_leader,
        )

    election.subscribe(on_change)


def _hint_first_admin(database: Database) -> None:
    # Not chained into `migrated`: whoever else waits for the schema need not
    # wait for the hint.
    ensureDeferred(hint_without_an_admin(database)).addErrback(
        lambda failure: _log.failure("looking for an administrator failed", failure=failure)
    )


def _control_socket(
    config: Config,
    reactor: Any,
    health: HealthChecks,
    metrics: Metrics,
    election: IElection,
    eligibility: Eligibility,
) -> ListenerService:
    """
    The node's control socket (``server.control_socket``): its cluster
    status and health without a token, to this node's user only (mode 0600;
    ``lockfile`` clears a socket file a crashed node left behind).
    """
    path = Path(config.server.control_socket)
    # The data directory may not exist yet on a first start.
    path.parent.mkdir(parents=True, exist_ok=True)
    app = RevengeApp(health, metrics, serve_metrics=False)
    install_local_cluster_route(app, election, eligibility)
    escaped = str(path).replace("\\", "\\\\").replace(":", "\\:")
    return ListenerService(
        reactor,
        f"unix:{escaped}:mode=600:lockfile=1",
        RevengeSite(
            app.resource(), metrics, body_limit=app.body_limit, timeout=config.server.idle_timeout
        ),
        config.server.shutdown_grace,
        "control",
    )


def build_server(
    config: Config,
    reactor: Any,
    *,
    log_observer: ILogObserver | None = None,
    handle_signals: bool = False,
) -> Server:
    """
    Build every part of a node without starting anything. Fails with
    ``StartupError`` (one line) when a provider is missing or broken.
    """
    metrics = Metrics()
    health = HealthChecks(reactor)
    try:
        storage = InstrumentedStorage(
            create_provider(STORAGE_GROUP, config.storage.backend, IStorage, config, reactor),
            metrics,
        )
        election = create_provider(
            ELECTION_GROUP, config.election.backend, IElection, config, reactor
        )
        database = Database.from_url(config.database.url, reactor, config.node_id)
    except (ProviderError, DatabaseUrlError) as error:
        raise StartupError(str(error)) from error
    health.register("database", database.check)
    health.register("storage", storage.check)
    if IElectionHealth.providedBy(election):
        health.register("election", IElectionHealth(election).check)
    if IInstrumented.providedBy(election):
        IInstrumented(election).instrument(metrics.registry)
    _track_election(election, metrics)

    separate_metrics = bool(config.server.metrics_listen)
    app = RevengeApp(health, metrics, serve_metrics=not separate_metrics)
    service = RevengeService(
        reactor, health, log_observer=log_observer, handle_signals=handle_signals
    )
    # First in, last out: everything else may still use the database as it stops.
    database_service = DatabaseService(database, reactor)
    database_service.migrated.addCallback(lambda _: _hint_first_admin(database))
    database_service.setServiceParent(service)
    grace = config.server.shutdown_grace
    linger = config.server.shutdown_linger
    idle_timeout = config.server.idle_timeout
    ListenerService(
        reactor,
        config.server.listen,
        RevengeSite(app.resource(), metrics, body_limit=app.body_limit, timeout=idle_timeout),
        grace,
        "http",
        linger=linger,
    ).setServiceParent(service)
    if separate_metrics:
        metrics_app = RevengeApp(health, metrics, serve_metrics=True)
        ListenerService(
            reactor,
            config.server.metrics_listen,
            RevengeSite(
                metrics_app.resource(),
                metrics,
                body_limit=metrics_app.body_limit,
                timeout=idle_timeout,
            ),
            grace,
            "metrics",
            linger=linger,
        ).setServiceParent(service)
    ElectionService(election).setServiceParent(service)
    # What the leader's work needs, watched: a node that cannot reach it
    # hands leadership over (docs/jobs.md, "Leadership follows the work").
    eligibility = Eligibility(
        {"database": database.check, "storage": storage.check},
        election=election,
        metrics=metrics,
        clock=reactor,
        bound=config.election.step_down_after,
        follower_intervals={"storage": FOLLOWER_STORAGE_INTERVAL_S},
    )
    eligibility.setServiceParent(service)
    # Last in, first out: jobs stop before the election hands leadership over.
    scheduler = create_scheduler(
        config, reactor, database=database, election=election, storage=storage, metrics=metrics
    )
    scheduler.setServiceParent(service)
    if config.server.control_socket:
        _control_socket(config, reactor, health, metrics, election, eligibility).setServiceParent(
            service
        )
    # Last of all, so first to stop: its filesystem threads close (no file is
    # streamed any more) while the jobs, the election and the database run on.
    media = MediaService.from_config(config, reactor)
    for name, check in media.readiness_checks().items():
        health.register(name, check)
    media.setServiceParent(service)

    install_user_routes(app, database, partial(remove_deleted_users_avatar, storage))
    install_avatar_routes(
        app, database, storage, reactor, max_bytes=config.storage.avatar_max_bytes
    )
    install_activity_routes(app, database)
    install_cluster_routes(app, election, database, eligibility)
    install_job_routes(app, database, scheduler)
    install_media_routes(app, database, media, metrics)
    install_openapi_route(app)
    return Server(
        config, reactor, metrics, health, app, storage, election, service, database, eligibility
    )
