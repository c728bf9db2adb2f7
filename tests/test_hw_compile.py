"""``poshw compile``: Verilog plus $readmemh images, no giant literals, ROM images equal the build's."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from poshw.cli import main
from poshw.compiler import write_build
from poshw.hw.testing import random_params, tiny_irs


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    ir = tiny_irs()["prodsum"]
    d = tmp_path_factory.mktemp("build")
    write_build(d, ir, random_params(ir, 0), np.zeros((2, 4, 4), np.uint8))
    return d


def test_compile_writes_verilog_and_hex(build_dir, capsys):
    assert main(["compile", str(build_dir)]) == 0
    out = capsys.readouterr().out
    assert "latency 138 cycles" in out and "reload 335 cycles" in out
    rtl = build_dir / "rtl"
    top = (rtl / "poshw_top.v").read_text()
    assert "module poshw_top(" in top
    for port in ("s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast", "s_coef_tdata",
                 "s_coef_tvalid", "s_coef_tready", "s_coef_tlast", "m_axis_tdata", "m_axis_tuser",
                 "m_axis_tvalid", "m_axis_tready", "ready", "error", "clk", "rst"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", top), port
    # memories are poshw_mem instances reading .hex files, never initial literals
    assert "poshw_mem #(" in top and not re.search(r"\w+\[\d+\] = \d+'h", top)
    assert "$readmemh" in (rtl / "poshw_mem.v").read_text()
    manifest = json.loads((rtl / "rtl.json").read_text())
    assert manifest["latency_cycles"] == 138 and manifest["synth_cycles"] == 335
    for f in manifest["files"]:
        if f["file"].endswith(".hex"):  # same words and format as the build's ROM images
            assert (rtl / f["file"]).read_bytes() == (build_dir / f["file"]).read_bytes()


def test_compile_out_dir_and_errors(build_dir, tmp_path, capsys):
    assert main(["compile", str(build_dir), "--out", str(tmp_path / "v"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top"] == "poshw_top"
    assert main(["compile", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("poshw: error:") and err.count("\n") == 1
