"""Scope drivers over pyvisa behind one interface (:class:`Scope`), picked by family name.

>>> scope = open_scope("keysight", "TCPIP0::192.168.1.20::inst0::INSTR")   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..errors import RigConfigError
from .base import CHANNELS, TRIGGER_SOURCES, AcquisitionSettings, Capture, ChannelSettings, Scope, TriggerSettings
from .keysight import KeysightInfiniiVision
from .lecroy import LeCroyMAUI
from .rigol import RigolDS1000Z
from .rohde import RohdeSchwarzRT
from .tektronix import TektronixMSO
from .visa import VisaScope, open_resource

#: Driver class per family name (the ``model`` of a rig file's ``[scope]``).
DRIVERS: dict[str, type[VisaScope]] = {
    "keysight": KeysightInfiniiVision,
    "tektronix": TektronixMSO,
    "rigol": RigolDS1000Z,
    "rohde": RohdeSchwarzRT,
    "lecroy": LeCroyMAUI,
}


def open_scope(family: str, resource: str, **options: Any) -> VisaScope:
    """Open the scope at VISA ``resource`` with the driver of ``family``; ``options`` go to the
    driver (``timeout_s``, ``backend``, byte order and word size where the family has them)."""
    try:
        cls = DRIVERS[family]
    except KeyError:
        raise RigConfigError(f"unknown scope family {family!r} (known: {', '.join(DRIVERS)})", value=family) from None
    return cls(resource, **options)


__all__ = [
    "CHANNELS",
    "DRIVERS",
    "TRIGGER_SOURCES",
    "AcquisitionSettings",
    "Capture",
    "ChannelSettings",
    "KeysightInfiniiVision",
    "LeCroyMAUI",
    "RigolDS1000Z",
    "RohdeSchwarzRT",
    "Scope",
    "TektronixMSO",
    "TriggerSettings",
    "VisaScope",
    "open_resource",
    "open_scope",
]
