"""The whole design in the Amaranth simulator: bit-exact with the golden model, cycle-exact with the IR."""

from __future__ import annotations

import numpy as np
import pytest

from poshw.compiler import encode_params, rom_contents
from poshw.fixedpoint import golden
from poshw.hw.testing import random_params, simulate_top, tiny_irs

IRS = tiny_irs()


@pytest.mark.parametrize("name", sorted(IRS))
def test_top_matches_golden_and_cycles(name):
    ir = IRS[name]
    roms = rom_contents(ir)
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 256, size=(3, *ir.input_shape)).astype(np.uint8)
    pa, pb = random_params(ir, 1, roms), random_params(ir, 2, roms)
    ga, gb = golden.golden_forward(ir, roms, pa, imgs), golden.golden_forward(ir, roms, pb, imgs[:2])
    acts = [("load", encode_params(ir, pa))] + [("image", im.reshape(-1)) for im in imgs]
    acts += [("load", encode_params(ir, pb))] + [("image", im.reshape(-1)) for im in imgs[:2]]
    run = simulate_top(ir, roms, acts)
    assert run.classes == ga.classes.tolist() + gb.classes.tolist()
    assert run.logits == ga.logits.tolist() + gb.logits.tolist()
    assert run.latency == [ir.latency_cycles()] * 5
    assert run.reload == [ir.synth_cycles()] * 2
    assert not any(run.errors)


def test_top_protocol_errors():
    ir = IRS["linear"]
    roms = rom_contents(ir)
    p = random_params(ir, 1, roms)
    words = encode_params(ir, p)
    img = np.arange(16, dtype=np.uint8) * 13
    bad = words.copy()
    bad[1] ^= 1
    run = simulate_top(ir, roms, [
        ("load", words), ("load", bad),          # wrong design id: error, old parameters stay
        ("image", img),                          # still classifies
        ("load", words),                         # clears the error
        ("image", img[:8]),                      # tlast early (8 of 16 beats): error, no result
        ("load", words[:-1]),                    # tlast early in the stream: error, parameters invalid
    ])
    g = golden.golden_forward(ir, roms, p, img.reshape(1, 4, 4))
    assert run.errors == [0, 1, 1, 0, 1, 1]
    assert run.classes == g.classes.tolist() and run.logits == g.logits.tolist()


def test_numba_simulator_counts_the_same_cycles():
    sim_mod = pytest.importorskip("poshw.sim")
    for ir in IRS.values():
        roms = rom_contents(ir)
        s = sim_mod.Simulator.from_parts(ir, roms, random_params(ir, 0, roms))
        assert s.latency_cycles() == ir.latency_cycles()
        assert s.synth_cycles() == ir.synth_cycles()
