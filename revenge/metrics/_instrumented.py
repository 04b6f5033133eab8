"""The optional interface of a provider that has metrics of its own."""

from __future__ import annotations

from prometheus_client.registry import CollectorRegistry
from zope.interface import Interface


class IInstrumented(Interface):
    """
    A provider (storage, election, ...) with metrics of its own beyond the
    server's. The server calls :meth:`instrument` once with its registry,
    before serving ``/metrics``; names should start with ``revenge_``.
    """

    def instrument(registry: CollectorRegistry) -> None:
        """Register this provider's collectors in ``registry``."""
