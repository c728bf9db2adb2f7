"""Argmax stage: index of the largest of ``n`` values, the lowest index winning ties.

Schedule ``1 + n + 1`` cycles: setup, ``n`` cycles that read one value each (the
comparison one cycle later), and the tail cycle of the last comparison. The class
and every logit are held in registers from the following cycle on (``cls``,
``logits``), until the next inference's argmax.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from ..ir import Argmax
from .requant import fmt_shape
from .stage import stage_ports

__all__ = ["ArgmaxStage"]


class ArgmaxStage(wiring.Component):
    """Argmax over the input buffer; also keeps all logits for ``m_axis_tuser``.

    Ports: :mod:`poshw.hw.stage` (no output buffer: ``y_en`` stays low) plus
    ``cls`` (Out(8): the class index) and ``logits`` (Out(n * W): logit ``i`` at bits
    ``[i*W, (i+1)*W)``, W = the input format's width).
    """

    def __init__(self, stage: Argmax):
        if not isinstance(stage, Argmax):
            raise TypeError(f"ArgmaxStage: stage must be a poshw.ir.Argmax, not {stage!r}")
        if stage.n > 256:
            raise ValueError(f"ArgmaxStage: m_axis_tdata holds 8 bits, {stage.n} classes do not fit")
        self.stage = stage
        ports = stage_ports(stage)
        ports.update({"cls": Out(8), "logits": Out(stage.n * stage.in_fmt.bits)})
        super().__init__(ports)

    @property
    def cycles(self) -> int:
        return self.stage.cycles()

    def elaborate(self, platform):
        m = Module()
        n = self.stage.n
        shape = fmt_shape(self.stage.in_fmt)
        run = Signal()
        i = Signal(range(n + 1))
        with m.If(self.start):
            m.d.sync += [run.eq(1), i.eq(0)]
        with m.Elif(run):
            m.d.sync += i.eq(i + 1)
            with m.If(i == n - 1):
                m.d.sync += run.eq(0)
        m.d.comb += self.x_addr.eq(i)
        d_valid = Signal()
        d_idx = Signal(range(n))
        m.d.sync += [d_valid.eq(run), d_idx.eq(i)]
        best = Signal(shape)
        best_idx = Signal(8)
        regs = [Signal(shape, name=f"logit{j}") for j in range(n)]
        x = self.x_data
        with m.If(d_valid):
            with m.Switch(d_idx):
                for j in range(n):
                    with m.Case(j):
                        m.d.sync += regs[j].eq(x)
            with m.If((d_idx == 0) | (x > best)):
                m.d.sync += [best.eq(x), best_idx.eq(d_idx)]
        m.d.comb += [self.last.eq(d_valid & (d_idx == n - 1)), self.cls.eq(best_idx),
                     self.logits.eq(Cat(*regs))]
        return m
