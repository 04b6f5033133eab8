"""Public modules re-export the real implementations (klein style), nothing else."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_MODULES = [
    "revenge.avatars",
    "revenge.cli",
    "revenge.config",
    "revenge.election",
    "revenge.jobs",
    "revenge.logs",
    "revenge.media",
    "revenge.metrics",
    "revenge.storage",
    "revenge.testing",
    "revenge.web",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_names_are_the_private_modules_objects(module_name):
    module = importlib.import_module(module_name)
    assert module.__all__, f"{module_name} exports nothing"
    assert sorted(module.__all__) == sorted(set(module.__all__))
    for name in module.__all__:
        obj = getattr(module, name)
        defined_in = getattr(obj, "__module__", None)
        if defined_in is None:
            continue  # constants: strings, numbers, tuples
        # Defined in a private module of the same package, and the very object.
        assert defined_in.startswith(module_name + "._"), (name, defined_in)
        private = importlib.import_module(defined_in)
        assert getattr(private, name) is obj
