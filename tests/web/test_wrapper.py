"""Every response goes through the wrapper: ids, JSON errors, access log, metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid

import pytest
import pytest_twisted
import treq

from revenge.web._request import UNMATCHED_ROUTE


def _is_uuid4(value: str) -> bool:
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        return False


async def _json(response):
    return json.loads(await treq.content(response))


@pytest_twisted.ensureDeferred
async def test_healthz_echoes_a_valid_client_id(running_app, captured_log):
    response = await running_app.get("/healthz", headers={"X-Request-ID": "client-id.1:2"})
    assert response.code == 200
    assert await _json(response) == {"status": "ok"}
    assert response.headers.getRawHeaders("X-Request-ID") == ["client-id.1:2"]
    access = captured_log.matching(namespace="revenge.access", request_id="client-id.1:2")
    assert len(access) == 1
    line = access[0]
    assert line["method"] == "GET"
    assert line["route"] == "/healthz"
    assert line["status"] == 200
    assert line["bytes"] > 0
    assert line["duration_ms"] >= 0


@pytest_twisted.ensureDeferred
async def test_invalid_client_id_is_replaced(running_app):
    response = await running_app.get("/healthz", headers={"X-Request-ID": "x" * 129})
    (request_id,) = response.headers.getRawHeaders("X-Request-ID")
    assert _is_uuid4(request_id)
    await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_404_is_json_with_the_request_id(running_app, captured_log):
    response = await running_app.get("/no/such/thing", headers={"X-Request-ID": "nf-1"})
    assert response.code == 404
    assert response.headers.getRawHeaders("Content-Type") == ["application/json"]
    body = await _json(response)
    assert body == {
        "error": {"code": "not_found", "message": "no such resource", "request_id": "nf-1"}
    }
    (line,) = captured_log.matching(namespace="revenge.access", request_id="nf-1")
    # The raw path never becomes a metric label.
    assert line["route"] == UNMATCHED_ROUTE
    sample = running_app.metrics.registry.get_sample_value(
        "revenge_http_requests_total",
        {"method": "GET", "route": UNMATCHED_ROUTE, "status": "404"},
    )
    assert sample == 1.0


@pytest_twisted.ensureDeferred
async def test_405_is_json_and_names_the_allowed_methods(running_app):
    response = await running_app.request("DELETE", "/items/x", headers={"X-Request-ID": "m-1"})
    assert response.code == 405
    assert response.headers.getRawHeaders("X-Request-ID") == ["m-1"]
    allowed = response.headers.getRawHeaders("Allow")[0]
    assert {m.strip() for m in allowed.split(",")} >= {"GET", "PUT"}
    body = await _json(response)
    assert body["error"]["code"] == "method_not_allowed"
    assert body["error"]["request_id"] == "m-1"


@pytest_twisted.ensureDeferred
async def test_api_error_is_json(running_app):
    response = await running_app.get("/teapot")
    assert response.code == 418
    body = await _json(response)
    (request_id,) = response.headers.getRawHeaders("X-Request-ID")
    assert body == {
        "error": {"code": "teapot", "message": "short and stout", "request_id": request_id}
    }


@pytest_twisted.ensureDeferred
async def test_unhandled_exception_is_a_json_500_and_a_logged_traceback(
    running_app, captured_log
):
    for path, rid in (("/boom", "boom-now"), ("/boom-later", "boom-later")):
        response = await running_app.get(path, headers={"X-Request-ID": rid})
        assert response.code == 500
        raw = await treq.content(response)
        assert b"secret internals" not in raw
        assert b"Traceback" not in raw
        assert json.loads(raw) == {
            "error": {
                "code": "internal_error",
                "message": "internal server error",
                "request_id": rid,
            }
        }
        errors = [
            r
            for r in captured_log.matching(request_id=rid, level="critical")
            if "Boom" in r.get("traceback", "")
        ]
        assert len(errors) == 1, captured_log.matching(request_id=rid)
        assert "secret internals" in errors[0]["traceback"]


@pytest_twisted.ensureDeferred
async def test_non_klein_resource_gets_the_id_too(running_app, captured_log):
    ok = await running_app.get("/static/hello", headers={"X-Request-ID": "st-1"})
    assert ok.code == 200
    assert await treq.content(ok) == b"plain twisted resource"
    assert ok.headers.getRawHeaders("X-Request-ID") == ["st-1"]
    missing = await running_app.get("/static/nope", headers={"X-Request-ID": "st-2"})
    assert missing.code == 404
    assert missing.headers.getRawHeaders("X-Request-ID") == ["st-2"]
    await treq.content(missing)
    (line,) = captured_log.matching(namespace="revenge.access", request_id="st-1")
    assert line["route"] == "/static/"


@pytest_twisted.ensureDeferred
async def test_route_label_is_the_template(running_app):
    for name in ("a", "b", "c"):
        response = await running_app.get(f"/items/{name}")
        assert await treq.content(response) == name.encode()
    sample = running_app.metrics.registry.get_sample_value(
        "revenge_http_requests_total",
        {"method": "GET", "route": "/items/<name>", "status": "200"},
    )
    assert sample == 3.0
    count = running_app.metrics.registry.get_sample_value(
        "revenge_http_request_duration_seconds_count",
        {"method": "GET", "route": "/items/<name>"},
    )
    assert count == 3.0


@pytest_twisted.ensureDeferred
async def test_metrics_route_serves_prometheus_text(running_app):
    await treq.content(await running_app.get("/healthz"))
    response = await running_app.get("/metrics")
    assert response.code == 200
    assert response.headers.getRawHeaders("Content-Type")[0].startswith("text/plain")
    assert response.headers.getRawHeaders("X-Request-ID")
    text = (await treq.content(response)).decode()
    assert 'revenge_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    for name in (
        "revenge_election_is_leader",
        "revenge_job_runs_total",
        "revenge_storage_operations_total",
        "revenge_activity_rows_deleted_total",
    ):
        assert f"# TYPE {name}" in text


@pytest_twisted.ensureDeferred
async def test_readyz_names_the_failing_check_and_recovers(running_app):
    state = {"up": True}

    async def flaky() -> None:
        if not state["up"]:
            raise RuntimeError("backend down")

    running_app.health.register("flaky", flaky)
    ok = await running_app.get("/readyz")
    assert ok.code == 200
    assert (await _json(ok))["checks"] == ["flaky"]
    state["up"] = False
    down = await running_app.get("/readyz")
    assert down.code == 503
    assert await _json(down) == {"status": "unavailable", "failing": ["flaky"]}
    state["up"] = True
    again = await running_app.get("/readyz")
    assert again.code == 200
    await treq.content(again)


@pytest_twisted.ensureDeferred
async def test_readyz_is_503_while_draining_and_healthz_stays_200(running_app):
    running_app.health.start_draining()
    response = await running_app.get("/readyz")
    assert response.code == 503
    assert await _json(response) == {"status": "draining"}
    health = await running_app.get("/healthz")
    assert health.code == 200
    await treq.content(health)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/no/such/route", "/boom"])
async def test_answers_about_now_are_not_stored_by_caches(running_app, path):
    response = await running_app.get(path)
    await treq.content(response)
    assert response.headers.getRawHeaders("Cache-Control") == ["no-store"]


@pytest_twisted.ensureDeferred
async def test_a_static_file_keeps_caching_its_own_way(running_app):
    # Not JSON, not the API: nothing is added to what the resource says.
    response = await running_app.get("/static/")
    await treq.content(response)
    assert response.headers.getRawHeaders("Cache-Control") is None


@pytest_twisted.ensureDeferred
async def test_the_metrics_page_passes_promtool(running_app):
    # Prometheus' own linter (Debian's prometheus package; .ci/run installs
    # it) over a live scrape: names, help texts, types, counter suffixes.
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    await treq.content(await running_app.get("/healthz"))
    text = await treq.content(await running_app.get("/metrics"))
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
    assert b"revenge_http_requests_total" in text
