"""Project-wide pytest configuration: hypothesis profiles (``ci`` when CI is set), and the options
of the rig tests in ``hil/rigtests``: ``pytest hil --rig rig.toml`` runs them on a rig (``--rig
sim`` on the simulated one); without ``--rig`` every test marked ``hil`` is skipped. (They live
here, outside the packages, so that no test code ships in the wheel.)"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rig", default=None, help="rig file (rig.toml) or 'sim' for the tests marked hil")
    parser.addoption("--hil-out", default="awgrt-out/hil-pytest", help="where the rig tests write their report")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--rig"):
        # one rig: with pytest-xdist every rig test goes to one worker under --dist loadgroup,
        # and the rig fixture takes a lock (hil/rigtests) so that other schedules wait their turn
        for item in items:
            if "hil" in item.keywords:
                item.add_marker(pytest.mark.xdist_group("rig"))
        return
    skip = pytest.mark.skip(reason="needs a rig: pytest hil --rig rig.toml (or --rig sim)")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rig_spec(request: pytest.FixtureRequest) -> str:
    """The ``--rig`` value."""
    return request.config.getoption("--rig")
