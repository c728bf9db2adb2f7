"""Fixed-point semantics: the numpy golden reference and post-training quantisation.

``golden`` implements docs/FIXED_POINT.md once (the reference every other
implementation is checked against); ``quantize`` turns a float coefficient set into
integer parameters for a hardware IR, calibrated on training images.
"""

from .golden import (
    GoldenModel, GoldenResult, Params, StageResult, count_overflow, count_saturated,
    golden_forward, requantize, round_shift, saturate, stage_forward, stage_roms, synthesize,
)

__all__ = [
    "GoldenModel", "GoldenResult", "Params", "StageResult",
    "count_overflow", "count_saturated", "golden_forward", "requantize", "round_shift", "saturate", "stage_forward",
    "stage_roms", "synthesize",
]
