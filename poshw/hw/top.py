"""The top level: stream ports, activation buffers, coefficient loader and the sequencer.

Ports exactly as docs/MICROARCHITECTURE.md (``clk``/``rst`` come from the ``sync``
domain). One inference: pixels ``t0 .. t0 + n_in - 1`` into the input buffer, then
each stage for exactly ``stage.cycles()`` cycles (a stage's ``start`` is the previous
one's ``last`` registered), ``m_axis_tvalid`` first high at ``t0 + latency_cycles()``
and held until ``m_axis_tready``. After a good coefficient load (last beat at
``t_last``) every synthesised stage runs weight synthesis in stage order and the
design is ready at ``t_last + synth_cycles()``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ir import UINT8, Argmax, Gather, Hadamard, MatVec, NetworkIR
from .argmax import ArgmaxStage
from .gather import GatherStage
from .hadamard import HadamardStage
from .loader import CoefLoader
from .matvec import MatVecStage
from .mem import AmaranthMemories, MemoryBackend

__all__ = ["PoshwTop", "stage_roms"]


def stage_roms(roms: Mapping[str, np.ndarray], i: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """``(basis_roms, seeds)`` of stage ``i`` from ``rom_contents``-style keys."""
    basis, seeds = {}, {}
    for key, arr in roms.items():
        stage, _, rom = key.partition(".")
        if stage != f"s{i}":
            continue
        if rom.startswith("basis"):
            basis[int(rom[5:])] = arr
        elif rom.startswith("seeds"):
            seeds[int(rom[5:])] = arr
    return basis, seeds


class PoshwTop(wiring.Component):
    """A compiled network as one synchronous design.

    Parameters
    ----------
    ir : :class:`poshw.ir.NetworkIR`
    roms : mapping
        Every ROM of the design, keyed as :func:`poshw.compiler.roms.rom_contents`
        returns them (``"s<i>.weights"``, ``"s<i>.basis<g>"``, ``"s<i>.seeds<g>"``,
        ``"s<i>.index"``), as integer arrays.
    mems : :class:`~poshw.hw.mem.MemoryBackend`
        Amaranth memories (simulation, default) or ``$readmemh`` primitives (Verilog).

    Ports
    -----
    s_axis_tdata (In 8), s_axis_tvalid (In), s_axis_tready (Out), s_axis_tlast (In):
        Pixels, one per beat, row-major. ``tready`` is high when idle with valid
        parameters (and no coefficient word waiting) or while receiving an image.
    s_coef_tdata (In 32), s_coef_tvalid (In), s_coef_tready (Out), s_coef_tlast (In):
        The parameter image; accepted only between inferences.
    m_axis_tdata (Out 8), m_axis_tuser (Out n*W), m_axis_tvalid (Out), m_axis_tready (In):
        Class index and all logits (logit ``i`` at bits ``[i*W, (i+1)*W)``).
    ready (Out): idle with valid parameters.
    error (Out): sticky until the next coefficient load: bad header, wrong parameter
        count, wrong pixel count.
    """

    def __init__(self, ir: NetworkIR, roms: Mapping[str, np.ndarray] | None = None, *,
                 mems: MemoryBackend | None = None):
        if not isinstance(ir, NetworkIR):
            raise TypeError(f"PoshwTop: ir must be a poshw.ir.NetworkIR, not {ir!r}")
        if ir.input_fmt != UINT8:
            raise ValueError(f"PoshwTop: the pixel stream is uint8, the IR's input is {ir.input_fmt}")
        roms = dict(roms or {})
        self.ir = ir
        self.mems = mems if mems is not None else AmaranthMemories()
        self.stage_units = []
        for i, st in enumerate(ir.stages):
            basis, seeds = stage_roms(roms, i)
            name = f"s{i}"
            if isinstance(st, MatVec):
                unit = MatVecStage(st, weights=roms.get(f"{name}.weights") if st.weight_source.value == "rom" else None,
                                   basis_roms=basis, seeds=seeds, mems=self.mems, name=name)
            elif isinstance(st, Hadamard):
                unit = HadamardStage(st, basis_roms=basis, seeds=seeds, mems=self.mems, name=name)
            elif isinstance(st, Gather):
                if f"{name}.index" not in roms:
                    raise ValueError(f"PoshwTop: gather stage {i} needs ROM {name}.index")
                unit = GatherStage(st, roms[f"{name}.index"], mems=self.mems, name=name)
            elif isinstance(st, Argmax):
                unit = ArgmaxStage(st)
            else:  # pragma: no cover - the IR admits no other kinds
                raise ValueError(f"PoshwTop: unsupported stage kind {st.kind}")
            self.stage_units.append(unit)
        self.loader = CoefLoader(ir)
        am = ir.stages[-1]
        self.logit_bits = am.in_fmt.bits
        super().__init__({
            "s_axis_tdata": In(8), "s_axis_tvalid": In(1), "s_axis_tready": Out(1), "s_axis_tlast": In(1),
            "s_coef_tdata": In(32), "s_coef_tvalid": In(1), "s_coef_tready": Out(1), "s_coef_tlast": In(1),
            "m_axis_tdata": Out(8), "m_axis_tuser": Out(am.n * self.logit_bits),
            "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "ready": Out(1), "error": Out(1),
        })

    @property
    def latency_cycles(self) -> int:
        """Cycles from the first pixel beat to ``m_axis_tvalid`` (back-to-back beats)."""
        return self.ir.latency_cycles()

    @property
    def synth_cycles(self) -> int:
        """Cycles from the last coefficient beat to ``ready``."""
        return self.ir.synth_cycles()

    def elaborate(self, platform):
        m = Module()
        ir, mems = self.ir, self.mems
        n_in = ir.input_len
        units = self.stage_units
        S = len(units)
        for i, u in enumerate(units):
            m.submodules[f"stage{i}"] = u
        m.submodules.loader = ld = self.loader

        # ---- activation buffers: buffer 0 = input, buffer i+1 = output of stage i ----------------
        bufs = [mems.memory(m, "buf0", 8, n_in)]
        for i, st in enumerate(ir.stages[:-1]):
            bufs.append(mems.memory(m, f"buf{i + 1}", st.output_fmt.bits, st.n_outputs))
        for i, u in enumerate(units):
            m.d.comb += [bufs[i].raddr.eq(u.x_addr), u.x_data.eq(bufs[i].rdata)]
            if i + 1 < S:
                b = bufs[i + 1]
                m.d.comb += [b.waddr.eq(u.y_addr), b.wdata.eq(u.y_data), b.wen.eq(u.y_en)]

        # ---- parameters ----------------------------------------------------------------------------
        valid = Signal()
        error = Signal()
        for i, u in enumerate(units):
            m.d.comb += [u.p_en.eq(ld.p_en & (ld.p_stage == i)), u.p_field.eq(ld.p_field),
                         u.p_idx.eq(ld.p_idx), u.p_data.eq(ld.p_data)]
        m.d.comb += [ld.s_tdata.eq(self.s_coef_tdata), ld.s_tvalid.eq(self.s_coef_tvalid),
                     ld.s_tlast.eq(self.s_coef_tlast), self.s_coef_tready.eq(ld.s_tready)]

        # ---- synthesis chain: synthesised stages in stage order --------------------------------------
        synth_units = [u for st, u in zip(ir.stages, units) if st.synth_cycles() > 0]
        synth_go = Signal()     # registered: first synthesised stage starts
        m.d.sync += synth_go.eq(ld.done)
        if synth_units:
            m.d.comb += synth_units[0].s_start.eq(synth_go)
            for a, b in zip(synth_units, synth_units[1:]):
                m.d.sync += b.s_start.eq(a.s_last)
            synth_end = synth_units[-1].s_last
        else:
            synth_end = 0

        # ---- inference chain ----------------------------------------------------------------------
        go = Signal()
        m.d.comb += units[0].start.eq(go)
        for a, b in zip(units, units[1:]):
            m.d.sync += b.start.eq(a.last)
        am = units[-1]
        m.d.comb += [self.m_axis_tdata.eq(am.cls), self.m_axis_tuser.eq(am.logits)]

        pix = Signal(range(n_in + 1))
        pfire = Signal()
        m.d.comb += pfire.eq(self.s_axis_tvalid & self.s_axis_tready)
        m.d.comb += [bufs[0].waddr.eq(pix), bufs[0].wdata.eq(self.s_axis_tdata), bufs[0].wen.eq(0)]
        m.d.sync += go.eq(0)

        def take_pixel():
            m.d.comb += bufs[0].wen.eq(1)
            with m.If(pix == n_in - 1):
                m.d.sync += pix.eq(0)
                with m.If(self.s_axis_tlast):
                    m.d.sync += go.eq(1)
                    m.next = "RUN"
                with m.Else():                 # late tlast: drop the rest of the packet
                    m.d.sync += error.eq(1)
                    m.next = "DRAIN"
            with m.Elif(self.s_axis_tlast):    # early tlast
                m.d.sync += [pix.eq(0), error.eq(1)]
                m.next = "IDLE"
            with m.Else():
                m.d.sync += pix.eq(pix + 1)
                m.next = "RECV"

        with m.FSM(name="top_fsm"):
            with m.State("IDLE"):
                m.d.comb += [ld.accept.eq(1),
                             self.s_axis_tready.eq(valid & ~self.s_coef_tvalid),
                             self.ready.eq(valid)]
                with m.If(ld.s_tvalid & ld.s_tready):
                    with m.If(~ld.err | ~ld.s_tlast):
                        m.next = "LOAD"
                with m.Elif(pfire):
                    take_pixel()
            with m.State("RECV"):
                m.d.comb += self.s_axis_tready.eq(1)
                with m.If(pfire):
                    take_pixel()
            with m.State("DRAIN"):
                m.d.comb += self.s_axis_tready.eq(1)
                with m.If(pfire & self.s_axis_tlast):
                    m.next = "IDLE"
            with m.State("RUN"):
                with m.If(am.last):
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += self.m_axis_tvalid.eq(1)
                with m.If(self.m_axis_tready):
                    m.next = "IDLE"
            with m.State("LOAD"):
                with m.If(ld.done):
                    if synth_units:
                        m.next = "SYNTH"
                    else:
                        m.d.sync += valid.eq(1)
                        m.next = "IDLE"
                with m.Elif(~ld.busy):
                    m.next = "IDLE"
            with m.State("SYNTH"):
                with m.If(synth_end):
                    m.d.sync += valid.eq(1)
                    m.next = "IDLE"

        with m.If(ld.begin):
            m.d.sync += error.eq(0)
        with m.If(ld.err):
            m.d.sync += error.eq(1)
        with m.If(ld.invalidate):
            m.d.sync += valid.eq(0)
        m.d.comb += self.error.eq(error)
        return m
