"""Spectrum driver constants, in one neutral module that every layer may use.

Register numbers, commands, status bits and stop levels are those of Spectrum's register file
(``regs.h`` / ``spcm_core``); error codes and their texts follow ``spcerr.h``. Only what awgrt uses
is listed; a test checks each value against ``spcm_core``'s own. The simulator, the emulated
driver and both backends take them from here, so no backend needs the simulator for a number.
"""

from __future__ import annotations

from enum import IntEnum

from .errors import ProgramError

# ------------------------------------------------------------------------------------ registers
SPC_M2CMD = 100
SPC_M2STATUS = 110
SPC_CARDMODE = 9500
SPC_REP_STD_SEQUENCE = 0x40000
SPC_REP_STD_SINGLE = 0x100
SPC_REP_STD_MULTI = 0x200
SPC_REP_STD_GATE = 0x400
SPC_REP_FIFO_SINGLE = 0x800
SPC_REP_FIFO_MULTI = 0x1000
SPC_REP_FIFO_GATE = 0x2000
SPC_REP_STD_CONTINUOUS = 0x4000
SPC_REP_STD_SINGLERESTART = 0x8000
SPC_REP_STD_DDS = 0x4000000
#: Replay modes by value, for messages.
REPLAY_MODES = {
    SPC_REP_STD_SINGLE: "SPC_REP_STD_SINGLE",
    SPC_REP_STD_MULTI: "SPC_REP_STD_MULTI",
    SPC_REP_STD_GATE: "SPC_REP_STD_GATE",
    SPC_REP_FIFO_SINGLE: "SPC_REP_FIFO_SINGLE",
    SPC_REP_FIFO_MULTI: "SPC_REP_FIFO_MULTI",
    SPC_REP_FIFO_GATE: "SPC_REP_FIFO_GATE",
    SPC_REP_STD_CONTINUOUS: "SPC_REP_STD_CONTINUOUS",
    SPC_REP_STD_SINGLERESTART: "SPC_REP_STD_SINGLERESTART",
    SPC_REP_STD_SEQUENCE: "SPC_REP_STD_SEQUENCE",
    SPC_REP_STD_DDS: "SPC_REP_STD_DDS",
}
SPC_SEQMODE_STEPMEM0 = 340000
SPC_SEQMODE_AVAILMAXSEGMENT = 349900
SPC_SEQMODE_AVAILMAXSTEPS = 349901
SPC_SEQMODE_AVAILMAXLOOP = 349902
SPC_SEQMODE_AVAILFEATURES = 349903
SPC_SEQMODE_MAXSEGMENTS = 349910
SPC_SEQMODE_WRITESEGMENT = 349920
SPC_SEQMODE_STARTSTEP = 349930
SPC_SEQMODE_SEGMENTSIZE = 349940
SPC_SEQMODE_STATUS = 349950
SPC_CH0_STOPLEVEL = 206020
SPC_PCIFEATURES = 2120
SPCM_FEAT_SEQUENCE = 0x1000

# ------------------------------------------------------------------------------------ commands
M2CMD_CARD_START = 0x4
M2CMD_CARD_ENABLETRIGGER = 0x8
M2CMD_CARD_FORCETRIGGER = 0x10
M2CMD_CARD_STOP = 0x40
M2CMD_DATA_STARTDMA = 0x10000
M2CMD_DATA_WAITDMA = 0x20000
M2CMD_DATA_STOPDMA = 0x40000

# ------------------------------------------------------------------------------------ status bits
M2STAT_CARD_PRETRIGGER = 0x1
M2STAT_CARD_TRIGGER = 0x2
M2STAT_CARD_READY = 0x4

# ------------------------------------------------------------------------------------ trigger sources
SPC_TMASK_SOFTWARE = 0x1
SPC_TMASK_EXT0 = 0x2
SPC_TMASK_EXT1 = 0x4


def trigger_source_of(or_mask: int) -> str:
    """The trigger source a card's ``SPC_TRIG_ORMASK`` selects, in awgrt's words: ``"software"``,
    ``"external"`` (EXT0), or the mask itself when it is neither."""
    return {SPC_TMASK_SOFTWARE: "software", SPC_TMASK_EXT0: "external"}.get(or_mask, f"OR mask {or_mask:#x}")


