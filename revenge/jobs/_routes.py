"""
``GET /api/v1/jobs`` and ``POST /api/v1/jobs/{name}/run`` (admin; see
docs/jobs.md, "HTTP API").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from revenge.auth import require_admin
from revenge.jobs._ledger import RECENT_RUNS, SUCCESS, recent_runs
from revenge.jobs._outcomes import FENCED, JobBusy, NoFencingTerm, NotLeader, UnknownJob
from revenge.jobs._scheduler import JobScheduler
from revenge.web import ApiError, json_body

if TYPE_CHECKING:
    from revenge.db import Database
    from revenge.web import RevengeApp


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def install_job_routes(app: RevengeApp, database: Database, scheduler: JobScheduler) -> None:
    """Serve the jobs of this node's ``scheduler``."""

    @app.route("/api/v1/jobs")
    async def list_jobs(request: Any) -> bytes:
        await require_admin(database, request)
        jobs = scheduler.jobs
        runs = await database.read(
            lambda connection: recent_runs(connection, [job.name for job in jobs], RECENT_RUNS)
        )
        return json_body(
            request,
            200,
            {
                "jobs": [
                    {
                        "name": job.name,
                        "interval": _seconds(job.interval),
                        "runs": [run.to_json() for run in runs[job.name]],
                    }
                    for job in jobs
                ]
            },
        )

    @app.route("/api/v1/jobs/<name>/run", methods=["POST"])
    async def run_job(request: Any, name: str) -> bytes:
        admin = await require_admin(database, request)
        try:
            report = await scheduler.run_now(name, actor=admin.name)
        except UnknownJob:
            raise ApiError(404, "not_found", f"no job is called {name!r}") from None
        except NotLeader as not_leader:
            # Not forwarded: the caller (or its load balancer) asks the leader.
            return json_body(
                request,
                409,
                {
                    "error": {
                        "code": "not_leader",
                        "message": str(not_leader),
                        "request_id": getattr(request, "request_id", None),
                    },
                    "leader": not_leader.leader,
                },
            )
        except NoFencingTerm as no_term:
            raise ApiError(
                503, "no_fencing_term", str(no_term), headers={b"Retry-After": b"1"}
            ) from None
        except JobBusy as busy:
            raise ApiError(409, "job_running", str(busy)) from None
        if report.result == SUCCESS:
            return json_body(request, 200, report.to_json())
        if report.result == FENCED:
            raise ApiError(
                409, "fenced", "a newer leader has taken over; this node's term is stale"
            )
        raise ApiError(
            500, "job_failed", f"job {name!r} failed; the server log has the details"
        )
