"""Generated Verilog on Icarus and Verilator (cocotb): bit-exact with the numba simulator,
cycle-exact with the IR, coefficient reload into the running design, protocol errors.

Toy designs (4x4 inputs) keep this to seconds per simulator run; ``poshw verify`` on
trained MNIST builds is the full-size check (docs/HARDWARE.md).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from poshw.compiler import write_build
from poshw.hw.testing import random_params, tiny_irs

IRS = tiny_irs()

pytestmark = [pytest.mark.rtl, pytest.mark.slow]


def _have(sim: str) -> bool:
    from poshw.hw.cosim import verilator_bin
    return bool(shutil.which("iverilog")) if sim == "icarus" else verilator_bin() is not None


def _build(tmp_path_factory, name: str, seed: int = 0):
    ir = IRS[name]
    d = tmp_path_factory.mktemp(f"build_{name}_{seed}")
    imgs = np.random.default_rng(seed).integers(0, 256, size=(12, *ir.input_shape)).astype(np.uint8)
    write_build(d, ir, random_params(ir, seed), imgs)
    return d


@pytest.mark.parametrize("name", sorted(IRS))
def test_icarus_tiny_designs(tmp_path_factory, name):
    if not _have("icarus"):
        pytest.skip("iverilog not installed")
    from poshw.hw.flow import compile_build, verify_build

    d = _build(tmp_path_factory, name)
    compile_build(d)
    rep = verify_build(d, sim="icarus", n=8, random_n=3, log=lambda *a: None)
    assert rep.passed, rep.to_dict()
    assert rep.mismatches == 0 and rep.images == 8 + 3 + 8 + 5
    assert rep.cycles_agree and rep.latency_rtl == [IRS[name].latency_cycles()]
    assert rep.reload_rtl == [IRS[name].synth_cycles()] * 3
    assert rep.protocol and all(rep.protocol.values())


@pytest.mark.slow
def test_verilator_product_of_sums(tmp_path_factory):
    if not _have("verilator"):
        pytest.skip("verilator not installed")
    from poshw.hw.flow import verify_build

    rep = verify_build(_build(tmp_path_factory, "prodsum"), sim="verilator", n=8, random_n=3,
                       log=lambda *a: None)
    assert rep.passed and rep.mismatches == 0 and rep.cycles_agree, rep.to_dict()
    assert rep.protocol and all(rep.protocol.values())


def test_one_design_two_coefficient_sets(tmp_path_factory, capsys):
    """Two builds of one design (two "tasks"): the same Verilog classifies both by reloading
    coefficients only (``poshw verify --second``)."""
    if not _have("icarus"):
        pytest.skip("iverilog not installed")
    from poshw.cli import main

    a, b = _build(tmp_path_factory, "hadamard", 1), _build(tmp_path_factory, "hadamard", 2)
    assert main(["compile", str(a)]) == 0
    rtl_before = (a / "rtl" / "poshw_top.v").read_bytes()
    assert main(["verify", str(a), "--sim", "icarus", "--n", "6", "--second", str(b), "--second-n", "6",
                 "--no-protocol"]) == 0
    out = capsys.readouterr().out
    assert "PASS: 0 mismatches" in out and "cycles agree" in out
    assert (a / "rtl" / "poshw_top.v").read_bytes() == rtl_before  # not regenerated


def test_verify_refuses_other_design(tmp_path_factory, capsys):
    from poshw.cli import main

    a, b = _build(tmp_path_factory, "linear"), _build(tmp_path_factory, "prodsum")
    assert main(["verify", str(a), "--sim", "icarus", "--n", "2", "--second", str(b)]) == 2
    assert "needs other RTL" in capsys.readouterr().err
