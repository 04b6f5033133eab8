"""
A TCP proxy that a test can cut and restore, to make a real dependency (a
database, an S3 endpoint) disappear and come back while a server uses it.
"""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType

_CHUNK = 65536
# How often the accept loop looks whether it should stop.
_POLL_S = 0.05


class TcpProxy:
    """
    Listens on ``127.0.0.1:<port>`` and forwards each connection to
    ``target``. :meth:`cut` stops listening and drops every open connection,
    so clients see their connections die and new ones refused; :meth:`restore`
    listens on the same port again.
    """

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = 0
        self.connections_accepted = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._accepting: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.listen_host, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stop = threading.Event()
        self._accepting = threading.Thread(
            target=self._accept_loop, args=(listener, self._stop), daemon=True
        )
        self._accepting.start()
        return self

    def cut(self) -> None:
        """Stop listening (new connections are refused) and drop every open connection."""
        self._stop.set()
        if self._accepting is not None:
            self._accepting.join(5)
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            dropping, self._open = self._open, set()
        for connection in dropping:
            _shut(connection)

    def restore(self) -> None:
        """Listen on the same port again."""
        if self._listener is None:
            self.start()

    close = cut

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cut()

    def _accept_loop(self, listener: socket.socket, stop: threading.Event) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            while not stop.is_set():
                if not selector.select(_POLL_S):
                    continue
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                self._forward(client, stop)

    def _forward(self, client: socket.socket, stop: threading.Event) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _shut(client)
            return
        with self._lock:
            if stop.is_set():
                _shut(client)
                _shut(upstream)
                return
            self._open.update((client, upstream))
            self.connections_accepted += 1
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _shut(source)
            _shut(sink)


def _shut(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    connection.close()
