"""Rohde & Schwarz RTB2000 / RTM3000 (and the RTx family's shared command set) over pyvisa.

Confirmed from the RTB2000 / RTM3000 user manuals (remote control chapter, reading waveform
data): ``FORMat[:DATA] UINTeger,8 | UINTeger,16`` (unsigned binary, definite-length block;
``REAL,32`` also exists but gives volts, not codes), ``FORMat:BORDer LSBFirst | MSBFirst``,
``CHANnel<m>:DATA?``, ``CHANnel<m>:DATA:HEADer?`` (x start, x stop, record length, values per
sample), ``CHANnel<m>:DATA:XORigin? | XINCrement? | YORigin? | YINCrement?``, and the conversion
volts = YORigin + YINCrement * code, t = XORigin + n * XINCrement (n from 0); the screen centre
is code 127.5 in UINT,8.

Assumed from the family's SCPI style, to be confirmed on the rig: ``CHANnel<m>:STATe``,
``:RANGe`` (full-scale volts), ``:OFFSet``, ``TIMebase:RANGe``, ``TIMebase:REFerence`` (trigger
point in % of the screen from the left), ``ACQuire:POINts``, ``ACQuire:SRATe?``,
``TRIGger:A:MODE NORMal``, ``TRIGger:A:TYPE EDGE``, ``TRIGger:A:SOURce CH<m> | EXTernanalog``,
``TRIGger:A:LEVel<m>[:VALue]``, ``TRIGger:A:EDGE:SLOPe POSitive | NEGative``, ``SINGle`` and
``ACQuire:STATe?`` answering ``RUN`` while armed; completion is ``*OPC?``.
"""

from __future__ import annotations

from .base import AcquisitionSettings, Capture
from .visa import WordScope

_SOURCE = {"CH1": "CH1", "CH2": "CH2", "CH3": "CH3", "CH4": "CH4", "EXT": "EXTernanalog"}


class RohdeSchwarzRT(WordScope):
    """R&S RTB2000 / RTM3000 driver (see module doc). ``word``: 16-bit codes (UINT,16) instead of
    8-bit; ``byte_order``: ``"little"`` (LSBFirst) or ``"big"`` for words."""

    family = "rohde"


    def configure(self, settings: AcquisitionSettings) -> AcquisitionSettings:
        self.write("*CLS")
        self.write("STOP")
        for ch, cs in settings.channels.items():
            n = ch[-1]
            self.write(f"CHANnel{n}:STATe ON")
            self.write(f"CHANnel{n}:RANGe {cs.range_v:.9g}")
            self.write(f"CHANnel{n}:OFFSet {cs.offset_v:.9g}")
        self.write(f"TIMebase:RANGe {settings.duration_s:.12g}")
        self.write(f"TIMebase:REFerence {100.0 * settings.pre_trigger_s / settings.duration_s:.9g}")
        self.write(f"ACQuire:POINts {settings.n_points}")
        trig = settings.trigger
        self.write("TRIGger:A:MODE NORMal")
        self.write("TRIGger:A:TYPE EDGE")
        self.write(f"TRIGger:A:SOURce {_SOURCE[trig.source]}")
        if trig.source != "EXT":
            self.write(f"TRIGger:A:LEVel{trig.source[-1]}:VALue {trig.level_v:.6g}")
        self.write(f"TRIGger:A:EDGE:SLOPe {'POSitive' if trig.slope == 'rising' else 'NEGative'}")
        rate = self.query_float("ACQuire:SRATe?")
        points = int(self.query_float("ACQuire:POINts?"))
        applied = self.read_back_ranges(settings, lambda ch: f"CHANnel{ch[-1]}:RANGe?")
        self.settings = AcquisitionSettings(applied, rate, points, settings.pre_trigger_s, trig)
        return self.settings

    def arm(self) -> None:
        self.write("SINGle")
        self.poll("ACQuire:STATe?", lambda a: a.strip().upper() in ("RUN", "COMP"), self.timeout_s, "not armed")

    def read(self, channel: str) -> Capture:
        n = channel[-1]
        bits = 16 if self.word else 8
        self.write(f"FORMat:DATA UINTeger,{bits}")
        self.write(f"FORMat:BORDer {'LSBFirst' if self.byte_order == 'little' else 'MSBFirst'}")
        header = self.query_fields(f"CHANnel{n}:DATA:HEADer?", 4)
        points = int(header[2])
        scale = {key: self.query_float(f"CHANnel{n}:DATA:{key}?") for key in ("XORigin", "XINCrement", "YORigin", "YINCrement")}
        codes = self.query_block(f"CHANnel{n}:DATA?", bytes_per_point=bits // 8, signed=False, big_endian=self.byte_order == "big", expected=points)
        return self._capture(
            channel,
            codes,
            x_increment_s=scale["XINCrement"],
            x_origin_s=scale["XORigin"],
            y_increment_v=scale["YINCrement"],
            y_origin_v=scale["YORigin"],
            y_reference=0.0,
            format=f"UINT,{bits}",
            byte_order=self.byte_order,
            header=header,
            scaling=scale,
        )