def stop_level_of(value: str | StopLevel) -> StopLevel:
    """A stop level from its name (``"zero"``, ``"hold-last"`` ...) or itself."""
    if isinstance(value, StopLevel):
        return value
    try:
        return StopLevel[str(value).upper().replace("-", "").replace("_", "")]
    except KeyError:
        names = ", ".join(s.name.lower() for s in StopLevel)
        raise ProgramError(f"stop level {value!r} unknown (one of {names})", op="configure", value=value) from None


class StopLevel(IntEnum):
    """What a channel outputs when nothing is replayed (``SPC_CH0_STOPLEVEL`` values)."""

    TRISTATE = 0x1
    LOW = 0x2
    HIGH = 0x4
    HOLDLAST = 0x8
    ZERO = 0x10
    CUSTOM = 0x20


# ------------------------------------------------------------------------------------ errors
ERR_OK = 0x0000
ERR_REG = 0x0100
ERR_VALUE = 0x0101
ERR_FEATURE = 0x0102
ERR_SEQUENCE = 0x0103
ERR_TIMEOUT = 0x0107
ERR_SETUP = 0x010B
ERR_CHANNEL = 0x0110
ERR_RUNNING = 0x0120
ERR_FIFOHWOVERRUN = 0x0301
ERR_FIFOSETUP = 0x0309

ERROR_TEXTS = {
    ERR_OK: "no error",
    ERR_REG: "the register is not valid for this type of board",
    ERR_VALUE: "the value for this register is not in a valid range",
    ERR_FEATURE: "a feature has been selected that is not installed on this board",
    ERR_SEQUENCE: "command sequence is not allowed",
    ERR_TIMEOUT: "a timeout occurred while waiting for an interrupt",
    ERR_SETUP: "the card setup is not valid",
    ERR_CHANNEL: "the channel selection is not valid",
    ERR_RUNNING: "the command is not allowed while the card is running",
    ERR_FIFOHWOVERRUN: "the card's FIFO ran out of data (replay underrun) or overflowed",
    ERR_FIFOSETUP: "the FIFO transfer set-up is not valid",
}

# ------------------------------------------------------------------------ multi-purpose lines X0..X2
SPCM_X0_MODE = 600200
SPCM_XMODE_DISABLE = 0x0
SPCM_XMODE_ASYNCIN = 0x1
SPCM_XMODE_ASYNCOUT = 0x2
SPCM_XMODE_DIGOUT = 0x8  # synchronous digital output: one bit of a channel's samples
SPCM_XMODE_TRIGOUT = 0x20
SPCM_XMODE_RUNSTATE = 0x100
SPCM_XMODE_ARMSTATE = 0x200
SPCM_XMODE_DIGOUTSRC_CH0 = 0x01000000  # channel n: << n
SPCM_XMODE_DIGOUTSRC_BIT15 = 0x00100000  # bit 15 - i: << i (bits 15..12)


def digout_mode(channel: int, bit: int) -> int:
    """The X-line mode that outputs ``bit`` (15 .. 12) of ``channel``'s samples."""
    return SPCM_XMODE_DIGOUT | (SPCM_XMODE_DIGOUTSRC_CH0 << channel) | (SPCM_XMODE_DIGOUTSRC_BIT15 << (15 - bit))


def digout_source(mode: int) -> tuple[int, int] | None:
    """(channel, bit) a DIGOUT mode takes its level from, or None for another mode; a DIGOUT
    mode that does not name exactly one channel and one bit is a ProgramError."""
    if not mode & SPCM_XMODE_DIGOUT:
        return None
    channels = [c for c in range(8) if mode & (SPCM_XMODE_DIGOUTSRC_CH0 << c)]
    bits = [15 - i for i in range(4) if mode & (SPCM_XMODE_DIGOUTSRC_BIT15 << i)]
    if len(channels) != 1 or len(bits) != 1:
        raise ProgramError(f"a synchronous digital output names one channel and one bit (15..12), got mode {mode:#x}", op="X-line mode", value=mode)
    return channels[0], bits[0]

