"""
``twistd revenge``: options and ``makeService``, loaded lazily by the dropin.

The reactor is imported inside ``makeService`` only: importing it at module
level would install the default reactor before twistd chose one.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

from twisted.application.service import IService
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.logfile import LogFile

from revenge import __version__
from revenge.config import ConfigError, load_config
from revenge.logs import LOG_FORMATS, LineStream, make_observer
from revenge.web import StartupError

_log = Logger(namespace="revenge.server")


class Options(usage.Options):
    synopsis = "[--config PATH] [--listen ENDPOINT] [--log-format json|text]"
    longdesc = (
        "Run the Revenge server. Configuration comes from the YAML file (default "
        "revenge.yaml when present) overridden by REVENGE_* environment variables; "
        "see docs/configuration.md."
    )
    optParameters = [
        ["config", "c", None, "YAML configuration file (default: ./revenge.yaml if present)."],
        ["listen", "l", None, "Twisted endpoint to serve HTTP on; overrides server.listen."],
        ["log-format", None, "json", "json (one object per line) or text (for terminals)."],
    ]

    def postOptions(self) -> None:  # noqa: N802 (Twisted's name)
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(f"--log-format must be one of: {', '.join(LOG_FORMATS)}")


class _LogFileText:
    """
    Text lines into a rotating ``LogFile``, as twistd keeps its own: a new
    file at 1 MB (the old ones kept as ``.1``, ``.2``, …) and on SIGUSR1. A
    line that cannot be UTF-8 (a lone surrogate from a client's bytes) is
    written with escapes, never dropped.
    """

    def __init__(self, path: str, reactor: Any) -> None:
        self._file = LogFile.fromFullPath(path)
        # twistd installs this for the log file it opens itself; this one is
        # ours, so the handler is too (unless someone else has one).
        if not signal.getsignal(signal.SIGUSR1):
            signal.signal(
                signal.SIGUSR1, lambda *_: reactor.callFromThread(self._file.rotate)
            )

    def write(self, text: str) -> None:
        self._file.write(text.encode("utf-8", "backslashreplace"))

    def flush(self) -> None:
        self._file.flush()


def log_stream(options: usage.Options, reactor: Any) -> LineStream:
    """
    Where the log lines go, by twistd's own rules for its ``--logfile``:
    stdout with ``-n`` (or ``--logfile -``), else the named file, else
    ``twistd.log`` in the working directory, as for any daemon twistd runs.
    Read now, before twistd swaps ``sys.stdout`` for a logging shim.
    """
    twistd = options.parent
    if twistd is None:  # makeService called by code, not by twistd
        return sys.stdout
    if twistd.get("syslog"):
        raise SystemExit(
            "revenge: --syslog is not supported; log to stdout (-n) or to --logfile PATH"
        )
    path = twistd.get("logfile")
    if path == "-":
        if not twistd.get("nodaemon"):
            raise SystemExit(
                "revenge: a daemon cannot log to stdout; give --logfile PATH or run with -n"
            )
        return sys.stdout
    if not path and twistd.get("nodaemon"):
        return sys.stdout
    return _LogFileText(path or "twistd.log", reactor)


def makeService(options: Options) -> IService:  # noqa: N802 (Twisted's name)
    from twisted.internet import reactor

    from revenge.server._server import build_server

    overrides = {}
    if options["listen"]:
        overrides["server.listen"] = options["listen"]
    try:
        config = load_config(options["config"], overrides=overrides)
    except ConfigError as error:
        # One line, non-zero exit, no traceback (twistd prints a SystemExit's text).
        raise SystemExit(f"revenge: {error}") from None
    observer = make_observer(log_stream(options, reactor), config.node_id, options["log-format"])
    try:
        server = build_server(config, reactor, log_observer=observer, handle_signals=True)
    except StartupError as error:
        raise SystemExit(f"revenge: {error}") from None
    _log.info(
        "Revenge {version} starting: node {node_id}, storage {storage}, election {election}",
        version=__version__,
        node_id=config.node_id,
        storage=config.storage.backend,
        election=config.election.backend,
    )
    return IService(server.service)
