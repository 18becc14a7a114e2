"""Rigol DS1000Z series over pyvisa.

The DS1000Z sets its sample rate from memory depth and timebase (rate = depth / (12 divisions x
s/div)). Acquisition: ``:SINGle``, poll ``:TRIGger:STATus?`` until ``WAIT`` (armed), later until
``STOP`` (done), then ``*OPC?``.
Readout in RAW mode as unsigned bytes, in chunks of at most :data:`MAX_CHUNK` points
(``:WAV:STAR`` / ``:WAV:STOP`` / ``:WAV:DATA?``), scaled with ``:WAV:PRE?``:
volts = (code - YORigin - YREFerence) * YINCrement, t = XORigin + i * XINCrement.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import RigConfigError
from .base import AcquisitionSettings, Capture
from .visa import VisaScope

#: Largest number of BYTE points one ``:WAV:DATA?`` returns in RAW mode.
MAX_CHUNK = 250_000
#: Horizontal and vertical divisions on the screen.
H_DIVISIONS = 12
V_DIVISIONS = 8


class RigolDS1000Z(VisaScope):
    """Rigol DS1000Z driver (see module doc). ``chunk_points`` bounds each data transfer."""

    family = "rigol"

    def __init__(self, resource: str, *, chunk_points: int = MAX_CHUNK, **kw: Any) -> None:
        if not 1 <= chunk_points <= MAX_CHUNK:
            raise RigConfigError(f"chunk_points must be in 1..{MAX_CHUNK}, got {chunk_points!r}")
        self.chunk_points = chunk_points
        super().__init__(resource, **kw)

    def configure(self, settings: AcquisitionSettings) -> AcquisitionSettings:
        self.write("*CLS")
        self.write(":STOP")
        for ch, cs in settings.channels.items():
            n = ch[-1]
            self.write(f":CHANnel{n}:DISPlay ON")
            self.write(f":CHANnel{n}:SCALe {cs.range_v / V_DIVISIONS:.9g}")
            self.write(f":CHANnel{n}:OFFSet {-cs.offset_v:.9g}")
        self.write(f":ACQuire:MDEPth {settings.n_points}")
        self.write(f":TIMebase:MAIN:SCALe {settings.duration_s / H_DIVISIONS:.12g}")
        self.write(f":TIMebase:MAIN:OFFSet {settings.duration_s / 2 - settings.pre_trigger_s:.12g}")
        trig = settings.trigger
        source = "EXT" if trig.source == "EXT" else f"CHANnel{trig.source[-1]}"
        self.write(":TRIGger:MODE EDGE")
        self.write(f":TRIGger:EDGe:SOURce {source}")
        self.write(f":TRIGger:EDGe:LEVel {trig.level_v:.6g}")
        self.write(f":TRIGger:EDGe:SLOPe {'POSitive' if trig.slope == 'rising' else 'NEGative'}")
        rate = self.query_float(":ACQuire:SRATe?")
        points = int(self.query_float(":ACQuire:MDEPth?"))
        applied = self.read_back_ranges(settings, lambda ch: f":CHANnel{ch[-1]}:SCALe?", V_DIVISIONS)
        self.settings = AcquisitionSettings(applied, rate, points, settings.pre_trigger_s, trig)
        return self.settings

    def arm(self) -> None:
        self.write(":SINGle")
        self.poll(":TRIGger:STATus?", lambda a: a.upper() in ("WAIT", "TD", "STOP"), self.timeout_s, "not armed")

    def wait(self, timeout_s: float) -> None:
        self.poll(":TRIGger:STATus?", lambda a: a.upper() == "STOP", timeout_s, "acquisition not complete: no trigger?")
        super().wait(timeout_s)

    def read(self, channel: str) -> Capture:
        self.write(f":WAVeform:SOURce CHANnel{channel[-1]}")
        self.write(":WAVeform:MODE RAW")
        self.write(":WAVeform:FORMat BYTE")
        pre = self.query_fields(":WAVeform:PREamble?", 10)
        points, xinc, xorig, xref, yinc, yorig, yref = int(pre[2]), *pre[4:10]
        chunks = []
        for start in range(1, points + 1, self.chunk_points):
            stop = min(points, start + self.chunk_points - 1)
            self.write(f":WAVeform:STARt {start}")
            self.write(f":WAVeform:STOP {stop}")
            chunks.append(self.query_block(":WAVeform:DATA?", bytes_per_point=1, signed=False, big_endian=False, expected=stop - start + 1))
        codes = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
        return self._capture(
            channel,
            codes,
            x_increment_s=xinc,
            x_origin_s=xorig - xref * xinc,
            y_increment_v=yinc,
            y_origin_v=0.0,
            y_reference=yorig + yref,
            format="BYTE",
            chunks=len(chunks),
            preamble=pre,
        )
