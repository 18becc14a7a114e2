"""Keysight InfiniiVision (DSO-X / MSO-X 2000..6000 series) over pyvisa.

Acquisition: ``:SINGle``, then ``:AER?`` is polled until the scope is armed (so a trigger sent
next cannot be missed); completion is polled with ``:OPERegister:CONDition?`` (the Run bit, 8,
clears when the single acquisition is done), then ``*OPC?``. Readout per channel: ``:WAV:SOUR``, ``:WAV:FORM BYTE|WORD``, ``:WAV:BYT LSBF|MSBF``,
``:WAV:UNS 0``, ``:WAV:POIN:MODE RAW``, ``:WAV:POIN MAX``, ``:WAV:PRE?`` and ``:WAV:DATA?``.
The preamble's fields 4..9 are xinc, xorig, xref, yinc, yorig (V), yref, so
volts = (code - yref) * yinc + yorig and t = (i - xref) * xinc + xorig.
"""

from __future__ import annotations

from .base import AcquisitionSettings, Capture
from .visa import WordScope

#: Run bit of the operation status condition register: set while an acquisition is running.
RUN_BIT = 8

_SOURCE = {"CH1": "CHANnel1", "CH2": "CHANnel2", "CH3": "CHANnel3", "CH4": "CHANnel4", "EXT": "EXTernal"}


class KeysightInfiniiVision(WordScope):
    """Keysight InfiniiVision driver (see module doc).

    ``word``: transfer 16-bit words instead of bytes (for high-resolution acquisition modes);
    ``byte_order``: ``"little"`` (LSBFirst) or ``"big"`` for words.
    """

    family = "keysight"


    def configure(self, settings: AcquisitionSettings) -> AcquisitionSettings:
        self.write("*CLS")
        self.write(":STOP")
        for ch, cs in settings.channels.items():
            self.write(f":{_SOURCE[ch]}:DISPlay ON")
            self.write(f":{_SOURCE[ch]}:RANGe {cs.range_v:.9g}")
            self.write(f":{_SOURCE[ch]}:OFFSet {cs.offset_v:.9g}")
        self.write(":TIMebase:MODE MAIN")
        self.write(":TIMebase:REFerence LEFT")
        self.write(f":TIMebase:RANGe {settings.duration_s:.12g}")
        self.write(f":TIMebase:POSition {-settings.pre_trigger_s:.12g}")
        self.write(":ACQuire:TYPE NORMal")
        trig = settings.trigger
        self.write(":TRIGger:MODE EDGE")
        self.write(f":TRIGger:EDGE:SOURce {_SOURCE[trig.source]}")
        self.write(f":TRIGger:EDGE:LEVel {trig.level_v:.6g}")
        self.write(f":TRIGger:EDGE:SLOPe {'POSitive' if trig.slope == 'rising' else 'NEGative'}")
        rate = self.query_float(":ACQuire:SRATe?")
        applied = self.read_back_ranges(settings, lambda ch: f":{_SOURCE[ch]}:RANGe?")
        self.settings = AcquisitionSettings(applied, rate, round(settings.duration_s * rate), settings.pre_trigger_s, trig)
        return self.settings

    def arm(self) -> None:
        self.write(":SINGle")
        self.poll(":AER?", lambda a: a.lstrip("+") == "1", self.timeout_s, "not armed")

    def wait(self, timeout_s: float) -> None:
        self.poll(":OPERegister:CONDition?", lambda a: not int(a) & RUN_BIT, timeout_s, "acquisition not complete: no trigger?")
        super().wait(timeout_s)

    def read(self, channel: str) -> Capture:
        n_bytes = 2 if self.word else 1
        self.write(f":WAVeform:SOURce {_SOURCE[channel]}")
        self.write(f":WAVeform:FORMat {'WORD' if self.word else 'BYTE'}")
        self.write(f":WAVeform:BYTeorder {'LSBFirst' if self.byte_order == 'little' else 'MSBFirst'}")
        self.write(":WAVeform:UNSigned 0")
        self.write(":WAVeform:POINts:MODE RAW")
        self.write(":WAVeform:POINts MAX")
        pre = self.query_fields(":WAVeform:PREamble?", 10)
        points, xinc, xorig, xref, yinc, yorig, yref = int(pre[2]), *pre[4:10]
        codes = self.query_block(":WAVeform:DATA?", bytes_per_point=n_bytes, signed=True, big_endian=self.byte_order == "big", expected=points)
        return self._capture(
            channel,
            codes,
            x_increment_s=xinc,
            x_origin_s=xorig - xref * xinc,
            y_increment_v=yinc,
            y_origin_v=yorig,
            y_reference=yref,
            format="WORD" if self.word else "BYTE",
            byte_order=self.byte_order,
            preamble=pre,
        )
