"""Cycle counts of tiny hand-worked designs: the ir.py formulas and the cycle-stepped simulator.

The arithmetic is written out in each test (docs/MICROARCHITECTURE.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from poshw.bases import Family
from poshw.compiler.roms import rom_contents
from poshw.compiler.testing import random_params
from poshw.ir import (
    INT8, UINT8, Argmax, BasisGroup, BasisSource, Format, Gather, Hadamard, MatVec, NetworkIR, Synth,
    WeightSource,
)
from poshw.sim import Simulator


def _head(prev, n_out=2, lanes=1):
    return MatVec("head", n_in=prev.n_outputs, n_out=n_out, lanes=lanes, in_fmt=prev.output_fmt,
                  weight_source=WeightSource.RAM, bias=False, requant=False)


def _net(*stages, shape=(3, 4)):
    last = stages[-1]
    return NetworkIR("t", (*stages, Argmax("argmax", n=last.n_outputs, in_fmt=last.output_fmt)),
                     input_len=shape[0] * shape[1], input_shape=shape)


def _stepped(ir):
    sim = Simulator.from_parts(ir, rom_contents(ir), random_params(ir, np.random.default_rng(0)))
    return sim, sim.run_cycle_stepped(np.zeros(ir.input_shape, dtype=np.uint8))


def test_matvec_3x4_two_lanes():
    mv = MatVec("mv", n_in=4, n_out=3, lanes=2, in_fmt=UINT8, weight_source=WeightSource.RAM,
                bias=True, requant=True, out_fmt=INT8)
    # B = ceil(3/2) = 2 blocks; each: 4 issue + 1 drain + 2 epilogue + 1 flush = 8; plus setup
    assert mv.blocks == 2
    assert mv.cycles() == 1 + 2 * (4 + 2 + 2) == 17
    head = _head(mv)  # 2x3 on 1 lane: 1 + 2 * (3 + 1 + 2) = 13
    assert head.cycles() == 13
    ir = _net(mv, head, shape=(1, 4))
    # argmax of 2: 1 + 2 + 1 = 4; latency = 4 input beats + 17 + 13 + 4
    assert ir.latency_cycles() == 4 + 17 + 13 + 4 == 38
    # lower bound: 4 beats + ceil(12 / 2) + ceil(6 / 1) + 2 argmax inputs
    assert ir.lane_bound_cycles() == 4 + 6 + 6 + 2
    _, res = _stepped(ir)
    assert res.cycles == 38
    assert res.stage_cycles == {"input": 4, "mv": 17, "head": 13, "argmax": 4}


def test_matvec_mnist_shape():
    mv = MatVec("mv", n_in=784, n_out=10, lanes=8, in_fmt=UINT8, weight_source=WeightSource.RAM,
                bias=True, requant=False)
    assert mv.cycles() == 1 + 2 * (784 + 8 + 2) == 1589


def test_hadamard_gather_argmax():
    syn = Synth(2, 6, (BasisGroup(Family.TERNARY, 3, BasisSource.GENERATOR, 1, (0,)),), INT8)
    had = Hadamard("had", n=6, filters=2, channels_in=2, in_fmt=UINT8, synth=syn, bias=True,
                   requant=True, relu=True, out_fmt=UINT8)
    # 2 filters x 6 elements, one per cycle: 1 + 12 + 3
    assert had.cycles() == 1 + 2 * 6 + 3 == 16
    g = Gather("gat", n_in=6, n_out=3, channels=2, fmt=UINT8, index_origin="permutation", seed=4, path=(1,))
    # 2 channels x 3 outputs: 1 + 6 + 2
    assert g.cycles() == 1 + 2 * 3 + 2 == 9
    head = _head(g, n_out=5, lanes=2)  # 5x6 on 2 lanes: 1 + 3 * (6 + 2 + 2) = 31
    assert head.cycles() == 31
    ir = _net(had, g, head)
    assert ir.stages[-1].cycles() == 1 + 5 + 1 == 7
    assert ir.latency_cycles() == 12 + 16 + 9 + 31 + 7
    # synthesis: 1 + 3 bases x (1 setup + 12 entries) + 12 final + 2 tail = 54; top level adds 1
    assert had.synth_cycles() == 1 + 3 * (1 + 12) + 12 + 2 == 54
    assert ir.synth_cycles() == 1 + 54
    sim, res = _stepped(ir)
    assert res.cycles == ir.latency_cycles()
    assert [res.stage_cycles[s.name] for s in ir.stages] == [16, 9, 31, 7]
    assert sim.synth_cycles() == 55
    assert sim.synth_stage_cycles() == {"had": 54}


def test_synthesis_with_rank1_and_two_groups():
    groups = (BasisGroup(Family.GAUSS, 2, BasisSource.ROM, 0, (0, 0)),
              BasisGroup(Family.RANK1, 1, BasisSource.GENERATOR, 0, (0, 1)))
    mv = MatVec("syn", n_in=3, n_out=2, lanes=2, in_fmt=UINT8, weight_source=WeightSource.SYNTH,
                synth=Synth(2, 3, groups, INT8), bias=False, requant=True, relu=True, out_fmt=UINT8)
    # N = 6 entries: setup 1; gauss 2 x (1 + 6); rank-1 1 x (1 + (2 + 3) + 6); final 6 + 2
    assert mv.synth_cycles() == 1 + 2 * 7 + 1 * 12 + 6 + 2 == 35
    ir = _net(mv, _head(mv), shape=(1, 3))
    sim, _ = _stepped(ir)
    assert sim.synth_cycles() == ir.synth_cycles() == 36


def test_rom_origin_is_part_of_the_design_id():
    a = MatVec("p", n_in=12, n_out=4, in_fmt=UINT8, weight_source=WeightSource.ROM, weight_fmt=Format(9, True),
               rom_origin="dct:h=3,w=4,m=4,frac_bits=8", bias=False, requant=True, out_fmt=INT8)
    b = MatVec("p", n_in=12, n_out=4, in_fmt=UINT8, weight_source=WeightSource.ROM, weight_fmt=Format(9, True),
               rom_origin="dct:h=3,w=4,m=4,frac_bits=7", bias=False, requant=True, out_fmt=INT8)
    assert _net(a, _head(a)).design_id() != _net(b, _head(b)).design_id()


@pytest.mark.parametrize("lanes", [1, 2, 3, 7])
def test_stepped_matvec_counts_for_lane_counts(lanes):
    mv = MatVec("mv", n_in=5, n_out=7, lanes=lanes, in_fmt=UINT8, weight_source=WeightSource.RAM,
                bias=True, requant=True, out_fmt=INT8)
    blocks = -(-7 // lanes)
    assert mv.cycles() == 1 + blocks * (5 + lanes + 2)
    ir = _net(mv, _head(mv), shape=(1, 5))
    _, res = _stepped(ir)
    assert res.stage_cycles["mv"] == mv.cycles()
