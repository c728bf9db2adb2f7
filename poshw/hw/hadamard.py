"""Hadamard stage: ``y[f, i] = epilogue(d[f, i] * x[c(f), i] + bias[f])``.

Schedule ``1 + F * n + 3`` cycles: setup, one element per cycle (reads of ``d``,
``x`` and the filter's bias), then three pipeline cycles: multiply-add,
requantisation multiply, round/saturate and write. The diagonals ``d`` (``F x n``)
are synthesised after each coefficient load (:class:`~poshw.hw.synth.WeightSynth`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from amaranth import Module, Signal, signed
from amaranth.lib import wiring

from ..ir import INT32, Hadamard
from .mem import AmaranthMemories, MemoryBackend
from .requant import Requantiser
from .stage import connect_synth, field_index, requant_registers, stage_ports
from .synth import WeightSynth

__all__ = ["HadamardStage"]


class HadamardStage(wiring.Component):
    """One Hadamard stage with its diagonal memory, biases and requantisation registers.

    Parameters: ``stage`` (:class:`poshw.ir.Hadamard`), ``basis_roms`` / ``seeds`` of its
    synthesis, ``mems``, ``name``. Ports: :mod:`poshw.hw.stage`.
    """

    def __init__(self, stage: Hadamard, *, basis_roms: Mapping[int, Sequence] | None = None,
                 seeds: Mapping[int, Sequence] | None = None, mems: MemoryBackend | None = None,
                 name: str = "hadamard"):
        if not isinstance(stage, Hadamard):
            raise TypeError(f"HadamardStage: stage must be a poshw.ir.Hadamard, not {stage!r}")
        self.stage, self.name = stage, name
        self.mems = mems if mems is not None else AmaranthMemories()
        self.synth = WeightSynth(stage.synth, stage.weight_fmt, 1, basis_roms=basis_roms, seeds=seeds,
                                 mems=self.mems, name=name)
        super().__init__(stage_ports(stage))

    @property
    def cycles(self) -> int:
        return self.stage.cycles()

    def elaborate(self, platform):
        m = Module()
        st, mems = self.stage, self.mems
        F, n = st.filters, st.n
        N = F * n
        wb = st.weight_fmt.bits
        dm = mems.memory(m, f"{self.name}.weights", wb, N)
        m.submodules.synth = syn = self.synth
        connect_synth(m, self, syn, dm)
        mult, shift = requant_registers(m, self)

        run = Signal()
        e = Signal(range(N + 1))
        f = Signal(range(F + 1))
        i = Signal(range(n + 1))
        xbase = Signal(range(max(st.n_inputs, 2) + n))
        with m.If(self.start):
            m.d.sync += [run.eq(1), e.eq(0), f.eq(0), i.eq(0), xbase.eq(0)]
        with m.Elif(run):
            m.d.sync += e.eq(e + 1)
            with m.If(i == n - 1):
                m.d.sync += [i.eq(0), f.eq(f + 1)]
                if st.channels_in != 1:
                    m.d.sync += xbase.eq(xbase + n)
            with m.Else():
                m.d.sync += i.eq(i + 1)
            with m.If(e == N - 1):
                m.d.sync += run.eq(0)
        m.d.comb += [dm.raddr.eq(e), self.x_addr.eq(xbase + i)]
        bias = Signal(signed(INT32.bits))
        if st.bias:
            bm = mems.memory(m, f"{self.name}.bias", INT32.bits, F)
            m.d.comb += [bm.waddr.eq(self.p_idx), bm.wdata.eq(self.p_data),
                         bm.wen.eq(self.p_en & (self.p_field == field_index(st, "bias"))),
                         bm.raddr.eq(f), bias.eq(bm.rdata.as_signed())]

        v1 = Signal(signed(st.acc_bits))
        s1, s2, s3 = Signal(), Signal(), Signal()
        e1, e2, e3 = Signal(range(N)), Signal(range(N)), Signal(range(N))
        m.d.sync += [s1.eq(run), s2.eq(s1), s3.eq(s2), e1.eq(e), e2.eq(e1), e3.eq(e2)]
        m.d.sync += v1.eq(dm.rdata.as_signed() * self.x_data + (bias if st.bias else 0))
        m.submodules.requant = rq = Requantiser(st.acc_bits, st.out_fmt, st.requant)
        m.d.comb += [rq.value.eq(v1), rq.mult.eq(mult), rq.shift.eq(shift)]
        m.d.comb += [self.y_addr.eq(e3), self.y_data.eq(rq.y), self.y_en.eq(s3),
                     self.last.eq(s3 & (e3 == N - 1))]
        return m
