"""The iCE40 byte-serial wrapper in the Amaranth simulator, and (opt-in) a real synthesis run."""

from __future__ import annotations

import os

import numpy as np
import pytest
from amaranth.sim import Simulator

from poshw.compiler import encode_params, rom_contents, write_build
from poshw.fixedpoint import golden
from poshw.hw.ice40 import Ice40Wrapper
from poshw.hw.testing import random_params, tiny_irs


def test_wrapper_serial_protocol():
    ir = tiny_irs()["linear"]
    roms = rom_contents(ir)
    p = random_params(ir, 3, roms)
    words = [int(w) for w in encode_params(ir, p)]
    img = np.random.default_rng(1).integers(0, 256, size=16)
    g = golden.golden_forward(ir, roms, p, img.reshape(1, 4, 4).astype(np.uint8))
    dut = Ice40Wrapper(ir, roms)
    got = []

    async def send(ctx, data, kind):
        for j, b in enumerate(data):
            ctx.set(dut.in_data, int(b))
            ctx.set(dut.in_kind, kind)
            ctx.set(dut.in_last, j == len(data) - 1)
            ctx.set(dut.in_valid, 1)
            while not ctx.get(dut.in_ready):
                await ctx.tick()
            await ctx.tick()
        ctx.set(dut.in_valid, 0)

    async def tb(ctx):
        ctx.set(dut.out_ready, 1)
        await ctx.tick()
        await send(ctx, [(w >> (8 * k)) & 0xFF for w in words for k in range(4)], 1)
        for _ in range(ir.synth_cycles() + 2):
            await ctx.tick()
        assert ctx.get(dut.ready) and not ctx.get(dut.error)
        await send(ctx, img, 0)
        for _ in range(ir.latency_cycles() + 40):
            if ctx.get(dut.out_valid):
                got.append((ctx.get(dut.out_data), ctx.get(dut.out_last)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    W, n = dut.core.logit_bits, 3
    assert len(got) == dut.out_bytes and got[-1][1] == 1
    assert got[0][0] == int(g.classes[0])
    bits = sum(b << (8 * k) for k, (b, _) in enumerate(got[1:]))
    logits = [((bits >> (W * k)) & ((1 << W) - 1)) for k in range(n)]
    logits = [v - (1 << W) if v >> (W - 1) else v for v in logits]
    assert logits == g.logits[0].tolist()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("POSHW_SYNTH_TESTS"), reason="set POSHW_SYNTH_TESTS=1 (yosys+nextpnr, minutes)")
def test_synth_tiny_design(tmp_path):
    from poshw.hw.ice40 import synth_build

    ir = tiny_irs()["linear"]
    write_build(tmp_path / "b", ir, random_params(ir, 0), None)
    rep = synth_build(tmp_path / "b", seed=1, log=lambda *a: None)
    assert rep.fits and rep.fmax_mhz and rep.fmax_mhz > 5
    assert rep.io <= 39 and rep.dsp <= 8 and rep.ebr <= 30
