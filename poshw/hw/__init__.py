"""Amaranth datapaths of poshw designs, Verilog generation, co-simulation and iCE40 synthesis.

One module per component (amaranth 0.5 ``wiring.Component`` with documented ports):

=================  ===========================================================================
``mem``            memories: Amaranth ``Memory`` (simulation) or the ``poshw_mem`` $readmemh primitive
``generator``      :class:`BasisGenerator`: xorshift32 + family value map, one entry per cycle
``requant``        :class:`Requantiser`: bias-added accumulator x mult, round half up, saturate/ReLU
``synth``          :class:`WeightSynth`: weighted-sum accumulator ``sum_k a_k M_k`` -> weight memory
``matvec``         :class:`MatVecStage`: P MAC lanes, ROM / RAM / synthesised weights, epilogue
``hadamard``       :class:`HadamardStage`
``gather``         :class:`GatherStage`
``argmax``         :class:`ArgmaxStage` (lowest index wins ties; keeps the logits)
``loader``         :class:`CoefLoader`: the coefficient stream (header, length, routing)
``top``            :class:`PoshwTop`: AXI4-Stream-style top level and the stage sequencer
``verilog``        :func:`generate_rtl`: Verilog + ``.hex`` images + ``rtl.json``
``cosim``          :func:`run_cosim`: the cocotb suite (``sim/poshw_tb.py``) on Icarus / Verilator
``flow``           :func:`compile_build`, :func:`verify_build` (``poshw compile`` / ``poshw verify``)
``ice40``          :class:`Ice40Wrapper`, :func:`synth_build` (``poshw synth``)
``testing``        toy designs, random parameters, :func:`simulate_top` (Amaranth simulator driver)
=================  ===========================================================================

The schedule is docs/MICROARCHITECTURE.md exactly (``Stage.cycles()``,
``NetworkIR.latency_cycles()``, ``NetworkIR.synth_cycles()``); see docs/HARDWARE.md.
"""

from .argmax import ArgmaxStage
from .gather import GatherStage
from .generator import BasisGenerator
from .hadamard import HadamardStage
from .loader import CoefLoader
from .matvec import MatVecStage
from .mem import AmaranthMemories, MemoryBackend, ReadmemhMemories
from .requant import Requantiser
from .synth import WeightSynth
from .top import PoshwTop
from .verilog import TOP_NAME, generate_rtl, load_rtl_manifest

__all__ = [
    "AmaranthMemories", "ArgmaxStage", "BasisGenerator", "CoefLoader", "GatherStage", "HadamardStage",
    "MatVecStage", "MemoryBackend", "PoshwTop", "ReadmemhMemories", "Requantiser", "TOP_NAME", "WeightSynth",
    "generate_rtl", "load_rtl_manifest",
]
