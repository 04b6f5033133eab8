"""The checks made after a chaos run, each returning what it found for the summary."""

from __future__ import annotations

import datetime
from typing import Any

from revenge.jobs import ACTIVITY_CLEANUP, AVATAR_SWEEP
from revenge.jobs._ledger import SUCCESS

from .harness import Chaos, Fault, overlaps

# The sweep leaves orphans younger than this (docs/design.md: older than a day).
SWEEP_WINDOW_S = 86400.0


def check_ledger(chaos: Chaos, first: int, last: int) -> dict[str, Any]:
    """
    Periods ``first``..``last`` of both jobs: exactly one successful run each
    (the ledger's (job, period) key makes "one" a given; "successful" and "no
    gap" are what is checked), except a period that overlaps an outage:

    - the database cut, from the cut until every node answered ``/readyz``
      200 again (a claim or result write in flight when it was cut cannot
      finish, and the period's later ticks cannot claim it);
    - for ``avatar_sweep`` only, the S3 cut, from the cut until every node
      was ready again (the sweep lists the bucket, so its run fails).

    No scenario here takes every node down at once (tests/jobs/test_cluster.py
    covers the restart of all three); a single node down, killed, paused or
    restarting excuses nothing. An excused period may have no row, or one row of any result; never two
    (impossible by the key). Terms never go down from one period to the next.
    """
    runs = chaos.ledger()
    s3_cuts = [f for f in chaos.faults if f.kind == "s3_cut"]
    found: dict[str, Any] = {}
    for job in (ACTIVITY_CLEANUP, AVATAR_SWEEP):
        windows = [(o.started, o.ended) for o in chaos.outages]
        if job == AVATAR_SWEEP:
            windows += [(f.started, f.ended or f.started) for f in s3_cuts]
        excused = [p for p in range(first, last + 1) if any(overlaps(p, a, b) for a, b in windows)]
        checked = [p for p in range(first, last + 1) if p not in excused]
        missing = [p for p in checked if p not in runs[job]]
        failed = {p: runs[job][p] for p in checked if p in runs[job] and runs[job][p][2] != SUCCESS}
        assert not missing and not failed, (job, missing, failed, excused)
        terms = [runs[job][p][1] for p in sorted(runs[job]) if first <= p <= last]
        assert terms == sorted(terms), (job, terms)
        found[job] = {
            "periods": last - first + 1,
            "checked": len(checked),
            "excused": len(excused),
            "excused_without_success": sum(
                1 for p in excused if runs[job].get(p, ("", 0, None))[2] != SUCCESS
            ),
            "nodes": sorted({runs[job][p][0] for p in checked}),
        }
    return found


def _uncertain(put: dict[str, Any]) -> bool:
    """A PUT whose effect is unknown to the client: no response, or a 5xx."""
    return put["outcome"] != "response" or (put["status"] or 0) >= 500


def check_avatars(chaos: Chaos, requests: list[dict[str, Any]]) -> dict[str, Any]:
    """
    No pointer to a missing object; each user's avatar is the last one the
    client was told was stored (201), unless a later upload's fate is unknown
    to the client; objects nobody points to are only those of uploads that
    did not succeed, or avatars replaced while their deletion could not
    happen (S3 cut, or a replacement whose fate was unknown); none older
    than the sweep window.
    """
    pointers = chaos.avatar_keys()
    listing = chaos.s3_client.list_objects_v2(Bucket=chaos.bucket, Prefix="avatars/")
    assert not listing.get("IsTruncated"), "more objects than one listing; raise the check"
    objects = {item["Key"]: item["LastModified"] for item in listing.get("Contents", [])}

    dangling = {name: key for name, key in pointers.items() if key and key not in objects}
    assert not dangling, f"avatar pointers to missing objects: {dangling}"
    for key in {k for k in pointers.values() if k}:
        chaos.s3_client.head_object(Bucket=chaos.bucket, Key=key)

    s3_cuts = [f for f in chaos.faults if f.kind == "s3_cut"]
    puts: dict[str, list[dict[str, Any]]] = {}
    for r in requests:
        if r["op"] == "avatar_put":
            puts.setdefault(r["user"], []).append(r)
    told: dict[str, str] = {}
    for user, attempts in puts.items():
        stored = [p for p in attempts if p["status"] == 201]
        if not stored:
            continue
        final = stored[-1]
        told[final["key"]] = user
        later_uncertain = [p for p in attempts if p["t0"] > final["t0"] and _uncertain(p)]
        if later_uncertain:
            returned = {p["key"] for p in stored}
            assert pointers[user] == final["key"] or pointers[user] not in returned, (
                user, pointers[user], final["key"]
            )
        else:
            assert pointers[user] == final["key"], (user, pointers[user], final["key"])

    referenced = {k for k in pointers.values() if k}
    orphans = set(objects) - referenced
    returned_by_201 = {
        p["key"]: (user, p) for user, attempts in puts.items() for p in attempts if p["status"] == 201
    }
    assert not orphans & set(told), ("a user's latest stored avatar is unreferenced", orphans & set(told))
    unknown: dict[str, int] = {}
    for key in orphans:
        if key in returned_by_201:
            user, put = returned_by_201[key]
            # Replaced later; its deletion (by the replacing upload) failed.
            replacing = [p for p in puts[user] if p["t0"] > put["t0"]]
            explained = any(_uncertain(p) for p in replacing) or any(
                p["status"] == 201
                and any(p["t0"] <= (f.ended or f.started) and f.started <= p["t1"] for f in s3_cuts)
                for p in replacing
            )
            assert explained, f"replaced avatar {key} left behind with no fault to explain it"
        else:
            user = key.split("/")[1]
            unknown[user] = unknown.get(user, 0) + 1
    for user, count in unknown.items():
        failed = sum(1 for p in puts.get(user, []) if p["status"] != 201)
        assert count <= failed, f"{count} unreferenced objects of {user} but {failed} failed uploads"

    now = datetime.datetime.now(datetime.timezone.utc)
    too_old = [k for k in orphans if (now - objects[k]).total_seconds() > SWEEP_WINDOW_S]
    assert not too_old, too_old
    return {
        "users_with_avatar": sum(1 for k in pointers.values() if k),
        "objects": len(objects),
        "orphans": len(orphans),
        "orphans_of_failed_uploads": sum(unknown.values()),
        "uploads_stored": len(returned_by_201),
        "uploads_failed": sum(1 for a in puts.values() for p in a if p["status"] != 201),
    }


