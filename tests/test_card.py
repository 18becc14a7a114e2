"""The 64-bit sequence step entry and the card limits (:class:`awgrt.CardSpec`).

Expected words and limits are computed here from the card's documented sequence-mode step entry
(Spectrum's M4i manual, sequence replay mode), never by calling the code under test:

    bits  0-15  segment index          bits 32-51  loop count (1 .. 1,048,575)
    bits 16-31  next step index        bits 52-61  reserved
    bit  62     SPCSEQ_ENDLOOPONTRIG   bit  63     SPCSEQ_END
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import awgrt
from awgrt.card import as_int64
from awgrt.errors import AWGRTError, CardLimitError

SEGMENT_BITS = (0, 16)
NEXT_BITS = (16, 16)
LOOPS_BITS = (32, 20)
ENDLOOPONTRIG_BIT = 62
END_BIT = 63
RESERVED_BITS = range(52, 62)
GIS = 1024**3


def spec_word(segment: int, next_step: int, loops: int, on_trig: bool = False, end: bool = False) -> int:
    """The step word built bit by bit from the spec's table (independent of awgrt)."""
    word = 0
    for value, (shift, width) in ((segment, SEGMENT_BITS), (next_step, NEXT_BITS), (loops, LOOPS_BITS)):
        for bit in range(width):
            if (value >> bit) & 1:
                word += 2 ** (shift + bit)
    if on_trig:
        word += 2**ENDLOOPONTRIG_BIT
    if end:
        word += 2**END_BIT
    return word


def decoded_tuple(entry) -> tuple:
    return (entry.segment, entry.next, entry.loops, entry.on_trigger, entry.end)


# ---------------------------------------------------------------------------------- step entry


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ((0, 0, 1, False, False), 0x0000_0001_0000_0000),
        ((1, 2, 3, False, False), 0x0000_0003_0002_0001),
        ((0xFFFF, 0, 1, False, False), 0x0000_0001_0000_FFFF),
        ((0, 0xFFFF, 1, False, False), 0x0000_0001_FFFF_0000),
        ((0, 0, 0xFFFFF, False, False), 0x000F_FFFF_0000_0000),
        ((5, 6, 1, True, False), 0x4000_0001_0006_0005),
        ((5, 0, 1, False, True), 0x8000_0001_0000_0005),
        ((0xFFFF, 0xFFFF, 1_048_575, True, True), 0xC00F_FFFF_FFFF_FFFF),
        ((0x1234, 0xABCD, 0x12345, False, False), 0x0001_2345_ABCD_1234),
    ],
)
def test_known_step_words_match_spec_layout(fields, word):
    seg, nxt, loops, on_trig, end = fields
    assert word == spec_word(seg, nxt, loops, on_trig, end)  # the table above is self-consistent
    assert awgrt.encode_step_entry(seg, nxt, loops, on_trigger=on_trig, end=end) == word
    assert decoded_tuple(awgrt.decode_step_entry(word)) == fields


@settings(max_examples=150)
@given(
    segment=st.integers(0, 65535),
    next_step=st.integers(0, 65535),
    loops=st.integers(1, 1_048_575),
    on_trig=st.booleans(),
    end=st.booleans(),
)
def test_encode_decode_round_trip_and_bit_positions(segment, next_step, loops, on_trig, end):
    word = awgrt.encode_step_entry(segment, next_step, loops, on_trigger=on_trig, end=end)
    assert word == spec_word(segment, next_step, loops, on_trig, end)
    assert 0 <= word < 2**64
    assert all(not (word >> b) & 1 for b in RESERVED_BITS)
    assert decoded_tuple(awgrt.decode_step_entry(word)) == (segment, next_step, loops, on_trig, end)
    signed = as_int64(word)
    assert -(2**63) <= signed < 2**63
    assert signed % 2**64 == word
    assert (signed < 0) == end
    assert decoded_tuple(awgrt.decode_step_entry(signed)) == (segment, next_step, loops, on_trig, end)


