"""Load the chaos pytest plugin for the project's own tests.

Installed, Shoal registers it through the ``pytest11`` entry point
(``shoal_chaos``); in a bare checkout it is registered here, unless that
already happened (registering one module twice is an error in pluggy, which
is why this is not a ``pytest_plugins`` list).
"""
from __future__ import annotations

import pytest

import chaos.pytest_plugin as chaos_plugin


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(chaos_plugin):
        config.pluginmanager.register(chaos_plugin, "shoal_chaos")
