"""The backend conformance kit: what every :class:`awgrt.backends.Backend` must do.

A backend for another card passes the contract when a subclass of :class:`BackendConformance`
that provides ``make_backend()`` (a fresh, unopened backend) and ``observe(backend)`` (the
card's state as an :class:`Observed`, or None where the backend offers no way to look) passes::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def make_backend(self):
            return lambda: MyBackend(...)

The tests use only the contract (``tests/test_backend_conformance.py`` runs them on SimBackend
and on SpcmBackend over the emulated driver).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from awgrt import AWGProgramBuilder, compile_sequence_program, quantize_resolved_ir
from awgrt.backends import Backend, ClockConfig, OutputConfig
from awgrt.card import StepEntry, decode_step_entry
from awgrt.errors import AWGRTError, CardError, CardLimitError, ProgramError, UnsupportedError
from awgrt.program import StepEvent

FS = 625e6


@dataclass(frozen=True)
class Observed:
    """What the card holds: every memory slot's samples and the decoded step entries."""

    slots: tuple[np.ndarray, ...]
    steps: tuple[StepEntry, ...]


def program(card, amp: float = 0.3, loops: int = 3, end: bool = False, hold_us: float = 1.6, wait: bool = True):
    b = (
        AWGProgramBuilder()
        .logical_channel("H")
        .define("h", logical_channel="H", freqs=[90e6, 95e6], amps=[0.2, 0.2], phases=[0.0, 0.0])
        .segment("wait", mode="wait_trig" if wait else "once")
        .tones("H")
        .use_def("h")
        .hold(time=hold_us * 1e-6)
        .segment("pulse")
        .tones("H")
        .ramp_amp_to(amps=amp, time=1e-6, idxs=[0])
        .segment("loop", mode="loop_n", loops=loops)
        .hold(time=1.6e-6)
    )
    b.last_step("end" if end else "ring")
    q = quantize_resolved_ir(b.build_resolved_ir(sample_rate_hz=FS), {"H": 0}, card)
    return compile_sequence_program(q, progress=False)


