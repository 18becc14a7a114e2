"""The hardware-in-the-loop harness: scope capture over pyvisa and the checks on what the card played.

- :mod:`hil.scopes`: one :class:`~hil.scopes.Scope` interface and pyvisa drivers for Keysight
  InfiniiVision, Tektronix MSO 4/5/6 and Rigol DS1000Z, returning canonical
  :class:`~hil.scopes.Capture` s (codes, scaling, t = 0 at the trigger).
- :mod:`hil.simrig`: the simulated rig for CI: the card's analog output (hold, reconstruction
  filter, images), a seeded scope model (rate, bandwidth, ADC bits and noise, jitter, timebase
  ppm, trigger skew), simulated scopes speaking each family's command set behind a loopback
  SCPI server, and fault injection.
- :mod:`hil.analysis`: the checks (phase jump, wrap spurs and phase step per wrap, tone
  frequency and amplitude, chirp rate, phase residual, glitch scan), each returning measured,
  sigma, limit, unit and verdict.
- :mod:`hil.suite`, :mod:`hil.runner`: the validation programs and the nightly runner behind
  ``awgrt hil --rig sim|rig.toml --out DIR`` (see ``hil/rig.example.toml``);
  ``python -m hil.resolution`` measures a rig's resolution, per check, against the Cramer-Rao bound.
- :mod:`hil.captures`: every record a run took is kept (``DIR/captures``);
  :func:`~hil.captures.check_capture` runs a program's checks on saved captures and
  ``awgrt hil --recheck DIR`` on a whole run's.
- ``pytest hil --rig rig.toml`` (from the repository root): the rig tests in ``hil/rigtests`` (marker
  ``hil``, skipped without ``--rig``; not installed with the package).
"""
