"""
The baseline of ``request_id_overhead``: Revenge's Klein app without its wrapper.

``python bench/baseline_server.py`` builds the same ``RevengeApp`` that
``twistd revenge`` serves and serves ``app.resource()`` with a plain
``twisted.web.server.Site`` (no ``RevengeRequest``: no request id, no
structured access log, no HTTP metrics) on a loopback port. It writes one JSON
line, ``{"namespace": "bench.baseline", "port": N}``, once it listens, and runs
until SIGTERM.

Log events are discarded, so the plain ``Site``'s own combined-log line costs
only its formatting: the baseline is the cheapest honest way to serve the app.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import cast

from twisted.internet import reactor as _global_reactor
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IReactorCore
from twisted.python.failure import Failure
from twisted.logger import globalLogBeginner
from twisted.web.server import Site

from revenge.metrics import Metrics
from revenge.web import HealthChecks, RevengeApp


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve RevengeApp with a plain Site.")
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    # Without an observer Twisted would buffer the first events in memory;
    # beginning with none drops them at once.
    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)

    reactor = _global_reactor
    app = RevengeApp(HealthChecks(reactor), Metrics())
    site = Site(app.resource())
    endpoint = TCP4ServerEndpoint(reactor, args.port, interface=args.interface)

    def announce(port: IListeningPort) -> None:
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        sys.stdout.write(json.dumps({"namespace": "bench.baseline", "port": address.port}) + "\n")
        sys.stdout.flush()

    def fail(failure: Failure) -> None:
        sys.stderr.write(f"cannot listen: {failure.getErrorMessage()}\n")
        cast(IReactorCore, reactor).stop()

    endpoint.listen(site).addCallbacks(announce, fail)
    cast(IReactorCore, reactor).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
