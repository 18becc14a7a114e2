"""Tektronix MSO 4 / 5 / 6 series over pyvisa.

Acquisition: ``ACQuire:STOPAfter SEQuence`` then ``ACQuire:STATE RUN``; ``TRIGger:STATE?`` is
polled until ``READY`` (armed, so a trigger sent next cannot be missed); ``*OPC?`` returns when
the single sequence is complete. Readout per channel: ``DATa:SOUrce``, ``DATa:ENCdg SRIBinary``
(signed, LSB first) or ``RIBinary`` (signed, MSB first), ``WFMOutpre:BYT_Nr 1|2``,
``DATa:STARt 1``, ``DATa:STOP <record length>``, ``CURVe?``, and the scaling queries
``WFMOutpre:XINcr? XZEro? YMUlt? YZEro? YOFf?``: volts = (code - YOFf) * YMUlt + YZEro and
t = XZEro + i * XINcr. ``HEADer OFF`` keeps answers bare.
"""

from __future__ import annotations

from typing import Any

from ..errors import RigConfigError
from .base import AcquisitionSettings, Capture
from .visa import VisaScope

#: Vertical divisions on the screen (full-scale range = 10 * volts per division).
DIVISIONS = 10


class TektronixMSO(VisaScope):
    """Tektronix MSO 4/5/6 driver (see module doc). ``bytes_per_point``: 1 or 2;
    ``byte_order``: ``"little"`` (SRIBinary) or ``"big"`` (RIBinary)."""

    family = "tektronix"

    def __init__(self, resource: str, *, bytes_per_point: int = 1, byte_order: str = "little", **kw: Any) -> None:
        if bytes_per_point not in (1, 2) or byte_order not in ("little", "big"):
            raise RigConfigError(f"bytes_per_point must be 1 or 2 and byte_order 'little' or 'big', got {bytes_per_point!r}, {byte_order!r}")
        self.bytes_per_point = bytes_per_point
        self.byte_order = byte_order
        super().__init__(resource, **kw)

    def configure(self, settings: AcquisitionSettings) -> AcquisitionSettings:
        self.write("HEADer OFF")
        self.write("*CLS")
        self.write("ACQuire:STATE STOP")
        for ch, cs in settings.channels.items():
            self.write(f"DISplay:GLObal:{ch}:STATE ON")
            self.write(f"{ch}:SCAle {cs.range_v / DIVISIONS:.9g}")
            self.write(f"{ch}:POSition 0")
            self.write(f"{ch}:OFFSet {cs.offset_v:.9g}")
        self.write("HORizontal:MODE MANual")
        self.write(f"HORizontal:MODE:SAMPLERate {settings.sample_rate_hz:.12g}")
        self.write(f"HORizontal:MODE:RECOrdlength {settings.n_points}")
        self.write("HORizontal:DELay:MODe OFF")
        self.write(f"HORizontal:POSition {100.0 * settings.pre_trigger_s / settings.duration_s:.9g}")
        self.write("ACQuire:MODe SAMple")
        trig = settings.trigger
        self.write("TRIGger:A:TYPe EDGE")
        self.write(f"TRIGger:A:EDGE:SOUrce {'AUXiliary' if trig.source == 'EXT' else trig.source}")
        self.write(f"TRIGger:A:LEVel:{'AUXiliary' if trig.source == 'EXT' else trig.source} {trig.level_v:.6g}")
        self.write(f"TRIGger:A:EDGE:SLOpe {'RISe' if trig.slope == 'rising' else 'FALL'}")
        rate = self.query_float("HORizontal:MODE:SAMPLERate?")
        points = int(self.query_float("HORizontal:MODE:RECOrdlength?"))
        applied = self.read_back_ranges(settings, lambda ch: f"{ch}:SCAle?", DIVISIONS)
        self.settings = AcquisitionSettings(applied, rate, points, settings.pre_trigger_s, trig)
        return self.settings

    def arm(self) -> None:
        self.write("ACQuire:STOPAfter SEQuence")
        self.write("ACQuire:STATE RUN")
        self.poll("TRIGger:STATE?", lambda a: a.upper() in ("READY", "TRIGGER", "SAVE"), self.timeout_s, "not armed")

    def read(self, channel: str) -> Capture:
        points = self.settings.n_points if self.settings else int(self.query_float("HORizontal:MODE:RECOrdlength?"))
        self.write(f"DATa:SOUrce {channel}")
        self.write(f"DATa:ENCdg {'SRIBinary' if self.byte_order == 'little' else 'RIBinary'}")
        self.write(f"WFMOutpre:BYT_Nr {self.bytes_per_point}")
        self.write("DATa:STARt 1")
        self.write(f"DATa:STOP {points}")
        scale = {key: self.query_float(f"WFMOutpre:{key}?") for key in ("XINcr", "XZEro", "YMUlt", "YZEro", "YOFf")}
        codes = self.query_block("CURVe?", bytes_per_point=self.bytes_per_point, signed=True, big_endian=self.byte_order == "big", expected=points)
        return self._capture(
            channel,
            codes,
            x_increment_s=scale["XINcr"],
            x_origin_s=scale["XZEro"],
            y_increment_v=scale["YMUlt"],
            y_origin_v=scale["YZEro"],
            y_reference=scale["YOFf"],
            encoding="SRIBinary" if self.byte_order == "little" else "RIBinary",
            bytes_per_point=self.bytes_per_point,
            scaling=scale,
        )
