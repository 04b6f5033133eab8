"""The request id reaches log lines across Deferred callbacks and thread-pool hops."""

from __future__ import annotations

import pytest_twisted
import treq


@pytest_twisted.ensureDeferred
async def test_id_follows_a_deferred_chain(running_app, captured_log):
    response = await running_app.get("/chain", headers={"X-Request-ID": "chain-1"})
    assert await treq.content(response) == b"chained"
    messages = [r["message"] for r in captured_log.matching(request_id="chain-1")]
    assert "chain: before" in messages
    assert "chain: in callback" in messages


@pytest_twisted.ensureDeferred
async def test_id_follows_into_the_thread_pool_and_back(running_app, captured_log):
    response = await running_app.get("/thread", headers={"X-Request-ID": "thread-1"})
    assert await treq.content(response) == b"from thread"
    records = captured_log.matching(request_id="thread-1")
    messages = [r["message"] for r in records]
    assert "thread: in worker" in messages
    assert "thread: back on reactor" in messages


@pytest_twisted.ensureDeferred
async def test_concurrent_requests_keep_their_own_ids(running_app, captured_log):
    from twisted.internet.defer import gatherResults

    ids = [f"par-{n}" for n in range(8)]
    responses = await gatherResults(
        [running_app.get("/thread", headers={"X-Request-ID": i}) for i in ids]
    )
    for response in responses:
        await treq.content(response)
    for request_id in ids:
        worker = [
            r
            for r in captured_log.matching(request_id=request_id)
            if r["message"] == "thread: in worker"
        ]
        assert len(worker) == 1
    # No line of those requests went out without its id.
    orphan = [
        r
        for r in captured_log.records
        if r["message"].startswith("thread:") and "request_id" not in r
    ]
    assert orphan == []
