"""Coefficient stream parser: checks the header and length, routes words to the stages.

The stream is the parameter image (docs/MICROARCHITECTURE.md): ``PARAM_MAGIC``, the
design id, then one word per value in ``NetworkIR.param_layout()`` order, ``tlast``
on the last word.

* wrong magic or design id: ``err``; the words up to ``tlast`` are dropped and the old
  parameters stay in force (nothing is written);
* ``tlast`` early or late (after a good header): ``err`` and ``invalidate``; a late
  stream is dropped up to its ``tlast``;
* ``tlast`` on exactly the last word: ``done`` (the top level then runs weight synthesis).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ir import PARAM_MAGIC, NetworkIR

__all__ = ["CoefLoader"]


class CoefLoader(wiring.Component):
    """Parses the coefficient stream of one design.

    Parameters
    ----------
    ir : :class:`poshw.ir.NetworkIR`

    Ports
    -----
    s_tdata, s_tvalid, s_tready, s_tlast :
        The AXI4-Stream coefficient input.
    accept : In(1)
        A new stream may start (the design is idle); a stream already started is
        always taken to its end.
    busy : Out(1)
        Inside a stream (after its first word, before its ``tlast``).
    p_en, p_stage, p_field, p_idx, p_data : Out
        One parameter write per payload word: stage, field index in
        ``stage.param_fields()``, element index, word.
    begin : Out(1)
        Pulse with the first word of a stream (clears the sticky error).
    invalidate : Out(1)
        Pulse: the stored parameters are (being) overwritten or incomplete.
    err : Out(1)
        Pulse: bad header or length.
    done : Out(1)
        Pulse with the ``tlast`` of a good stream.
    """

    def __init__(self, ir: NetworkIR):
        if not isinstance(ir, NetworkIR):
            raise TypeError(f"CoefLoader: ir must be a poshw.ir.NetworkIR, not {ir!r}")
        self.ir = ir
        self.layout = ir.param_layout()
        self.design_id = ir.design_id()
        fields_per_stage = max([len(st.param_fields()) for st in ir.stages] + [1])
        max_count = max([f.count for f in self.layout] + [1])
        super().__init__({
            "s_tdata": In(32), "s_tvalid": In(1), "s_tready": Out(1), "s_tlast": In(1),
            "accept": In(1), "busy": Out(1),
            "p_en": Out(1), "p_stage": Out(range(max(len(ir.stages), 2))),
            "p_field": Out(range(max(fields_per_stage, 2))), "p_idx": Out(range(max(max_count, 2))),
            "p_data": Out(32),
            "begin": Out(1), "invalidate": Out(1), "err": Out(1), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layout = self.layout
        nf = len(layout)
        fld = Signal(range(max(nf, 1) + 1))
        idx = Signal.like(self.p_idx)
        last_idx = Signal.like(self.p_idx)
        local = {}
        for f in layout:
            local.setdefault(f.stage, [])
        with m.Switch(fld):
            for j, f in enumerate(layout):
                st_fields = [n for n, _, _ in self.ir.stages[f.stage].param_fields()]
                with m.Case(j):
                    m.d.comb += [self.p_stage.eq(f.stage), self.p_field.eq(st_fields.index(f.name)),
                                 last_idx.eq(f.count - 1)]
        m.d.comb += [self.p_idx.eq(idx), self.p_data.eq(self.s_tdata)]
        fire = Signal()
        m.d.comb += fire.eq(self.s_tvalid & self.s_tready)
        last = self.s_tlast
        with m.FSM(name="coef_fsm"):
            with m.State("IDLE"):
                m.d.comb += self.s_tready.eq(self.accept)
                with m.If(fire):
                    m.d.comb += self.begin.eq(1)
                    with m.If(self.s_tdata != PARAM_MAGIC):
                        m.d.comb += self.err.eq(1)
                        with m.If(~last):
                            m.next = "DROP"
                    with m.Elif(last):
                        m.d.comb += [self.err.eq(1), self.invalidate.eq(1)]
                    with m.Else():
                        m.next = "ID"
            with m.State("ID"):
                m.d.comb += [self.s_tready.eq(1), self.busy.eq(1)]
                with m.If(fire):
                    with m.If(self.s_tdata != self.design_id):
                        m.d.comb += self.err.eq(1)
                        m.next = "IDLE"
                        with m.If(~last):
                            m.next = "DROP"
                    with m.Else():
                        m.d.comb += self.invalidate.eq(1)
                        m.d.sync += [fld.eq(0), idx.eq(0)]
                        if nf == 0:
                            m.next = "IDLE"
                            with m.If(last):
                                m.d.comb += self.done.eq(1)
                            with m.Else():
                                m.d.comb += self.err.eq(1)
                                m.next = "DROP"
                        else:
                            m.next = "PAYLOAD"
                            with m.If(last):
                                m.d.comb += self.err.eq(1)
                                m.next = "IDLE"
            with m.State("PAYLOAD"):
                m.d.comb += [self.s_tready.eq(1), self.busy.eq(1)]
                with m.If(fire):
                    m.d.comb += self.p_en.eq(1)
                    final = (fld == nf - 1) & (idx == last_idx)
                    with m.If(idx == last_idx):
                        m.d.sync += [idx.eq(0), fld.eq(fld + 1)]
                    with m.Else():
                        m.d.sync += idx.eq(idx + 1)
                    with m.If(final):
                        m.next = "IDLE"
                        with m.If(last):
                            m.d.comb += self.done.eq(1)
                        with m.Else():
                            m.d.comb += [self.err.eq(1), self.invalidate.eq(1)]
                            m.next = "DROP"
                    with m.Elif(last):
                        m.d.comb += [self.err.eq(1), self.invalidate.eq(1)]
                        m.next = "IDLE"
            with m.State("DROP"):
                m.d.comb += [self.s_tready.eq(1), self.busy.eq(1)]
                with m.If(fire & last):
                    m.next = "IDLE"
        return m
