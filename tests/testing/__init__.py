"""Tests of the helpers in :mod:`revenge.testing` themselves (network faults, delay proxy)."""
