"""Matrix-vector stage: ``y = epilogue(W x + b)`` on P MAC lanes.

Schedule (docs/MICROARCHITECTURE.md), ``1 + B * (n_in + P + 2)`` cycles with
``B = ceil(n_out / P)`` blocks: a setup cycle; per block ``n_in`` cycles that issue
the reads of weight word ``b * n_in + j`` and activation ``j`` (the MAC of element
``j`` in the following cycle), one drain cycle (the last MAC), ``P`` epilogue
cycles (lane ``l``: add the bias, requantise, saturate) and a flush cycle; the
output ``b * P + l`` is written one cycle after its epilogue cycle (the last lane in
the flush cycle).

The weight memory is lane-packed: word ``b * n_in + c`` holds ``W[b*P + l, c]`` at
bits ``[l*w, (l+1)*w)``. It is a ROM (``weight_source = rom``), a RAM written by the
coefficient stream in row-major order (``ram``), or a RAM filled by
:class:`~poshw.hw.synth.WeightSynth` after each load (``synth``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from ..ir import INT32, MatVec, WeightSource
from .mem import AmaranthMemories, MemoryBackend
from .requant import Requantiser
from .stage import connect_synth, field_index, requant_registers, stage_ports
from .synth import WeightSynth

__all__ = ["MatVecStage", "pack_lanes"]


def pack_lanes(matrix, lanes: int, bits: int) -> list[int]:
    """Lane-packed words of ``W [n_out, n_in]`` (0 beyond ``n_out``)."""
    w = np.asarray(matrix, dtype=np.int64)
    n_out, n_in = w.shape
    blocks = -(-n_out // lanes)
    mask = (1 << bits) - 1
    words = []
    for b in range(blocks):
        for c in range(n_in):
            word = 0
            for lane in range(lanes):
                r = b * lanes + lane
                if r < n_out:
                    word |= (int(w[r, c]) & mask) << (lane * bits)
            words.append(word)
    return words


class MatVecStage(wiring.Component):
    """One matvec stage with its weight, bias and requantisation storage.

    Parameters
    ----------
    stage : :class:`poshw.ir.MatVec`
    weights : array ``[n_out, n_in]``
        ROM contents (``weight_source = rom`` only).
    basis_roms, seeds : mapping group -> array
        Basis and seed ROMs of a synthesised stage (see :class:`WeightSynth`).
    mems : :class:`~poshw.hw.mem.MemoryBackend`
    name : str
        Memory name prefix, e.g. ``"s0"`` (memories ``s0.weights``, ``s0.bias`` ...).

    Ports: see :mod:`poshw.hw.stage`; ``y_data`` has the output format (the
    accumulator width for a stage without requantisation).
    """

    def __init__(self, stage: MatVec, *, weights=None, basis_roms: Mapping[int, Sequence] | None = None,
                 seeds: Mapping[int, Sequence] | None = None, mems: MemoryBackend | None = None,
                 name: str = "matvec"):
        if not isinstance(stage, MatVec):
            raise TypeError(f"MatVecStage: stage must be a poshw.ir.MatVec, not {stage!r}")
        self.stage, self.name = stage, name
        self.mems = mems if mems is not None else AmaranthMemories()
        self._weights = None
        if stage.weight_source is WeightSource.ROM:
            if weights is None:
                raise ValueError(f"MatVecStage {name}: a ROM-weight stage needs its weights")
            w = np.asarray(weights, dtype=np.int64)
            if w.shape != (stage.n_out, stage.n_in):
                raise ValueError(f"MatVecStage {name}: weights have shape {w.shape}, "
                                 f"expected {(stage.n_out, stage.n_in)}")
            if w.size and (w.min() < stage.weight_fmt.lo or w.max() > stage.weight_fmt.hi):
                raise ValueError(f"MatVecStage {name}: ROM weights do not fit {stage.weight_fmt}")
            self._weights = w
        elif weights is not None:
            raise ValueError(f"MatVecStage {name}: weights are only given for a ROM-weight stage "
                             f"(this one is {stage.weight_source.value})")
        self.synth = None
        if stage.synth is not None:
            self.synth = WeightSynth(stage.synth, stage.weight_fmt, stage.lanes, basis_roms=basis_roms,
                                     seeds=seeds, mems=self.mems, name=f"{name}")
        super().__init__(stage_ports(stage))

    @property
    def cycles(self) -> int:
        return self.stage.cycles()

    def elaborate(self, platform):
        m = Module()
        st, mems = self.stage, self.mems
        P, n_in, n_out = st.lanes, st.n_in, st.n_out
        B = st.blocks
        L = n_in + P + 2
        wb = st.weight_fmt.bits

        # ---- weights ---------------------------------------------------------------------------
        if st.weight_source is WeightSource.ROM:
            wm = mems.memory(m, f"{self.name}.weights", P * wb, B * n_in,
                             init=pack_lanes(self._weights, P, wb), writable=False)
        else:
            wm = mems.memory(m, f"{self.name}.weights", P * wb, B * n_in, granularity=wb)
        if st.weight_source is WeightSource.RAM:
            f_w = field_index(st, "weights")
            lc = Signal(range(n_in + 1))
            ll = Signal(range(P + 1))
            lbase = Signal(range(B * n_in + 1))
            first = self.p_idx == 0
            c_eff = Mux(first, 0, lc)
            l_eff = Mux(first, 0, ll)
            b_eff = Mux(first, 0, lbase)
            we = self.p_en & (self.p_field == f_w)
            m.d.comb += [wm.waddr.eq(b_eff + c_eff), wm.wdata.eq(self.p_data[:wb].replicate(P)),
                         wm.wen.eq(Mux(we, Const(1, P) << l_eff, 0))]
            with m.If(we):
                with m.If(c_eff == n_in - 1):
                    m.d.sync += lc.eq(0)
                    with m.If(l_eff == P - 1):
                        m.d.sync += [ll.eq(0), lbase.eq(b_eff + n_in)]
                    with m.Else():
                        m.d.sync += [ll.eq(l_eff + 1), lbase.eq(b_eff)]
                with m.Else():
                    m.d.sync += [lc.eq(c_eff + 1), ll.eq(l_eff), lbase.eq(b_eff)]
        elif st.weight_source is WeightSource.SYNTH:
            m.submodules.synth = syn = self.synth
            connect_synth(m, self, syn, wm)

        # ---- bias and requantisation parameters ------------------------------------------------
        mult, shift = requant_registers(m, self)
        bias_data = Signal(signed(INT32.bits))
        bias_raddr = Signal(range(B * P + 1))
        if st.bias:
            bm = mems.memory(m, f"{self.name}.bias", INT32.bits, B * P)
            f_b = field_index(st, "bias")
            m.d.comb += [bm.waddr.eq(self.p_idx), bm.wdata.eq(self.p_data),
                         bm.wen.eq(self.p_en & (self.p_field == f_b)),
                         bm.raddr.eq(bias_raddr), bias_data.eq(bm.rdata.as_signed())]

        # ---- sequencing --------------------------------------------------------------------------
        run = Signal()
        t = Signal(range(L + 1))
        b = Signal(range(B + 1))
        wbase = Signal(range(B * n_in + 1))
        obase = Signal(range(B * P + 1))
        with m.If(self.start):
            m.d.sync += [run.eq(1), t.eq(0), b.eq(0), wbase.eq(0), obase.eq(0)]
        with m.Elif(run):
            with m.If(t == L - 1):
                m.d.sync += [t.eq(0), b.eq(b + 1), wbase.eq(wbase + n_in), obase.eq(obase + P)]
                with m.If(b == B - 1):
                    m.d.sync += run.eq(0)
            with m.Else():
                m.d.sync += t.eq(t + 1)
        m.d.comb += self.last.eq(run & (b == B - 1) & (t == L - 1))

        # issue: weight word wbase + t and activation t, for t < n_in
        m.d.comb += [wm.raddr.eq(wbase + t), self.x_addr.eq(t)]
        # MAC of element t - 1 for 1 <= t <= n_in
        mac = Signal()
        m.d.comb += mac.eq(run & (t >= 1) & (t <= n_in))
        accs = [Signal(signed(st.acc_bits), name=f"acc{lane}") for lane in range(P)]
        x = self.x_data
        for lane, acc in enumerate(accs):
            w = wm.rdata[lane * wb:(lane + 1) * wb].as_signed()
            with m.If(mac):
                m.d.sync += acc.eq(Mux(t == 1, 0, acc) + w * x)

        # epilogue: lane l = t - n_in - 1 for n_in + 1 <= t <= n_in + P; bias read one cycle earlier
        m.d.comb += bias_raddr.eq(obase + (t - n_in))
        epi = Signal()
        lane_i = Signal(range(P + 1))
        m.d.comb += [epi.eq(run & (t >= n_in + 1) & (t <= n_in + P)), lane_i.eq(t - n_in - 1)]
        acc_sel = Signal(signed(st.acc_bits))
        with m.Switch(lane_i):
            for lane, acc in enumerate(accs):
                with m.Case(lane):
                    m.d.comb += acc_sel.eq(acc)
        m.submodules.requant = rq = Requantiser(st.acc_bits, st.out_fmt, st.requant)
        m.d.comb += [rq.value.eq(acc_sel + (bias_data if st.bias else 0)), rq.mult.eq(mult),
                     rq.shift.eq(shift)]
        e_valid = Signal()
        e_idx = Signal(range(B * P + 1))
        m.d.sync += [e_valid.eq(epi), e_idx.eq(obase + lane_i)]
        m.d.comb += [self.y_addr.eq(e_idx), self.y_data.eq(rq.y), self.y_en.eq(e_valid & (e_idx < n_out))]
        return m