def reset_after_503(request: dict[str, Any], termination: dict[str, Any]) -> bool:
    """
    A connection made after the node's ``/readyz`` went 503 and reset before
    any byte of a response: the kernel had completed the handshake into the
    listen backlog, and closing the listening socket resets what Twisted had
    not accepted yet. For the client that is a refusal, and refusals are
    allowed once ``/readyz`` says 503; it is counted apart.
    """
    return (
        request["node"] == termination["node_index"]
        and request["outcome"] == "lost"
        and not request["response_started"]
        and request["t_connected"] is not None
        and termination["first_503"] is not None
        and termination["first_503"] <= request["t_connected"] <= termination["exited"]
    )


def check_terminations(chaos: Chaos, requests: list[dict[str, Any]]) -> dict[str, Any]:
    """
    For every SIGTERM: the node exited 0; no request to it that connected
    before it exited was lost (but see :func:`reset_after_503`); its
    ``/readyz`` answered 503 before its port refused a connection, and every
    refused load request to it came no earlier than that first 503.
    """
    lost = 0
    resets = 0
    refused_after_503 = 0
    for t in chaos.terminations:
        assert t["exit_code"] == 0, t
        assert t["first_503"] is not None, f"{t['node']}: /readyz never answered 503 while draining"
        assert t["first_refused"] is not None, t
        assert t["first_503"] <= t["first_refused"], t
        mine = [
            r
            for r in requests
            if r["node"] == t["node_index"] and r["t1"] >= t["sigterm"] and r["t0"] <= t["ready_again"]
        ]
        dropped = [
            r
            for r in mine
            if r["outcome"] == "lost"
            and r["t_connected"] is not None
            and r["t_connected"] <= t["exited"]
            and not reset_after_503(r, t)
        ]
        lost += len(dropped)
        resets += sum(1 for r in mine if reset_after_503(r, t))
        assert not dropped, f"{t['node']}: requests accepted before exit were lost: {dropped[:3]} {t}"
        refused = [r for r in mine if r["outcome"] == "refused"]
        early = [r for r in refused if r["t1"] < t["first_503"]]
        assert not early, f"{t['node']}: connections refused before /readyz went 503: {early[:3]}"
        refused_after_503 += len(refused)
    return {
        "sigterms": len(chaos.terminations),
        "lost": lost,
        "refused_after_503": refused_after_503,
        "reset_in_backlog_after_503": resets,
    }


def check_lost_requests(chaos: Chaos, requests: list[dict[str, Any]]) -> int:
    """
    A request lost after connecting is allowed only to a node being SIGKILLed
    or SIGSTOPped, or as a :func:`reset_after_503` of a node being SIGTERMed.
    """
    violent: list[Fault] = [f for f in chaos.faults if f.kind in ("sigkill", "sigstop")]
    names = [n.node_id for n in chaos.cluster.nodes]
    unexplained = [
        r
        for r in requests
        if r["outcome"] == "lost"
        and not any(
            f.target == names[r["node"]] and r["t0"] <= (f.ended or f.started) and f.started <= r["t1"]
            for f in violent
        )
        and not any(reset_after_503(r, t) for t in chaos.terminations)
    ]
    assert not unexplained, f"requests lost outside a SIGKILL/SIGSTOP of their node: {unexplained[:3]}"
    return sum(1 for r in requests if r["outcome"] == "lost")


def check_server_errors(chaos: Chaos, requests: list[dict[str, Any]]) -> int:
    """
    During a rolling restart a 5xx may come only from the node being
    restarted, between its SIGTERM and its ``/readyz`` answering 200 again
    (it listens before its database and storage checks pass, and says so
    with 503); returns how many there were.
    """
    allowed = 0
    for r in requests:
        if (r["status"] or 0) < 500:
            continue
        windows = [
            t for t in chaos.terminations
            if t["node_index"] == r["node"] and t["sigterm"] <= r["t0"] and r["t1"] <= t["ready_again"]
        ]
        assert windows and r["status"] == 503, f"a {r['status']} outside a restart of its node: {r}"
        allowed += 1
    return allowed
