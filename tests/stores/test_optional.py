"""The optional adapters are found where stores/optional.py says they are."""

from __future__ import annotations

import importlib

import pytest

import majordomo_log as ml
from majordomo_log.stores.optional import OPTIONAL_ADAPTERS, load


@pytest.mark.parametrize("name", sorted(OPTIONAL_ADAPTERS))
def test_each_optional_adapter_loads_from_its_module(name: str) -> None:
    module_name, _, _ = OPTIONAL_ADAPTERS[name]
    adapter = load(name)
    assert adapter is getattr(importlib.import_module(module_name), name)
    assert adapter.__name__ == name and adapter.__module__ == module_name
    assert getattr(ml, name) is adapter