def test_as_int64_is_negative_exactly_when_end_bit_set():
    word = awgrt.encode_step_entry(3, 0, 1, end=True)
    assert as_int64(word) == word - 2**64 < 0
    assert as_int64(word) == -0x7FFF_FFFE_FFFF_FFFD  # 0x8000_0001_0000_0003 read back as int64
    plain = awgrt.encode_step_entry(3, 0, 1, on_trigger=True)
    assert as_int64(plain) == plain == 0x4000_0001_0000_0003


def test_decode_accepts_negative_int64_readback():
    # what the driver returns for segment 7, next 0, loops 1, END
    readback = 0x8000_0001_0000_0007 - 2**64
    assert readback < 0
    entry = awgrt.decode_step_entry(readback)
    assert decoded_tuple(entry) == (7, 0, 1, False, True)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("loops", 0),
        ("loops", 1_048_576),
        ("loops", -1),
        ("loops", 2**40),
        ("segment", 65536),
        ("segment", -1),
        ("next", 65536),
        ("next", -1),
        ("segment", 1.5),
        ("loops", 2.5),
        ("next", "3"),
        ("segment", True),
        ("loops", True),
        ("next", False),
    ],
)
def test_out_of_range_or_non_integer_fields_raise(field, value):
    args = {"segment": 0, "next": 0, "loops": 1, field: value}
    with pytest.raises(CardLimitError) as info:
        awgrt.encode_step_entry(args["segment"], args["next"], args["loops"])
    assert field in str(info.value)
    assert info.value.value == value or (isinstance(value, float) and math.isnan(value))


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), "abc"])
def test_non_numeric_fields_raise_card_limit_error(value):
    """Non-integers of any type are rejected with the library's own error, not a raw TypeError."""
    with pytest.raises(CardLimitError):
        awgrt.encode_step_entry(0, 0, value)


@pytest.mark.parametrize("bit", list(RESERVED_BITS))
def test_decode_rejects_reserved_bits(bit):
    word = spec_word(1, 2, 3) | (1 << bit)
    with pytest.raises(CardLimitError, match="reserved"):
        awgrt.decode_step_entry(word)
    with pytest.raises(CardLimitError):
        awgrt.decode_step_entry(word | (1 << END_BIT))


@pytest.mark.parametrize("word", [2**64, -(2**63) - 1, 1.5])
def test_decode_rejects_words_outside_64_bits(word):
    with pytest.raises(CardLimitError):
        awgrt.decode_step_entry(word)


def test_card_limit_error_is_an_awgrt_error():
    assert issubclass(CardLimitError, AWGRTError)


# ------------------------------------------------------------------------------------ CardSpec

DATA_SHEET = {
    # name: (channels, max sample rate, channel counts)
    "M4i.6631-x8": (2, 1.25e9, (1, 2)),
    "M4i.6622-x8": (4, 625e6, (1, 2, 4)),
    "M4i.6621-x8": (2, 625e6, (1, 2)),
}


@pytest.mark.parametrize("name", sorted(DATA_SHEET))
def test_cards_carry_data_sheet_numbers(name):
    card = awgrt.CARDS[name]
    channels, max_rate, counts = DATA_SHEET[name]
    assert isinstance(card, awgrt.CardSpec)
    assert card.name == name
    assert card.physical_channels == channels
    assert card.max_sample_rate_hz == max_rate
    assert card.min_sample_rate_hz == 50e6
    assert card.max_steps == 4096
    assert card.max_segments == 65536
    assert card.memory_samples == 2 * GIS == 2_147_483_648
    assert card.segment_granularity == 32
    assert card.max_loops == 1_048_575
    assert tuple(sorted(card.channel_counts)) == counts
    for n_channels, shortest in ((1, 384), (2, 192), (4, 96)):
        if n_channels in counts:
            assert card.min_segment_length(n_channels) == shortest


def test_cards_table_has_the_three_m4i_models():
    assert {"M4i.6631-x8", "M4i.6622-x8", "M4i.6621-x8"} <= set(awgrt.CARDS)


