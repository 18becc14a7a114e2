"""The compiler stages: resolve, quantize (with wrap snapping and phases), synthesis and steps.

Each stage is a pure function of its inputs; see the stage modules for their rules.
"""
