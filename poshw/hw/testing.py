"""Small designs, random parameters and an Amaranth-simulator driver for the RTL tests.

Used by ``tests/test_hw_*.py`` and the cocotb suite (``sim/``): every stage kind at
toy sizes, parameters that exercise rounding and saturation without drowning every
value in it, and :func:`simulate_top`, which drives :class:`~poshw.hw.top.PoshwTop`
through its stream ports exactly as the Verilog testbenches do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..bases import Family
from ..ir import (
    INT8, UINT8, Argmax, BasisGroup, BasisSource, Gather, Hadamard, MatVec, NetworkIR, Synth,
    WeightSource,
)

__all__ = ["tiny_irs", "random_params", "simulate_top", "TopRun"]

_G = BasisSource.GENERATOR
_R = BasisSource.ROM


def tiny_irs() -> dict[str, NetworkIR]:
    """Toy designs (4x4 input) covering ROM, RAM and synthesised matvecs, p = 2 products,
    every basis family and source, Hadamard and gather stages."""
    out = {}
    fc = MatVec("fc", n_in=6, n_out=3, lanes=2, in_fmt=INT8, requant=False)
    out["linear"] = NetworkIR("tiny-linear", (
        MatVec("proj", n_in=16, n_out=6, lanes=2, in_fmt=UINT8, weight_source=WeightSource.ROM,
               rom_origin="dct:h=4,w=4,m=6,frac_bits=5", bias=False, requant=True, out_fmt=INT8),
        fc, Argmax("argmax", n=3, in_fmt=fc.out_fmt),
    ), input_len=16, input_shape=(4, 4))
    s1 = Synth(5, 6, (BasisGroup(Family.GAUSS, 3, _G, 5, (1, 0, 0)),
                      BasisGroup(Family.RADEMACHER, 2, _R, 5, (1, 0, 1))))
    s2 = Synth(4, 5, (BasisGroup(Family.TERNARY, 3, _G, 5, (1, 1, 0)),
                      BasisGroup(Family.RANK1, 2, _G, 5, (1, 1, 1))))
    fc = MatVec("fc", n_in=4, n_out=3, lanes=3, in_fmt=UINT8, requant=False)
    out["prodsum"] = NetworkIR("tiny-prodsum", (
        MatVec("proj", n_in=16, n_out=6, lanes=3, in_fmt=UINT8, weight_source=WeightSource.ROM,
               rom_origin="gauss:seed=5,path=0,rows=6,cols=16", bias=False, requant=True, out_fmt=INT8),
        MatVec("f1", n_in=6, n_out=5, lanes=2, in_fmt=INT8, weight_source=WeightSource.SYNTH, synth=s1,
               bias=False, requant=True, out_fmt=INT8),
        MatVec("f0", n_in=5, n_out=4, lanes=1, in_fmt=INT8, weight_source=WeightSource.SYNTH, synth=s2,
               bias=True, requant=True, relu=True, out_fmt=UINT8),
        fc, Argmax("argmax", n=3, in_fmt=fc.out_fmt),
    ), input_len=16, input_shape=(4, 4))
    h1 = Synth(2, 16, (BasisGroup(Family.GAUSS, 3, _G, 9, (0, 0, 0)),))
    h2 = Synth(2, 4, (BasisGroup(Family.TERNARY, 2, _R, 9, (2, 0, 0)),
                      BasisGroup(Family.GAUSS, 2, _G, 9, (2, 0, 1))))
    fc = MatVec("fc", n_in=8, n_out=3, lanes=2, in_fmt=UINT8, requant=False)
    out["hadamard"] = NetworkIR("tiny-hadamard", (
        Hadamard("h1", n=16, filters=2, channels_in=1, in_fmt=UINT8, synth=h1, relu=True, out_fmt=UINT8),
        Gather("sel", n_in=16, n_out=4, channels=2, fmt=UINT8, index_origin="permutation", seed=9, path=(1,)),
        Hadamard("h2", n=4, filters=2, channels_in=2, in_fmt=UINT8, synth=h2, relu=True, out_fmt=UINT8),
        fc, Argmax("argmax", n=3, in_fmt=fc.out_fmt),
    ), input_len=16, input_shape=(4, 4))
    return out


def random_params(ir: NetworkIR, seed: int = 0, roms=None) -> dict[int, dict[str, np.ndarray]]:
    """Random in-range parameters whose outputs mostly stay inside their formats.

    Requantisation multipliers and shifts are calibrated on random images with the
    golden model (``poshw.fixedpoint.golden``), so values round and occasionally saturate.
    """
    from ..compiler.roms import rom_contents
    from ..fixedpoint import golden

    rng = np.random.default_rng(seed)
    roms = rom_contents(ir) if roms is None else roms
    params: dict[int, dict[str, np.ndarray]] = {}
    x = rng.integers(0, 256, size=(16, ir.input_len)).astype(np.int64)
    images = x.reshape(16, *ir.input_shape).astype(np.uint8)
    for i, st in enumerate(ir.stages):
        p: dict[str, np.ndarray] = {}
        for name, count, fmt in st.param_fields():
            if name == "weights":
                p[name] = rng.integers(max(fmt.lo, -60), min(fmt.hi, 60) + 1, size=(st.n_out, st.n_in))
            elif name.startswith("coef."):
                p[name] = rng.integers(fmt.lo, fmt.hi + 1, size=count)
            elif name == "bias":
                p[name] = rng.integers(-2000, 2001, size=count)
            elif name == "requant_mult":
                p[name] = np.array([int(rng.integers(1 << 14, 1 << 16))])
            else:  # shifts: calibrated below
                p[name] = np.array([0])
        params[i] = p
        synth = getattr(st, "synth", None)
        if synth is not None:  # smallest shift that keeps the weights mostly unsaturated
            for s in range(32):
                p["synth_shift"] = np.array([s])
                w = golden.synthesize(st, golden.stage_roms(roms, i), p)
                if np.mean((w == st.weight_fmt.lo) | (w == st.weight_fmt.hi)) < 0.05:
                    break
        if "requant_shift" in p:
            for s in range(64):
                p["requant_shift"] = np.array([s])
                res = golden.golden_forward(_prefix(ir, i), roms, params, images, keep_activations=True)
                y = res.activations[st.name]
                fmt = st.output_fmt
                if np.mean((y == fmt.hi) | ((y == fmt.lo) & (fmt.lo != 0))) < 0.03:
                    break
    return params


def _prefix(ir: NetworkIR, upto: int) -> NetworkIR:
    """The first ``upto + 1`` stages followed by an argmax (for calibration only)."""
    st = ir.stages[upto]
    stages = ir.stages[:upto + 1]
    if not isinstance(st, Argmax):
        stages = stages + (Argmax("__argmax", n=st.n_outputs, in_fmt=st.output_fmt),)
    return NetworkIR(ir.name, stages, ir.input_len, ir.input_fmt, ir.input_shape)


@dataclass
class TopRun:
    """What :func:`simulate_top` observed."""

    classes: list[int] = field(default_factory=list)
    logits: list[list[int]] = field(default_factory=list)
    #: cycles from the first pixel beat to m_axis_tvalid, per image
    latency: list[int] = field(default_factory=list)
    #: cycles from the last coefficient beat to ready, per load
    reload: list[int] = field(default_factory=list)
    #: error output after each load / image
    errors: list[int] = field(default_factory=list)


def simulate_top(ir: NetworkIR, roms, actions, vcd: str | None = None) -> TopRun:
    """Drive :class:`PoshwTop` in the Amaranth simulator.

    ``actions``: a list of ``("load", words[, tlast_at])`` (the coefficient stream;
    ``tlast_at`` overrides the index of the ``tlast`` word) and ``("image", pixels[, tlast_at])``.
    """
    from amaranth.sim import Simulator

    from .top import PoshwTop

    dut = PoshwTop(ir, roms)
    run = TopRun()
    n = ir.stages[-1].n
    W = ir.stages[-1].in_fmt.bits

    def signed(v, bits):
        return v - (1 << bits) if v >> (bits - 1) else v

    async def tb(ctx):
        ctx.set(dut.m_axis_tready, 1)
        await ctx.tick()
        for act in actions:
            kind, data = act[0], [int(v) for v in act[1]]
            tlast_at = act[2] if len(act) > 2 else len(data) - 1
            if kind == "load":
                for j, w in enumerate(data):
                    ctx.set(dut.s_coef_tdata, w)
                    ctx.set(dut.s_coef_tvalid, 1)
                    ctx.set(dut.s_coef_tlast, j == tlast_at)
                    waited = 0
                    while not ctx.get(dut.s_coef_tready):
                        await ctx.tick()
                        waited += 1
                        if waited > 100000:
                            raise RuntimeError("s_coef_tready never rose")
                    await ctx.tick()
                ctx.set(dut.s_coef_tvalid, 0)
                ctx.set(dut.s_coef_tlast, 0)
                cycles = 1
                while not ctx.get(dut.ready) and cycles < 100000:
                    await ctx.tick()
                    cycles += 1
                run.reload.append(cycles)
                run.errors.append(ctx.get(dut.error))
            else:
                t = 0
                started = None
                for j, px in enumerate(data):
                    ctx.set(dut.s_axis_tdata, px)
                    ctx.set(dut.s_axis_tvalid, 1)
                    ctx.set(dut.s_axis_tlast, j == tlast_at)
                    while not ctx.get(dut.s_axis_tready):
                        await ctx.tick()
                        t += 1
                        if t > 100000:
                            raise RuntimeError("s_axis_tready never rose")
                    if started is None:
                        started = t
                    await ctx.tick()
                    t += 1
                ctx.set(dut.s_axis_tvalid, 0)
                ctx.set(dut.s_axis_tlast, 0)
                limit = t + ir.latency_cycles() + 10
                while not ctx.get(dut.m_axis_tvalid) and t < limit:
                    await ctx.tick()
                    t += 1
                if ctx.get(dut.m_axis_tvalid):
                    run.classes.append(ctx.get(dut.m_axis_tdata))
                    u = ctx.get(dut.m_axis_tuser)
                    run.logits.append([signed((u >> (k * W)) & ((1 << W) - 1), W) for k in range(n)])
                    run.latency.append(t - started)
                    await ctx.tick()
                run.errors.append(ctx.get(dut.error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return run