@pytest.mark.parametrize(("n", "expected"), [(0, 2), (1, 2), (2, 2), (3, 4), (4, 4), (5, 8), (17, 32), (4096, 4096), (4097, 8192), (65536, 65536)])
def test_slot_count_known_values(n, expected):
    assert awgrt.CARDS["M4i.6631-x8"].slot_count(n) == expected


@settings(max_examples=60)
@given(n=st.integers(0, 70000))
def test_slot_count_is_smallest_power_of_two_at_least_two(n):
    slots = awgrt.CARDS["M4i.6622-x8"].slot_count(n)
    assert slots >= 2 and slots >= n
    assert slots & (slots - 1) == 0
    assert slots == 2 or slots // 2 < n


@pytest.mark.parametrize(
    ("name", "n_channels", "slots"),
    [("M4i.6631-x8", 1, 2), ("M4i.6631-x8", 2, 2), ("M4i.6631-x8", 2, 65536), ("M4i.6622-x8", 4, 8), ("M4i.6622-x8", 4, 65536), ("M4i.6621-x8", 1, 1024)],
)
def test_max_segment_length_splits_memory(name, n_channels, slots):
    expected = 2 * GIS // n_channels // slots
    expected -= expected % 32
    assert awgrt.CARDS[name].max_segment_length(n_channels, slots) == expected


def test_max_segment_length_known_numbers():
    card = awgrt.CARDS["M4i.6631-x8"]
    assert card.max_segment_length(1, 2) == 1024**3
    assert card.max_segment_length(2, 65536) == 16384
    assert awgrt.CARDS["M4i.6622-x8"].max_segment_length(4, 65536) == 8192


def test_max_segment_length_rounds_down_to_granularity():
    card = dataclasses.replace(awgrt.CARDS["M4i.6631-x8"], memory_samples=1000)
    assert card.max_segment_length(1, 2) == 480  # 500 rounded down to a multiple of 32
    assert card.max_segment_length(2, 2) == 224  # 250 -> 224


@pytest.mark.parametrize(
    ("name", "highest", "expected"),
    [
        ("M4i.6631-x8", 0, 1),
        ("M4i.6631-x8", 1, 2),
        ("M4i.6621-x8", 1, 2),
        ("M4i.6622-x8", 0, 1),
        ("M4i.6622-x8", 1, 2),
        ("M4i.6622-x8", 2, 4),
        ("M4i.6622-x8", 3, 4),
    ],
)
def test_active_channel_count(name, highest, expected):
    assert awgrt.CARDS[name].active_channel_count(highest) == expected


@pytest.mark.parametrize(("name", "highest"), [("M4i.6631-x8", 2), ("M4i.6631-x8", 3), ("M4i.6621-x8", 3), ("M4i.6622-x8", 4)])
def test_active_channel_count_rejects_missing_channel(name, highest):
    with pytest.raises(CardLimitError, match=str(highest)) as info:
        awgrt.CARDS[name].active_channel_count(highest)
    assert info.value.value == highest


@pytest.mark.parametrize(
    ("name", "rate"),
    [
        ("M4i.6631-x8", 50e6),
        ("M4i.6631-x8", 625e6),
        ("M4i.6631-x8", 1.25e9),
        ("M4i.6631-x8", 749_999_992.0),
        ("M4i.6631-x8", 757_000_008.0),
        ("M4i.6631-x8", 1e9),
        ("M4i.6622-x8", 625e6),
        ("M4i.6621-x8", 500e6),
        ("M4i.6621-x8", 50_000_008.0),
    ],
)
def test_sample_rate_problem_none_for_legal_rates(name, rate):
    assert awgrt.CARDS[name].sample_rate_problem(rate) is None


