"""pytest options for the rig tests in ``hil/``: ``pytest hil --rig rig.toml`` runs them on a rig
(``--rig sim`` on the simulated one); without ``--rig`` every test marked ``hil`` is skipped."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rig", default=None, help="rig file (rig.toml) or 'sim' for the tests marked hil")
    parser.addoption("--hil-out", default="awgrt-out/hil-pytest", help="where the rig tests write their report")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--rig"):
        return
    skip = pytest.mark.skip(reason="needs a rig: pytest hil --rig rig.toml (or --rig sim)")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rig_spec(request: pytest.FixtureRequest) -> str:
    """The ``--rig`` value."""
    return request.config.getoption("--rig")
