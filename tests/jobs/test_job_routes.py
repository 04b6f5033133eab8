"""GET /api/v1/jobs and POST /api/v1/jobs/{name}/run on a whole in-process node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest_twisted
from sqlalchemy import insert
from twisted.application.service import MultiService
from twisted.internet import reactor as global_reactor
from twisted.internet.task import Clock

from revenge.db import activity, utc_now
from revenge.jobs import ACTIVITY_CLEANUP, AVATAR_SWEEP, JobScheduler, install_job_routes
from revenge.jobs._ledger import RECENT_RUNS
from revenge.metrics import Metrics
from revenge.testing import eventually
from revenge.web import HealthChecks, RevengeApp, RevengeSite

from .helpers import DEADLINE_S, FakeElection, ProbeJob


async def runs_of(running_server, name: str) -> list[dict[str, Any]]:
    reply = await running_server.call("GET", "/api/v1/jobs", token=running_server.admin_token)
    assert reply.status == 200
    (job,) = [j for j in reply.body["jobs"] if j["name"] == name]
    return job["runs"]


@pytest_twisted.ensureDeferred
async def test_the_jobs_and_their_runs_newest_first(running_server):
    # The standalone node leads from the start and runs both jobs at once.
    async def finished(name: str) -> bool:
        runs = await runs_of(running_server, name)
        return bool(runs) and runs[0]["finished_at"] is not None

    for name in (ACTIVITY_CLEANUP, AVATAR_SWEEP):
        await eventually(
            lambda name=name: finished(name), f"{name}'s first run", timeout=DEADLINE_S
        )
    reply = await running_server.call("GET", "/api/v1/jobs", token=running_server.admin_token)
    jobs = {job["name"]: job for job in reply.body["jobs"]}
    assert set(jobs) == {ACTIVITY_CLEANUP, AVATAR_SWEEP}
    for job in jobs.values():
        assert job["interval"] == 3600
        (run,) = job["runs"]
        assert run["node_id"] == "test-node"
        assert run["result"] == "success"
        assert run["term"] >= 1
        assert run["finished_at"].endswith("Z") and run["started_at"].endswith("Z")
        assert run["period"] == int(datetime.fromisoformat(run["started_at"]).timestamp() // 3600)
    # Newest first, capped.
    scheduler = running_server.server.service.getServiceNamed("scheduler")
    term = scheduler.fencing_term
    now = utc_now()

    def old_runs(connection):
        from revenge.db import job_runs

        connection.execute(
            insert(job_runs),
            [
                {
                    "job": AVATAR_SWEEP,
                    "period": period,
                    "node_id": "elsewhere",
                    "term": term,
                    "started_at": now,
                    "finished_at": now,
                    "result": "success",
                }
                for period in range(1000, 1000 + RECENT_RUNS + 5)
            ],
        )

    await running_server.database.write(old_runs)
    runs = await runs_of(running_server, AVATAR_SWEEP)
    assert len(runs) == RECENT_RUNS
    periods = [run["period"] for run in runs]
    assert periods == sorted(periods, reverse=True)
    assert periods[0] > 1000 + RECENT_RUNS


@pytest_twisted.ensureDeferred
async def test_a_manual_run_on_the_leader(running_server):
    scheduler = running_server.server.service.getServiceNamed("scheduler")
    await eventually(lambda: scheduler.fencing_term, "a fencing term", timeout=DEADLINE_S)
    # The scheduled runs at startup are done; they would take the rows below.
    await scheduler.wait_idle()

    def expired(connection):
        connection.execute(
            insert(activity),
            [
                {
                    "created_at": utc_now() - timedelta(days=91),
                    "action": "test.ancient",
                    "node_id": "x",
                }
                for _ in range(3)
            ],
        )

    await running_server.database.write(expired)
    before = await runs_of(running_server, ACTIVITY_CLEANUP)
    reply = await running_server.call(
        "POST",
        f"/api/v1/jobs/{ACTIVITY_CLEANUP}/run",
        token=running_server.admin_token,
        headers={"X-Request-ID": "manual-cleanup-1"},
    )
    assert reply.status == 200, reply.body
    assert reply.body["result"] == "success"
    assert reply.body["details"]["deleted"] == 3
    assert reply.body["period"] is None
    assert reply.body["request_id"] == "manual-cleanup-1"
    # No ledger row of its own.
    assert await runs_of(running_server, ACTIVITY_CLEANUP) == before
    activity_reply = await running_server.call(
        "GET", "/api/v1/activity", token=running_server.admin_token
    )
    (row,) = [
        r for r in activity_reply.body["activity"] if r["action"] == f"job.{ACTIVITY_CLEANUP}"
    ]
    assert row["request_id"] == "manual-cleanup-1"
    assert row["actor"] == running_server.admin_name
    assert row["details"]["manual"] is True


@pytest_twisted.ensureDeferred
async def test_only_admins_and_only_known_jobs(running_server):
    user = await running_server.add_user("pleb")
    for method, path in (("GET", "/api/v1/jobs"), ("POST", f"/api/v1/jobs/{AVATAR_SWEEP}/run")):
        assert (await running_server.call(method, path)).status == 401
        assert (await running_server.call(method, path, token=user)).status == 403
    reply = await running_server.call(
        "POST", "/api/v1/jobs/no_such_job/run", token=running_server.admin_token
    )
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"


@pytest_twisted.async_yield_fixture
async def follower(running_server) -> AsyncIterator[tuple[str, FakeElection]]:
    """A second node's API (a fake election that follows "leader-node"), same database."""
    metrics = Metrics()
    app = RevengeApp(HealthChecks(global_reactor), metrics)
    election = FakeElection("follower-node")
    election.current_leader = "leader-node"
    service = MultiService()
    scheduler = JobScheduler(
        [ProbeJob()],
        database=running_server.database,
        election=election,
        metrics=metrics,
        node_id="follower-node",
        clock=Clock(),
    )
    scheduler.setServiceParent(service)
    install_job_routes(app, running_server.database, scheduler)
    service.startService()
    site = RevengeSite(app.resource(), metrics, body_limit=app.body_limit)
    port = global_reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port.getHost().port}", election
    finally:
        await port.stopListening()
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_follower_answers_409_naming_the_leader(running_server, follower):
    url, election = follower
    leader_url = running_server.url
    running_server.url = url
    try:
        reply = await running_server.call(
            "POST", "/api/v1/jobs/probe/run", token=running_server.admin_token
        )
        assert reply.status == 409
        assert reply.body["error"]["code"] == "not_leader"
        assert reply.body["leader"] == "leader-node"
        assert "leader-node" in reply.body["error"]["message"]
        assert reply.body["error"]["request_id"] == reply.headers.getRawHeaders(
            "X-Request-ID"
        )[0]
        election.current_leader = None
        reply = await running_server.call(
            "POST", "/api/v1/jobs/probe/run", token=running_server.admin_token
        )
        assert (reply.status, reply.body["leader"]) == (409, None)
        # Reading the ledger works on any node.
        reply = await running_server.call(
            "GET", "/api/v1/jobs", token=running_server.admin_token
        )
        assert reply.status == 200
        assert [job["name"] for job in reply.body["jobs"]] == ["probe"]
    finally:
        running_server.url = leader_url
