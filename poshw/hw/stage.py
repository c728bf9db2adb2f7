"""What every stage component shares: the run, parameter and synthesis interfaces.

Run interface (driven by the sequencer, docs/MICROARCHITECTURE.md):

* ``start`` (in): high in the stage's setup cycle; ``last`` (out): high in its final
  cycle, exactly ``stage.cycles() - 1`` cycles later. The next stage's ``start`` is
  ``last`` registered, so stages run back to back.
* ``x_addr`` (out) / ``x_data`` (in): synchronous read of the input activation buffer
  (data the cycle after the address).
* ``y_addr``, ``y_data``, ``y_en`` (out): write of the output activation buffer.

Parameter interface (driven by the coefficient loader): ``p_en``, ``p_field`` (the
index of the field in ``stage.param_fields()``), ``p_idx`` (element index inside
the field, counting from 0 in stream order), ``p_data`` (the 32-bit word).

Synthesis interface: ``s_start`` (in), ``s_last`` (out), like ``start``/``last`` with
``stage.synth_cycles()`` cycles (stages without synthesis never raise ``s_last``).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib.wiring import In, Out

from ..ir import REQUANT_MULT, REQUANT_SHIFT, Stage
from .requant import fmt_shape

__all__ = ["stage_ports", "field_index", "max_field_count", "connect_synth", "requant_registers"]


def max_field_count(stage: Stage) -> int:
    return max([c for _, c, _ in stage.param_fields()] + [1])


def field_index(stage: Stage, name: str) -> int | None:
    """Index of the field ``name`` in ``stage.param_fields()`` (None if absent)."""
    for i, (n, _, _) in enumerate(stage.param_fields()):
        if n == name:
            return i
    return None


def stage_ports(stage: Stage, out_shape=None) -> dict:
    """The signature members shared by every stage component."""
    n_fields = len(stage.param_fields())
    return {
        "start": In(1), "last": Out(1),
        "x_addr": Out(range(max(stage.n_inputs, 2))), "x_data": In(fmt_shape(stage.input_fmt)),
        "y_addr": Out(range(max(stage.n_outputs, 2))),
        "y_data": Out(out_shape if out_shape is not None else fmt_shape(stage.output_fmt)),
        "y_en": Out(1),
        "p_en": In(1), "p_field": In(range(max(n_fields, 2))),
        "p_idx": In(range(max(max_field_count(stage), 2))), "p_data": In(32),
        "s_start": In(1), "s_last": Out(1),
    }


def connect_synth(m: Module, unit, syn, wmem) -> None:
    """Wire a stage's :class:`~poshw.hw.synth.WeightSynth` ``syn``: its writes go to the weight
    memory ``wmem``, its run interface to the stage's ``s_start``/``s_last``, and the stage's
    ``coef.<g>`` and ``synth_shift`` parameter fields to the synthesiser's fields ``g`` and ``G``."""
    st = unit.stage
    G = len(st.synth.groups)
    m.d.comb += [wmem.waddr.eq(syn.w_addr), wmem.wdata.eq(syn.w_data), wmem.wen.eq(syn.w_en),
                 syn.start.eq(unit.s_start), unit.s_last.eq(syn.last)]
    sel = Signal(range(G + 2))
    m.d.comb += sel.eq(G + 1)
    for g in range(G):
        with m.If(unit.p_field == field_index(st, f"coef.{g}")):
            m.d.comb += sel.eq(g)
    with m.If(unit.p_field == field_index(st, "synth_shift")):
        m.d.comb += sel.eq(G)
    m.d.comb += [syn.p_en.eq(unit.p_en & (sel <= G)), syn.p_field.eq(sel),
                 syn.p_idx.eq(unit.p_idx), syn.p_data.eq(unit.p_data)]


def requant_registers(m: Module, unit) -> tuple[Signal, Signal]:
    """The requantisation multiplier and shift registers, written by the parameter stream
    (left at 0 when the stage does not requantise)."""
    st = unit.stage
    mult = Signal(REQUANT_MULT.bits)
    shift = Signal(REQUANT_SHIFT.bits)
    if st.requant:
        with m.If(unit.p_en & (unit.p_field == field_index(st, "requant_mult"))):
            m.d.sync += mult.eq(unit.p_data[:REQUANT_MULT.bits])
        with m.If(unit.p_en & (unit.p_field == field_index(st, "requant_shift"))):
            m.d.sync += shift.eq(unit.p_data[:REQUANT_SHIFT.bits])
    return mult, shift