class BackendConformance:
    """The contract, test by test (see module doc)."""

    @pytest.fixture
    def backend(self, make_backend):
        be = make_backend()
        with be:
            yield be
        assert not be.is_running()

    #: Whether the backend reads the clock set-up back from the card (a kit user may say no).
    reads_clock_back = True

    def observe(self, backend) -> Observed | None:
        return None

    def _holds(self, backend, prog) -> None:
        seen = self.observe(backend)
        if seen is None:
            return
        for i, seg in enumerate(prog.segments):
            assert np.array_equal(seen.slots[i][: seg.n_samples, : prog.n_channels], seg.data), f"slot {i}"
        assert seen.steps[: len(prog.steps)] == tuple(decode_step_entry(s.entry) for s in prog.steps)

    # ------------------------------------------------------------------ shape of the contract

    def test_is_a_backend_with_every_member(self, backend):
        assert isinstance(backend, Backend)
        for name in ("card", "config", "program", "supports_step_events"):
            assert hasattr(backend, name), name
        assert isinstance(backend.supports_step_events, bool)

    def test_enter_returns_the_backend_itself(self, make_backend):
        be = make_backend()
        with be as entered:
            assert entered is be
        assert not be.is_running()

    # ------------------------------------------------------------------ configuration

    def test_configure_returns_what_is_in_force(self, backend):
        cfg = backend.configure(sample_rate_hz=FS, n_channels=1, amplitude_mv=500, stop_level="zero", trigger="external")
        assert isinstance(cfg, OutputConfig) and backend.config == cfg
        assert (cfg.sample_rate_hz, cfg.n_channels, cfg.amplitude_mv, cfg.trigger) == (FS, 1, (500,), "external")

    def test_the_clock_is_set_up_as_asked_and_read_back(self, backend):
        locked = ClockConfig("external_reference", 10e6, True)
        cfg = backend.configure(sample_rate_hz=FS, n_channels=1, clock=locked)
        assert cfg.clock == locked and backend.config.clock == locked
        backend.load(program(backend.card))
        seen = backend.read_back(1, 1).clock
        assert seen == locked or (seen is None and not self.reads_clock_back)
        cfg = backend.configure(sample_rate_hz=FS, n_channels=1)  # back to the card's own PLL, output off
        assert cfg.clock == ClockConfig()
        for bad in (
            ClockConfig("external_reference"),  # no reference frequency
            ClockConfig("external_reference", 5e6),  # below the input's range
            ClockConfig("external_reference", 10.5),
            ClockConfig("internal", 10e6),  # a reference the internal PLL does not use
            ClockConfig("atomic"),  # type: ignore[arg-type]
            ClockConfig(output=1),  # type: ignore[arg-type]
        ):
            with pytest.raises(ProgramError):
                backend.configure(sample_rate_hz=FS, n_channels=1, clock=bad)
            assert backend.config.clock == ClockConfig()  # a refused set-up changes nothing

    @pytest.mark.parametrize(
        "kwargs",
        [{"sample_rate_hz": 1e15, "n_channels": 1}, {"sample_rate_hz": FS, "n_channels": 3}, {"sample_rate_hz": FS, "n_channels": 1, "amplitude_mv": 10**6},
         {"sample_rate_hz": FS, "n_channels": 1, "stop_level": "purple"}, {"sample_rate_hz": FS, "n_channels": 1, "trigger": "telepathy"}],
    )
    def test_configure_refuses_what_the_card_cannot_take(self, backend, kwargs):
        with pytest.raises(ProgramError):
            backend.configure(**kwargs)

    # ------------------------------------------------------------------ uploads and replay

    def test_load_start_stop(self, backend):
        prog = program(backend.card)
        backend.configure(sample_rate_hz=FS, n_channels=prog.n_channels, trigger="software")
        backend.load(prog)
        assert backend.program is prog and not backend.is_running()
        self._holds(backend, prog)
        backend.start(force_trigger=True)
        assert backend.is_running()
        assert 0 <= backend.current_step() < len(prog.steps)
        backend.force_trigger()
        backend.stop()
        assert not backend.is_running()

    def test_start_without_a_program_is_refused(self, backend):
        with pytest.raises(ProgramError):
            backend.start()

    def test_load_configures_from_the_program_when_needed(self, backend):
        prog = program(backend.card)
        backend.load(prog)
        assert backend.config is not None and backend.config.sample_rate_hz == prog.sample_rate_hz

    def test_update_segments_and_write_steps_keep_the_layout(self, backend):
        base, louder, longer_loop = program(backend.card), program(backend.card, amp=0.4), program(backend.card, amp=0.4, loops=7)
        backend.load(base)
        slots = [i for i, (a, b) in enumerate(zip(base.segments, louder.segments)) if not np.array_equal(a.data, b.data)]
        assert slots
        backend.update_segments(louder, slots)
        assert backend.program is louder
        self._holds(backend, louder)
        backend.write_steps(longer_loop)
        assert backend.program is longer_loop
        self._holds(backend, longer_loop)
        # the backend's program always describes the card: samples that were never written are refused
        with pytest.raises(ProgramError, match="differ"):
            backend.write_steps(program(backend.card, amp=0.5, loops=7))
        with pytest.raises(ProgramError, match="differ"):
            backend.update_segments(program(backend.card, amp=0.5, loops=7), [0])
        self._holds(backend, longer_loop)

    def test_write_live_writes_what_it_names_and_refuses_what_it_would_leave_unwritten(self, backend):
        base, louder = program(backend.card), program(backend.card, amp=0.4, loops=7)
        backend.load(base)
        backend.start(force_trigger=True)
        slots = list(base.changed_slots(louder))
        steps = [i for i, (a, b) in enumerate(zip(base.steps, louder.steps)) if a.entry != b.entry]
        assert slots and steps
        refusals = {
            "a changed slot not named": (louder, slots[1:], steps),
            "a changed step not named": (louder, slots, steps[1:]),
            "a new step not named": (replace(louder, steps=(*louder.steps, louder.steps[-1])), slots, steps),
            "a new sample rate": (replace(louder, sample_rate_hz=FS / 2), slots, steps),
            "a new channel map": (replace(louder, hardware_channels={"H": 1}), slots, steps),
            "a new start step": (replace(louder, start_step=1), slots, steps),
            "a step out of range": (louder, slots, [*steps, len(louder.steps)]),
        }
        for why, (prog, s, st) in refusals.items():
            with pytest.raises(ProgramError):
                backend.write_live(prog, s, st)
            assert backend.program is base, why
            self._holds(backend, base)
        assert backend.is_running()  # a refused write touches nothing
        backend.write_live(louder, slots, steps)
        assert backend.program is louder and backend.is_running()
        self._holds(backend, louder)
        backend.stop()

    def test_a_layout_change_needs_a_full_upload(self, backend):
        backend.load(program(backend.card))
        other = program(backend.card, hold_us=3.2)
        with pytest.raises(ProgramError):
            backend.update_segments(other, [0])
        with pytest.raises(ProgramError):
            backend.write_steps(other)

    def test_updates_before_any_load_are_refused(self, backend):
        with pytest.raises(ProgramError):
            backend.update_segments(program(backend.card), [0])

    def test_a_program_that_does_not_fit_is_refused_before_anything_is_written(self, backend):
        prog = program(backend.card)
        backend.load(prog)
        backend.start(force_trigger=True)
        from dataclasses import replace

        bad = replace(prog, steps=(replace(prog.steps[0], loops=0),) + prog.steps[1:])
        with pytest.raises(CardLimitError):
            backend.load(bad)
        self._holds(backend, prog)

    def test_any_failure_or_interrupt_during_an_upload_stops_and_forgets(self, backend, monkeypatch):
        prog = program(backend.card)
        backend.load(prog)
        backend.start(force_trigger=True)
        for exc in (KeyboardInterrupt(), RuntimeError("cable pulled"), CardError("refused", code=None)):
            def boom(*a, exc=exc, **k):
                raise exc

            monkeypatch.setattr(backend, "_update_segments", boom)
            with pytest.raises((KeyboardInterrupt, AWGRTError)):
                backend.update_segments(prog, [0])
            assert not backend.is_running() and backend.program is None
            backend.load(prog)
            backend.start(force_trigger=True)

    def test_abandon_stops_and_forgets_and_never_raises(self, backend):
        backend.abandon()
        backend.load(program(backend.card))
        backend.start(force_trigger=True)
        backend.abandon()
        assert backend.program is None and not backend.is_running()

    def test_wait_ready_returns_after_an_end_step_and_times_out_otherwise(self, backend):
        backend.load(program(backend.card, end=True, wait=False))
        backend.start(force_trigger=True)
        backend.wait_ready(1.0)
        assert not backend.is_running()
        backend.load(program(backend.card))
        backend.start(force_trigger=True)
        with pytest.raises(CardError):
            backend.wait_ready(0.001)

    def test_a_software_trigger_source_starts_replay_on_start(self, backend):
        prog = program(backend.card, end=True, wait=False)
        backend.configure(sample_rate_hz=FS, n_channels=prog.n_channels, trigger="software")
        backend.load(prog)
        backend.start()  # no force: the software trigger fires when triggers are enabled
        backend.wait_ready(1.0)
        assert not backend.is_running()

    def test_an_external_trigger_source_waits_for_a_trigger(self, backend):
        prog = program(backend.card, end=True, wait=False)
        backend.configure(sample_rate_hz=FS, n_channels=prog.n_channels, trigger="external")
        backend.load(prog)
        backend.start()
        with pytest.raises(CardError):
            backend.wait_ready(0.001)
        assert backend.is_running()
        backend.force_trigger()
        backend.wait_ready(1.0)

    def test_close_always_stops(self, make_backend):
        be = make_backend()
        be.open()
        be.load(program(be.card))
        be.start(force_trigger=True)
        be.close()
        assert not be.is_running()
        be.close()  # closing twice is harmless

    # ------------------------------------------------------------------ step events

    def test_step_events_or_a_clear_unsupported_error(self, backend):
        seen: list[StepEvent] = []
        if not backend.supports_step_events:
            with pytest.raises(UnsupportedError):
                backend.add_step_listener(seen.append)
            return
        backend.add_step_listener(seen.append)
        self.run_until_events(backend)
        assert seen and all(isinstance(e, StepEvent) for e in seen)
        assert [e.sample for e in seen] == sorted(e.sample for e in seen)
        backend.remove_step_listener(seen.append)
        with pytest.raises(ProgramError):
            backend.remove_step_listener(seen.append)

    def run_until_events(self, backend) -> None:
        """Play long enough for some step entries (backends with step events override this)."""
        raise NotImplementedError
