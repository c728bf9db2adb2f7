"""Gather stage: ``y[c * n_out + i] = x[c * n_in + index[i]]`` from a fixed index ROM.

Schedule ``1 + N + 2`` cycles (``N = channels * n_out``): setup, one output per
cycle (index-ROM read), then the activation read and the write.
"""

from __future__ import annotations

import numpy as np
from amaranth import Module, Signal
from amaranth.lib import wiring

from ..ir import Gather
from .mem import AmaranthMemories, MemoryBackend
from .stage import stage_ports

__all__ = ["GatherStage"]


class GatherStage(wiring.Component):
    """One gather stage with its index ROM.

    Parameters: ``stage`` (:class:`poshw.ir.Gather`), ``index`` (``n_out`` integers in
    ``0..n_in-1``), ``mems``, ``name``. Ports: :mod:`poshw.hw.stage`.
    """

    def __init__(self, stage: Gather, index, *, mems: MemoryBackend | None = None, name: str = "gather"):
        if not isinstance(stage, Gather):
            raise TypeError(f"GatherStage: stage must be a poshw.ir.Gather, not {stage!r}")
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        if idx.size != stage.n_out or (idx.size and (idx.min() < 0 or idx.max() >= stage.n_in)):
            raise ValueError(f"GatherStage {name}: the index ROM needs {stage.n_out} values in 0..{stage.n_in - 1}")
        self.stage, self.name, self.index = stage, name, idx
        self.mems = mems if mems is not None else AmaranthMemories()
        super().__init__(stage_ports(stage))

    @property
    def cycles(self) -> int:
        return self.stage.cycles()

    def elaborate(self, platform):
        m = Module()
        st = self.stage
        N, n_out, n_in = st.n_outputs, st.n_out, st.n_in
        ibits = max(1, (n_in - 1).bit_length())
        rom = self.mems.memory(m, f"{self.name}.index", ibits, n_out, init=[int(v) for v in self.index],
                               writable=False)
        run = Signal()
        o = Signal(range(N + 1))
        i = Signal(range(n_out + 1))
        cbase = Signal(range(st.n_inputs + n_in + 1))
        with m.If(self.start):
            m.d.sync += [run.eq(1), o.eq(0), i.eq(0), cbase.eq(0)]
        with m.Elif(run):
            m.d.sync += o.eq(o + 1)
            with m.If(i == n_out - 1):
                m.d.sync += [i.eq(0), cbase.eq(cbase + n_in)]
            with m.Else():
                m.d.sync += i.eq(i + 1)
            with m.If(o == N - 1):
                m.d.sync += run.eq(0)
        m.d.comb += rom.raddr.eq(i)
        s1, s2 = Signal(), Signal()
        o1, o2 = Signal(range(N)), Signal(range(N))
        c1 = Signal.like(cbase)
        m.d.sync += [s1.eq(run), s2.eq(s1), o1.eq(o), o2.eq(o1), c1.eq(cbase)]
        m.d.comb += [self.x_addr.eq(c1 + rom.rdata), self.y_addr.eq(o2), self.y_data.eq(self.x_data),
                     self.y_en.eq(s2), self.last.eq(s2 & (o2 == N - 1))]
        return m
