"""Teledyne LeCroy MAUI oscilloscopes (WaveSurfer, HDO, WaveRunner) over pyvisa.

Confirmed from the MAUI / X-Stream remote control manuals: header paths ``C1:`` .. ``C4:``;
``COMM_HEADER OFF`` (bare answers); ``COMM_FORMAT DEF9,BYTE|WORD,BIN`` (an IEEE 488.2
definite-length block with a 9-digit count; BYTE sends 8-bit signed codes, the high byte of the
internal 16-bit value; WORD 16-bit signed); ``COMM_ORDER HI|LO`` (byte order of words);
``C<n>:WAVEFORM? DESC`` answers the WAVEDESC descriptor and ``C<n>:WAVEFORM? DAT1`` the first data
array; the descriptor's layout is the LECROY_2_3 template, whose first fields are confirmed:
COMM_TYPE (offset 32: 0 byte, 1 word), COMM_ORDER (34: 0 HIFIRST, 1 LOFIRST), WAVE_DESCRIPTOR
(36, its length), WAVE_ARRAY_1 (60, bytes of data array 1).

Taken from the same template, to be confirmed on the rig: WAVE_ARRAY_COUNT (offset 116, long),
VERTICAL_GAIN (156, float), VERTICAL_OFFSET (160, float), HORIZ_INTERVAL (176, float) and
HORIZ_OFFSET (180, double), with volts = VERTICAL_GAIN * code - VERTICAL_OFFSET and
t = HORIZ_OFFSET + i * HORIZ_INTERVAL; and the set-up commands ``C<n>:TRACE ON``,
``C<n>:VOLT_DIV``, ``C<n>:OFFSET`` (8 vertical divisions), ``TIME_DIV`` (10 horizontal
divisions), ``TRIG_DELAY`` (trigger position from the screen centre, positive to the right),
``MEMORY_SIZE``, ``TRIG_SELECT EDGE,SR,<source>``, ``<source>:TRIG_LEVEL``,
``<source>:TRIG_SLOPE POS|NEG``, ``TRIG_MODE SINGLE`` and ``TRIG_MODE?`` answering ``SINGLE``
while armed, the sample rate from ``VBS? 'return=app.Acquisition.Horizontal.SamplingRate'``,
completion from ``INR?`` bit 0 (a new acquisition), then ``*OPC?``.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import ScopeProtocolError
from .base import AcquisitionSettings, Capture
from .visa import WordScope

#: Vertical and horizontal divisions of the screen.
V_DIVISIONS = 8
H_DIVISIONS = 10
#: WAVEDESC fields read (name: (offset, struct format)); see module doc.
WAVEDESC = {
    "COMM_TYPE": (32, "h"),
    "COMM_ORDER": (34, "h"),
    "WAVE_DESCRIPTOR": (36, "l"),
    "WAVE_ARRAY_1": (60, "l"),
    "WAVE_ARRAY_COUNT": (116, "l"),
    "VERTICAL_GAIN": (156, "f"),
    "VERTICAL_OFFSET": (160, "f"),
    "HORIZ_INTERVAL": (176, "f"),
    "HORIZ_OFFSET": (180, "d"),
}
#: Length of a LECROY_2_3 WAVEDESC block.
WAVEDESC_BYTES = 346
_SOURCE = {"CH1": "C1", "CH2": "C2", "CH3": "C3", "CH4": "C4", "EXT": "EX"}


def parse_wavedesc(raw: bytes) -> dict[str, float]:
    """The fields of :data:`WAVEDESC` from a descriptor block, in its own byte order."""
    if len(raw) < WAVEDESC_BYTES or not raw.startswith(b"WAVEDESC"):
        raise ScopeProtocolError(f"expected a WAVEDESC block of at least {WAVEDESC_BYTES} bytes, got {len(raw)} bytes starting {raw[:8]!r}")
    order = "<" if struct.unpack_from("<h", raw, 34)[0] == 1 else ">"
    return {name: struct.unpack_from(order + fmt, raw, offset)[0] for name, (offset, fmt) in WAVEDESC.items()}


class LeCroyMAUI(WordScope):
    """Teledyne LeCroy MAUI driver (see module doc). ``word``: 16-bit codes; ``byte_order``:
    ``"little"`` (COMM_ORDER LO) or ``"big"`` (HI) for words."""

    family = "lecroy"


    def configure(self, settings: AcquisitionSettings) -> AcquisitionSettings:
        self.write("COMM_HEADER OFF")
        self.write("*CLS")
        self.write("TRIG_MODE STOP")
        for ch, cs in settings.channels.items():
            self.write(f"{_SOURCE[ch]}:TRACE ON")
            self.write(f"{_SOURCE[ch]}:VOLT_DIV {cs.range_v / V_DIVISIONS:.9g}")
            self.write(f"{_SOURCE[ch]}:OFFSET {-cs.offset_v:.9g}")  # the trace moves up by the offset: its centre reads -offset
        self.write(f"TIME_DIV {settings.duration_s / H_DIVISIONS:.12g}")
        self.write(f"MEMORY_SIZE {settings.n_points}")
        self.write(f"TRIG_DELAY {settings.pre_trigger_s - settings.duration_s / 2:.12g}")
        trig = settings.trigger
        src = _SOURCE[trig.source]
        self.write(f"TRIG_SELECT EDGE,SR,{src}")
        self.write(f"{src}:TRIG_LEVEL {trig.level_v:.6g}")
        self.write(f"{src}:TRIG_SLOPE {'POS' if trig.slope == 'rising' else 'NEG'}")
        rate = self.query_float("VBS? 'return=app.Acquisition.Horizontal.SamplingRate'")
        points = round(settings.duration_s * rate)
        applied = self.read_back_ranges(settings, lambda ch: f"{_SOURCE[ch]}:VOLT_DIV?", V_DIVISIONS)
        self.settings = AcquisitionSettings(applied, rate, points, settings.pre_trigger_s, trig)
        return self.settings

    def arm(self) -> None:
        self.query("INR?")  # reading clears the register: bit 0 then means this acquisition
        self.write("TRIG_MODE SINGLE")
        self.poll("TRIG_MODE?", lambda a: a.strip().upper().startswith("SINGLE"), self.timeout_s, "not armed")

    def wait(self, timeout_s: float) -> None:
        self.poll("INR?", lambda a: int(float(a)) & 1, timeout_s, "acquisition not complete: no trigger?")
        super().wait(timeout_s)

    def read(self, channel: str) -> Capture:
        src = _SOURCE[channel]
        self.write(f"COMM_FORMAT DEF9,{'WORD' if self.word else 'BYTE'},BIN")
        self.write(f"COMM_ORDER {'LO' if self.byte_order == 'little' else 'HI'}")
        raw = self.query_block(f"{src}:WAVEFORM? DESC", bytes_per_point=1, signed=False, big_endian=False)
        try:
            desc = parse_wavedesc(raw.astype(np.uint8).tobytes())
        except (ScopeProtocolError, struct.error) as exc:
            self.resync(f"an unusable descriptor: {exc}")
            raise ScopeProtocolError(f"unusable WAVEDESC: {exc}", resource=self.resource_name, command=f"{src}:WAVEFORM? DESC") from exc
        n_bytes = 2 if self.word else 1
        expected = int(desc["WAVE_ARRAY_1"]) // n_bytes
        codes = self.query_block(f"{src}:WAVEFORM? DAT1", bytes_per_point=n_bytes, signed=True, big_endian=self.byte_order == "big", expected=expected)
        return self._capture(
            channel,
            codes,
            x_increment_s=desc["HORIZ_INTERVAL"],
            x_origin_s=desc["HORIZ_OFFSET"],
            y_increment_v=desc["VERTICAL_GAIN"],
            y_origin_v=-desc["VERTICAL_OFFSET"],
            y_reference=0.0,
            format="WORD" if self.word else "BYTE",
            byte_order=self.byte_order,
            wavedesc=desc,
        )
