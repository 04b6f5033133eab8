"""
A transparent userspace delay proxy for the raft links between node processes.

There is no ``sch_netem`` on every kernel, so latency is added in userspace:
nft NAT redirects the raft connections each node opens (matched by the
node's cgroup and the peers' raft addresses) to a listener of this proxy,
which reads where the connection was going (``SO_ORIGINAL_DST``) and connects
there itself. The nodes keep their configured peer addresses, which matters
because pysyncobj identifies peers by address. The proxy runs in the test
process, outside the nodes' cgroups, so its own connections are not
redirected.

Every raft connection between registered nodes goes through the proxy (with
no delay until one is set), so that both what a node sends on connections it
opened and what it sends on connections its peers opened to it can be
delayed. Bytes are delayed per chunk and never reordered: a chunk read at
``t`` is written at ``max(previous write, t + delay)``. One side closing is
passed on only after everything queued before it was delivered; the proxy
never closes a connection a real link would keep.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from revenge.testing._netfaults import (
    NodeCgroup,
    ipv4_or_none,
    new_table_name,
    remove_stale_tables,
    run_nft,
    split_address,
)

# A fixed delay in seconds, or a uniform random range (low, high) drawn per chunk.
Delay = float | tuple[float, float]

SO_ORIGINAL_DST = 80
_CHUNK = 65536
# Chunks queued per direction before the proxy stops reading (backpressure).
_QUEUE_CHUNKS = 256
_CONNECT_TIMEOUT_S = 5.0
_CALL_TIMEOUT_S = 10.0


@dataclass
class _Route:
    name: str
    cgroup: NodeCgroup
    host: str
    port: int
    listener: asyncio.Server | None = None
    listen_port: int = 0


def _check_delay(delay: Delay) -> Delay:
    if isinstance(delay, tuple):
        low, high = float(delay[0]), float(delay[1])
        if not 0 <= low <= high:
            raise ValueError(f"a delay range must be 0 <= low <= high, not {delay!r}")
        return (low, high)
    if delay < 0:
        raise ValueError(f"a delay cannot be negative: {delay!r}")
    return float(delay)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, as a peer whose connection broke would see it."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class DelayProxy:
    """
    Delays what each registered node sends to each other registered node by a
    per-direction :data:`Delay` that the test changes at runtime
    (:meth:`set_delay`, thread-safe). Register every node (:meth:`add_node`)
    and :meth:`start` before the nodes start: NAT only affects new connections.
    """

    def __init__(self, host: str = "127.0.0.1", seed: int | None = None) -> None:
        self.host = host
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._by_address: dict[tuple[str, int], str] = {}
        self._delays: dict[tuple[str, str], Delay] = {}
        self._forwarded: dict[tuple[str | None, str | None], int] = {}
        self._accepted = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.table: str | None = None

    # Configuration.

    def add_node(self, name: str, cgroup: NodeCgroup, raft_address: str) -> None:
        """Send the raft connections ``cgroup``'s processes open to other nodes through here."""
        host, port = split_address(raft_address)
        with self._lock:
            if name in self._routes:
                raise ValueError(f"{name!r} is already added")
            route = _Route(name, cgroup, host, port)
            self._routes[name] = route
            self._by_address[(ipv4_or_none(host) or host, port)] = name
        if self._loop is not None:
            self._call(self._listen(route))
            self._apply_rules()

    def set_delay(self, source: str, delay: Delay, to: Iterable[str] | None = None) -> None:
        """Delay what ``source`` sends to ``to`` (default: every other node) by ``delay`` s."""
        checked = _check_delay(delay)
        with self._lock:
            self._route(source)
            targets = [n for n in self._routes if n != source] if to is None else list(to)
            for target in targets:
                self._route(target)
                self._delays[(source, target)] = checked

    def delay(self, source: str, target: str) -> Delay:
        """The delay now applied to what ``source`` sends to ``target``."""
        with self._lock:
            return self._delays.get((source, target), 0.0)

    def clear_delays(self) -> None:
        """Back to no delay anywhere."""
        with self._lock:
            self._delays.clear()

    @property
    def connections_accepted(self) -> int:
        """How many connections the proxy has carried so far."""
        with self._lock:
            return self._accepted

    def bytes_forwarded(self, source: str, target: str) -> int:
        """How many bytes from ``source`` to ``target`` the proxy has delivered."""
        with self._lock:
            return self._forwarded.get((source, target), 0)

    def _route(self, name: str) -> _Route:
        try:
            return self._routes[name]
        except KeyError:
            raise KeyError(f"{name!r} was not added to the delay proxy") from None

    def _sample(self, source: str | None, target: str | None) -> float:
        if source is None or target is None:
            return 0.0
        with self._lock:
            delay = self._delays.get((source, target), 0.0)
            if isinstance(delay, tuple):
                return self._random.uniform(*delay)
            return delay

    # Lifetime.

    def start(self) -> DelayProxy:
        """Listen for every added node and install the NAT rules."""
        if self._loop is not None:
            return self
        remove_stale_tables()
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="delay-proxy", daemon=True)
        self._thread.start()
        with self._lock:
            routes = list(self._routes.values())
        for route in routes:
            self._call(self._listen(route))
        self.table = new_table_name()
        run_nft(
            f"add table inet {self.table}\n"
            f"add chain inet {self.table} redirects {{ type nat hook output priority -100; }}\n"
        )
        self._apply_rules()
        return self

    def close(self) -> None:
        """Remove the NAT rules, drop every proxied connection and stop the thread."""
        table, self.table = self.table, None
        try:
            if table is not None:
                run_nft(f"delete table inet {table}\n")
        finally:
            loop, self._loop = self._loop, None
            if loop is not None:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_CALL_TIMEOUT_S)
                loop.call_soon_threadsafe(loop.stop)
                if self._thread is not None:
                    self._thread.join(_CALL_TIMEOUT_S)
                    self._thread = None
                loop.close()

    stop = close

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_CALL_TIMEOUT_S)

    def _apply_rules(self) -> None:
        """Replace the redirect rules in one batch: each node's raft connections to its listener."""
        if self.table is None:
            return
        with self._lock:
            routes = list(self._routes.values())
        lines = [f"flush chain inet {self.table} redirects"]
        for source in routes:
            for target in routes:
                if target is source:
                    continue
                host = ipv4_or_none(target.host)
                where = f"ip daddr {host} " if host is not None else ""
                lines.append(
                    f"add rule inet {self.table} redirects {source.cgroup.nft_match} "
                    f"{where}tcp dport {target.port} redirect to :{source.listen_port} "
                    f'comment "{source.name} -> {target.name}"'
                )
        run_nft("\n".join(lines) + "\n")

    async def _listen(self, route: _Route) -> None:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # A task of our own rather than the server's callback task, so that
            # cancelling it on close is not reported as an error by asyncio.
            task = asyncio.ensure_future(self._carry(route.name, route.listen_port, reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        route.listener = await asyncio.start_server(accepted, self.host, 0)
        route.listen_port = route.listener.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        with self._lock:
            routes = list(self._routes.values())
        for route in routes:
            if route.listener is not None:
                route.listener.close()
                route.listener = None
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Carrying one connection.

    async def _carry(
        self,
        source: str,
        listen_port: int,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
    ) -> None:
        self._writers.add(client_writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            sock = client_writer.get_extra_info("socket")
            try:
                raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            except OSError:
                _reset(client_writer)
                return
            port = int.from_bytes(raw[2:4], "big")
            host = socket.inet_ntoa(raw[4:8])
            if port == listen_port and host == self.host:
                _reset(client_writer)  # Not redirected: it came to the proxy itself.
                return
            with self._lock:
                target = self._by_address.get((host, port))
                self._accepted += 1
            try:
                upstream_reader, upstream = await asyncio.wait_for(
                    asyncio.open_connection(host, port), _CONNECT_TIMEOUT_S
                )
            except (OSError, asyncio.TimeoutError):
                _reset(client_writer)  # As close to "refused" as an accepted connection gets.
                return
            upstream_writer = upstream
            self._writers.add(upstream)
            await asyncio.gather(
                self._pipe(client_reader, upstream, client_writer, source, target),
                self._pipe(upstream_reader, client_writer, upstream, target, source),
                return_exceptions=True,
            )
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        source_writer: asyncio.StreamWriter,
        source: str | None,
        target: str | None,
    ) -> None:
        """One direction: read, hold each chunk until its time, write; then pass the close on."""
        loop = asyncio.get_running_loop()
        # (due, chunk); chunk None is the end: (due, None, reset?).
        queue: asyncio.Queue[tuple[float, bytes | None, bool]] = asyncio.Queue(_QUEUE_CHUNKS)

        async def pull() -> None:
            due = 0.0
            reset = False
            try:
                while True:
                    data = await reader.read(_CHUNK)
                    if not data:
                        break
                    due = max(due, loop.time() + self._sample(source, target))
                    await queue.put((due, data, False))
            except OSError:
                reset = True
            due = max(due, loop.time() + self._sample(source, target))
            await queue.put((due, None, reset))

        async def push() -> None:
            while True:
                due, data, reset = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if reset:
                        _reset(sink)
                    elif sink.can_write_eof():
                        sink.write_eof()
                    return
                sink.write(data)
                await sink.drain()
                with self._lock:
                    key = (source, target)
                    self._forwarded[key] = self._forwarded.get(key, 0) + len(data)

        puller = asyncio.ensure_future(pull())
        try:
            await push()
        except OSError:
            # The receiving end broke: the sender learns it as a reset, as it
            # would from a real peer.
            _reset(source_writer)
        finally:
            puller.cancel()
            await asyncio.gather(puller, return_exceptions=True)