@pytest.mark.parametrize(
    ("name", "rate", "words"),
    [
        ("M4i.6631-x8", 49_999_992.0, "outside"),
        ("M4i.6631-x8", 1e6, "outside"),
        ("M4i.6631-x8", 0.0, "outside"),
        ("M4i.6631-x8", -625e6, "outside"),
        ("M4i.6631-x8", 1_250_000_008.0, "outside"),
        ("M4i.6622-x8", 625_000_008.0, "outside"),
        ("M4i.6621-x8", 1.25e9, "outside"),
        ("M4i.6631-x8", 753e6, "gap"),
        ("M4i.6631-x8", 750_000_008.0, "gap"),
        ("M4i.6631-x8", 1130e6, "gap"),
        ("M4i.6631-x8", 625_000_004.0, "multiple of 8"),
        ("M4i.6631-x8", 100_000_001.0, "multiple of 8"),
        ("M4i.6622-x8", 500e6 + 0.5, "multiple of 8"),
    ],
)
def test_sample_rate_problem_explains_illegal_rates(name, rate, words):
    problem = awgrt.CARDS[name].sample_rate_problem(rate)
    assert isinstance(problem, str)
    assert words in problem


def test_sample_rate_problem_rejects_non_finite():
    card = awgrt.CARDS["M4i.6631-x8"]
    assert card.sample_rate_problem(float("nan")) is not None
    assert card.sample_rate_problem(float("inf")) is not None


# ------------------------------------------------------------------------------ from_reported

REPORTED = dict(physical_channels=4, max_sample_rate_hz=625e6, memory_bytes=4 * GIS, avail_max_segments=65536, avail_max_steps=4096, avail_max_loops=1_048_575)


def test_from_reported_builds_spec_from_card_registers():
    card = awgrt.CardSpec.from_reported("M4i.6622-x8 (read)", **REPORTED)
    assert card.name == "M4i.6622-x8 (read)"
    assert card.physical_channels == 4
    assert card.max_sample_rate_hz == 625e6
    assert card.memory_samples == 2 * GIS  # int16: 2 bytes per sample
    assert card.max_segments == 65536
    assert card.max_steps == 4096
    assert card.max_loops == 1_048_575
    assert tuple(sorted(card.channel_counts)) == (1, 2, 4)
    assert card.active_channel_count(2) == 4
    assert card.min_segment_length(4) == 96
    assert card.segment_granularity == 32
    assert card.sample_rate_problem(753e6) is not None


def test_from_reported_uses_smaller_reported_limits():
    card = awgrt.CardSpec.from_reported(
        "small", physical_channels=2, max_sample_rate_hz=1.25e9, memory_bytes=2 * GIS, avail_max_segments=1024, avail_max_steps=512, avail_max_loops=1000
    )
    assert card.memory_samples == GIS
    assert card.max_segments == 1024
    assert card.max_steps == 512
    assert card.max_loops == 1000
    assert tuple(sorted(card.channel_counts)) == (1, 2)
    with pytest.raises(CardLimitError):
        card.active_channel_count(2)
    assert card.max_segment_length(2, 1024) == GIS // 2 // 1024


def test_from_reported_caps_loops_at_20_bits():
    card = awgrt.CardSpec.from_reported("wide", **{**REPORTED, "avail_max_loops": 2**32 - 1})
    assert card.max_loops == 1_048_575


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("physical_channels", 0),
        ("physical_channels", -2),
        ("physical_channels", 1.5),
        ("memory_bytes", 0),
        ("memory_bytes", -4096),
        ("avail_max_segments", 0),
        ("avail_max_steps", 0),
        ("avail_max_steps", 2.5),
        ("avail_max_loops", 0),
        ("avail_max_loops", -1),
    ],
)
def test_from_reported_rejects_nonsense_counts(field, value):
    with pytest.raises(CardLimitError, match=field):
        awgrt.CardSpec.from_reported("bad", **{**REPORTED, field: value})


@pytest.mark.parametrize("rate", [0.0, -625e6, float("nan"), float("inf")])
def test_from_reported_rejects_nonsense_sample_rate(rate):
    with pytest.raises(CardLimitError):
        awgrt.CardSpec.from_reported("bad", **{**REPORTED, "max_sample_rate_hz": rate})
