"""avatar_sweep: unreferenced objects older than a day go; everything else stays."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
import pytest_twisted
from sqlalchemy import update
from twisted.internet import reactor as global_reactor
from twisted.internet.task import Clock

from revenge.db import Database, users
from revenge.jobs import Fenced, take_office
from revenge.jobs._avatar_sweep import AvatarSweep
from revenge.storage import LocalStorage
from revenge.storage._local import OBJECT_SUFFIX
from revenge.users import create_user

from .helpers import leader_run

DAY = 86400.0

REFERENCED_OLD = "avatars/alice/0123456789abcdef0123456789abcdef"
ORPHAN_OLD = "avatars/bob/00000000000000000000000000000000"
ORPHAN_OLDER = "avatars/alice/ffffffffffffffffffffffffffffffff"
ORPHAN_YOUNG = "avatars/carol/11111111111111111111111111111111"
OUTSIDE_OLD = "media-cache/old-thing"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(str(tmp_path / "storage"), global_reactor)


async def put(storage: LocalStorage, key: str, age: float) -> None:
    await storage.store(key, io.BytesIO(b"\x89PNG fake"), "image/png")
    path = os.path.join(storage.root, *key.split("/")) + OBJECT_SUFFIX
    moment = time.time() - age
    os.utime(path, (moment, moment))


async def point(database: Database, name: str, key: str | None) -> None:
    def write(connection):
        create_user(connection, name, is_admin=False, node_id="test", actor=None, via="test")
        connection.execute(update(users).where(users.c.name == name).values(avatar_key=key))

    await database.write(write)


async def keys(storage: LocalStorage) -> set[str]:
    return {o.key for o in await storage.list("")}


@pytest.fixture
def sweep(storage: LocalStorage) -> AvatarSweep:
    clock = Clock()
    clock.advance(time.time())
    return AvatarSweep(storage=storage, interval=3600, clock=clock)


async def populate(database: Database, storage: LocalStorage) -> None:
    await put(storage, REFERENCED_OLD, 30 * DAY)
    await put(storage, ORPHAN_OLD, DAY + 60)
    await put(storage, ORPHAN_OLDER, 400 * DAY)
    await put(storage, ORPHAN_YOUNG, DAY - 60)
    await put(storage, OUTSIDE_OLD, 30 * DAY)
    await point(database, "alice", REFERENCED_OLD)
    await point(database, "bob", None)


@pytest_twisted.ensureDeferred
async def test_deletes_only_unreferenced_objects_older_than_a_day(database, storage, sweep):
    await populate(database, storage)
    run = await leader_run(database, sweep.name)
    await sweep.run(run)
    assert await keys(storage) == {REFERENCED_OLD, ORPHAN_YOUNG, OUTSIDE_OLD}
    assert run.details == {"listed": 4, "old": 3, "deleted": 2}
    assert run.changed


@pytest_twisted.ensureDeferred
async def test_the_decision_is_taken_again_just_before_each_delete(database, storage, sweep):
    await populate(database, storage)
    run = await leader_run(database, sweep.name)
    # Between the first look and the delete, bob is pointed at the old orphan.
    original_read = run.read

    async def read_then_point(work):
        result = await original_read(work)
        await database.write(
            lambda connection: connection.execute(
                update(users).where(users.c.name == "bob").values(avatar_key=ORPHAN_OLD)
            )
        )
        return result

    run.read = read_then_point  # type: ignore[method-assign]
    await sweep.run(run)
    assert await keys(storage) == {REFERENCED_OLD, ORPHAN_OLD, ORPHAN_YOUNG, OUTSIDE_OLD}
    assert run.details["deleted"] == 1


@pytest_twisted.ensureDeferred
async def test_a_fenced_sweep_deletes_nothing(database, storage, sweep):
    await populate(database, storage)
    stale = await leader_run(database, sweep.name)
    await database.write(lambda connection: take_office(connection, "b", [sweep.name]))
    before = await keys(storage)
    with pytest.raises(Fenced):
        await sweep.run(stale)
    assert await keys(storage) == before
    assert stale.details["deleted"] == 0


@pytest_twisted.ensureDeferred
async def test_an_empty_store_changes_nothing(database, storage, sweep):
    run = await leader_run(database, sweep.name)
    await sweep.run(run)
    assert run.details == {"listed": 0, "old": 0, "deleted": 0}
    assert not run.changed
