"""
One cluster for the chaos package: three ``twistd -n revenge`` nodes electing
with raft, on a fresh PostgreSQL database and a moto S3 bucket, each reached
through a :class:`TcpProxy` the driver cuts to simulate a restart of that
dependency (see harness.py for why not a real restart). Jobs run every 2 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from revenge.db import create_database_engine, upgrade_schema, write_transaction
from revenge.testing import FixedPortCluster, PostgresServer, TcpProxy
from revenge.testing.s3 import moto_server
from revenge.users import create_user

from .harness import INTERVAL_S, Chaos

USERS = 6


@pytest.fixture(scope="package")
def chaos(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Chaos]:
    workdir = Path(tmp_path_factory.mktemp("chaos"))
    url = postgres_server.create_database()
    engine = create_database_engine(url)
    upgrade_schema(engine)
    with write_transaction(engine) as connection:
        admin = create_user(connection, "admin", is_admin=True, node_id="test", actor=None, via="test")
        made = [
            create_user(connection, f"user{i}", is_admin=False, node_id="test", actor=None, via="test")
            for i in range(USERS)
        ]
    people = [{"name": f"user{i}", "token": user.token} for i, user in enumerate(made)]
    parsed = make_url(url)
    with moto_server() as s3, TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432) as pg_proxy:
        s3_host, s3_port = s3.endpoint.removeprefix("http://").split(":")
        with TcpProxy(s3_host, int(s3_port)) as s3_proxy:
            bucket = s3.make_bucket("revenge-chaos")
            proxied_url = parsed.set(host="127.0.0.1", port=pg_proxy.port).render_as_string(
                hide_password=False
            )
            cluster = FixedPortCluster(
                workdir / "nodes",
                env={
                    "REVENGE_DATABASE_URL": proxied_url,
                    "REVENGE_JOBS_CLEANUP_INTERVAL": f"{INTERVAL_S:g}s",
                    "REVENGE_SERVER_SHUTDOWN_GRACE": "20s",
                    "REVENGE_STORAGE_BACKEND": "s3",
                    "REVENGE_STORAGE_S3_ENDPOINT": f"http://127.0.0.1:{s3_proxy.port}",
                    "REVENGE_STORAGE_S3_BUCKET": bucket,
                    "REVENGE_STORAGE_S3_ACCESS_KEY_ID": s3.access_key,
                    "REVENGE_STORAGE_S3_SECRET_ACCESS_KEY": s3.secret_key,
                    "REVENGE_STORAGE_S3_USE_PATH_STYLE": "true",
                },
            )
            for node in cluster.nodes:
                node.token = admin.token
            harness = Chaos(
                cluster,
                engine,
                pg_proxy,
                s3_proxy,
                s3.client(),
                bucket,
                admin.token,
                people,
                workdir,
            )
            try:
                cluster.start()
                harness.wait_all_ready()
                cluster.wait_warm(60)
                yield harness
            finally:
                cluster.stop()
                engine.dispose()
