"""Exceptions raised by awgrt.

Every error the library raises on bad input is a subclass of :class:`AWGRTError`. Each carries
the context a user needs to find the mistake: the segment, the op and the offending value, and
formats them into its message, e.g.::

    segment 'chirp_H', op #0 move (channel 'H'): df=4e8 Hz: end frequency 4.9e8 Hz is not below fs/2
"""

from __future__ import annotations

from typing import Any


class AWGRTError(Exception):
    """Base class of every awgrt error.

    ``segment``, ``op`` and ``value`` are kept as attributes (``None`` where they do not apply)
    and are prefixed to the message so that it reads on its own.
    """

    def __init__(
        self,
        message: str,
        *,
        segment: str | None = None,
        op: str | None = None,
        value: Any = None,
    ) -> None:
        self.segment = segment
        self.op = op
        self.value = value
        self.detail = message
        where = []
        if segment is not None:
            where.append(f"segment {segment!r}")
        if op is not None:
            where.append(f"op {op}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ProgramError(AWGRTError, ValueError):
    """The program is malformed: unknown names, wrong channel, empty program, bad mode."""


class TimingError(ProgramError):
    """A time is non-finite, not positive, or rounds to no samples."""


class FrequencyError(ProgramError):
    """A frequency is non-finite, not positive or not below the Nyquist frequency."""


class AmplitudeError(ProgramError):
    """An amplitude is non-finite, negative or above full scale."""


class CalibrationError(AWGRTError, ValueError):
    """An AOD calibration is malformed, cannot be fitted, or is asked outside its band."""


class QuantizationError(AWGRTError, ValueError):
    """The program cannot be made card-legal within the tolerances the user set."""


class CardLimitError(AWGRTError, ValueError):
    """Something exceeds what the card can hold or encode (steps, segments, memory, loops)."""


class ClipError(AWGRTError, ValueError):
    """Samples exceed the clip level and the user asked for that to be an error."""


class VerificationError(AWGRTError):
    """What the card holds, read back from it, differs from what was asked (``value``: the
    :class:`~awgrt.readback.Mismatch` es)."""


class SerializationError(AWGRTError, ValueError):
    """A saved program or IR could not be read (bad JSON, unknown schema or version)."""


class CardError(AWGRTError):
    """The card (real or simulated) refused an operation.

    ``code`` is Spectrum's error code (``spcerr.h``; None where the driver did not say),
    ``register`` the register or command involved (None where none applies).
    """

    def __init__(self, message: str, *, code: int | None, register: int | str | None = None, **context) -> None:
        self.code = code
        self.register = register
        tags = ([f"error {code:#06x}"] if code is not None else []) + ([f"register {register}"] if register is not None else [])
        super().__init__(f"{message} ({', '.join(tags)})" if tags else message, **context)
        self.detail = message  # without the code and register tags


class UnknownCardError(CardError, KeyError):
    """A card model name awgrt does not know (a :class:`CardError`, and a ``KeyError`` as any
    failed lookup by name is); the message lists the known models and the closest match."""

    __str__ = Exception.__str__  # the message as written, not KeyError's quoted repr


class UnsupportedError(AWGRTError, NotImplementedError):
    """The backend or card cannot do this at all (a missing capability, not a bad value)."""


class AWGRTWarning(UserWarning):
    """Base class of the warnings awgrt raises (the compile went through, but look)."""


class SnapWarning(AWGRTWarning):
    """Wrap snapping moved a tone by more than the warning threshold (still within its bound)."""


class WrapWarning(AWGRTWarning):
    """A looped segment's wrap is not continuous: the card repeats a jump every pass."""


class SilenceWarning(AWGRTWarning):
    """A segment plays silence on a channel although its asked amplitudes are not zero."""


class ClipWarning(AWGRTWarning):
    """Samples exceed the clip level and were clipped (an AOD driven into clipping makes
    intermodulation tones: extra, unwanted tweezers)."""


class UnitWarning(AWGRTWarning):
    """A number that is probably in the wrong unit (awgrt takes hertz and seconds): a tone or a
    move below 1 kHz, a time above a second. The message says what was probably meant."""


class CallbackWarning(AWGRTWarning):
    """Step callbacks fell behind (entries dropped) or could not be shut down cleanly."""
