"""Revenge: the server core of a self-hosted media server, ready to run as a cluster."""

__version__ = "0.1.0"
