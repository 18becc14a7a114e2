"""The hardware-in-the-loop harness: scope capture over pyvisa and the checks on what the card played."""
