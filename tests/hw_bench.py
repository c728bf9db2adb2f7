"""Test helper: run one stage component in the Amaranth simulator with a ROM as its input buffer."""

from __future__ import annotations

import numpy as np
from amaranth import Elaboratable, Module
from amaranth.lib import memory
from amaranth.sim import Simulator


class _Bench(Elaboratable):
    def __init__(self, unit, x, width):
        self.unit, self.x, self.width = unit, x, width

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = u = self.unit
        words = [int(v) & ((1 << self.width) - 1) for v in self.x]
        m.submodules.xmem = xm = memory.Memory(shape=self.width, depth=max(len(words), 2), init=words)
        rp = xm.read_port()
        m.d.comb += [rp.addr.eq(u.x_addr), u.x_data.eq(rp.data)]
        return m


def signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


def run_stage(unit, stage, x, params: dict[str, np.ndarray], *, synth: bool = False, out_signed=True):
    """Load ``params`` (field name -> values, stream order), optionally run synthesis, then one pass.

    Returns ``(outputs, cycles, synth_cycles)``: outputs by address (the y writes), the
    cycles from ``start`` to ``last`` inclusive and likewise for synthesis.
    """
    fields = [n for n, _, _ in stage.param_fields()]
    bench = _Bench(unit, np.asarray(x).reshape(-1), stage.input_fmt.bits)
    out: dict[int, int] = {}
    res = {}

    async def tb(ctx):
        for name, vals in params.items():
            f = fields.index(name)
            for i, v in enumerate(np.asarray(vals).reshape(-1)):
                ctx.set(unit.p_en, 1)
                ctx.set(unit.p_field, f)
                ctx.set(unit.p_idx, i)
                ctx.set(unit.p_data, int(v) & 0xFFFFFFFF)
                await ctx.tick()
        ctx.set(unit.p_en, 0)
        if synth:
            ctx.set(unit.s_start, 1)
            c = 0
            while True:
                if c == 1:
                    ctx.set(unit.s_start, 0)
                if ctx.get(unit.s_last):
                    break
                await ctx.tick()
                c += 1
            res["synth"] = c + 1
            await ctx.tick()
            ctx.set(unit.s_start, 0)
        ctx.set(unit.start, 1)
        c = 0
        while True:
            if c == 1:
                ctx.set(unit.start, 0)
            if ctx.get(unit.y_en):
                v = ctx.get(unit.y_data)
                out[ctx.get(unit.y_addr)] = v
            if ctx.get(unit.last):
                break
            await ctx.tick()
            c += 1
            assert c < 100000
        res["cycles"] = c + 1
        await ctx.tick()
        res["after"] = ctx

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    n = stage.n_outputs
    y = np.array([out.get(i, 0) for i in range(n)], dtype=np.int64) if n else np.zeros(0)
    return y, res["cycles"], res.get("synth")
