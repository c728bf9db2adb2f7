"""cocotb 2.x testbench of a generated poshw design (``poshw_top``).

Run by ``poshw.hw.cosim`` (``poshw verify``, the pytest RTL tests) through
``cocotb_tools.runner`` on Icarus or Verilator. Standalone on purpose: it reads the
stimulus prepared by the runner (``POSHW_TB_CONFIG``, a JSON file naming an ``.npz``)
and never imports poshw, so the simulator process stays light.

Timing: 10 ns clock, inputs driven and outputs sampled at falling edges (mid-cycle),
so a handshake happens at the rising edge that ends the cycle in which ``tvalid`` and
``tready`` were seen high. Cycle ``c`` is the one whose falling edge is at
``10 c + 5`` ns. Latency = (cycle in which ``m_axis_tvalid`` is first high) -
(cycle of the first pixel handshake); reload = (cycle in which ``ready`` rises) -
(cycle of the last coefficient handshake).

Phases (``config["phases"]``), run in order without reset:
``{"load": <npz key of param words> | null, "images": key, "logits": key, "classes": key}``
load the coefficient set (if given) and stream the images back to back, comparing
every class and logit with the expected values and every latency with the IR's.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time

PERIOD_NS = 10
CONFIG = json.loads(open(os.environ["POSHW_TB_CONFIG"]).read()) if "POSHW_TB_CONFIG" in os.environ else {}
RESULTS: dict = {}


def _stim() -> dict:
    with np.load(CONFIG["stimulus"]) as z:
        return {k: z[k] for k in z.files}


def _cycle() -> int:
    return int((get_sim_time("ns") - PERIOD_NS // 2) // PERIOD_NS)


def _save() -> None:
    path = CONFIG.get("results")
    if path:
        with open(path, "w") as f:
            json.dump(RESULTS, f, indent=1)


async def _start(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())  # tasks end with each test
    dut.rst.value = 1
    for sig in (dut.s_axis_tvalid, dut.s_axis_tlast, dut.s_coef_tvalid, dut.s_coef_tlast):
        sig.value = 0
    dut.s_axis_tdata.value = 0
    dut.s_coef_tdata.value = 0
    dut.m_axis_tready.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)


async def _send(dut, data, valid, last, ready, items, tlast_at=None) -> tuple[int, int]:
    """Drive ``items`` one per accepted beat; returns the cycles of the first and last handshake.

    Must be called mid-cycle (after a FallingEdge); returns mid-cycle."""
    if tlast_at is None:
        tlast_at = len(items) - 1
    first = lastc = -1
    i, n = 0, len(items)
    waited = 0
    while i < n:
        data.value = int(items[i])
        valid.value = 1
        last.value = 1 if i == tlast_at else 0
        c = _cycle()
        if i == 0 and first < 0:
            # the first beat: let this step's writes (also the other stream's tvalid going
            # low) settle before sampling tready; later beats change nothing tready sees
            await ReadOnly()
        ok = int(ready.value)
        await FallingEdge(dut.clk)
        if ok:
            if first < 0:
                first = c
            lastc = c
            i += 1
        else:
            waited += 1
            if waited > 1_000_000:
                raise TimeoutError("tready stayed low")
    valid.value = 0
    last.value = 0
    return first, lastc


async def load(dut, words, tlast_at=None, expect_ok=True) -> int | None:
    """Send a coefficient stream; returns the reload cycles (last beat -> ready) if ``expect_ok``."""
    _, lastc = await _send(dut, dut.s_coef_tdata, dut.s_coef_tvalid, dut.s_coef_tlast, dut.s_coef_tready,
                           words, tlast_at)
    if not expect_ok:
        for _ in range(4):
            await FallingEdge(dut.clk)
        return None
    if not int(dut.ready.value):
        await with_timeout(RisingEdge(dut.ready), 10 * PERIOD_NS * (CONFIG["synth_cycles"] + 10), "ns")
        await FallingEdge(dut.clk)
    return _cycle() - lastc


async def infer(dut, pixels, tlast_at=None):
    """One image; returns ``(class, logits, latency)`` or None if no result came."""
    first, _ = await _send(dut, dut.s_axis_tdata, dut.s_axis_tvalid, dut.s_axis_tlast, dut.s_axis_tready,
                           pixels, tlast_at)
    if tlast_at is not None and tlast_at != len(pixels) - 1:
        return None
    if not int(dut.m_axis_tvalid.value):
        try:
            await with_timeout(RisingEdge(dut.m_axis_tvalid), PERIOD_NS * (CONFIG["latency"] + 10), "ns")
        except SimTimeoutError:
            raise TimeoutError("no result") from None
        await FallingEdge(dut.clk)
    latency = _cycle() - first
    cls = int(dut.m_axis_tdata.value)
    user = int(dut.m_axis_tuser.value)
    W, n = CONFIG["logit_bits"], CONFIG["classes"]
    logits = []
    for k in range(n):
        v = (user >> (k * W)) & ((1 << W) - 1)
        logits.append(v - (1 << W) if v >> (W - 1) else v)
    await FallingEdge(dut.clk)  # m_axis_tready is held high: the result is taken
    return cls, logits, latency


@cocotb.test()
async def classify(dut):
    """Load each phase's coefficient set into the running design and classify its images."""
    stim = _stim()
    await _start(dut)
    out = {"phases": [], "mismatches": 0, "latency_mismatches": 0, "images": 0}
    t_wall = time.perf_counter()
    c_start = _cycle()
    for ph in CONFIG["phases"]:
        rec = {"name": ph.get("name", ""), "mismatches": 0, "first_mismatches": []}
        if ph.get("load"):
            rec["reload_cycles"] = await load(dut, stim[ph["load"]])
            rec["reload_ok"] = rec["reload_cycles"] == CONFIG["synth_cycles"]
            rec["error_after_load"] = int(dut.error.value)
        images = stim[ph["images"]]
        want_logits, want_classes = stim[ph["logits"]], stim[ph["classes"]]
        lat = set()
        for j, img in enumerate(images):
            try:
                res = await infer(dut, img.reshape(-1))
            except TimeoutError:
                res = None
            if res is None:
                dut._log.error(f"phase {rec['name']!r} image {j}: no result")
                rec["mismatches"] += 1
                rec["first_mismatches"].append({"image": j, "error": "no result"})
                await _start(dut)
                if ph.get("load"):
                    await load(dut, stim[ph["load"]])
                continue
            cls, logits, latency = res
            lat.add(latency)
            if latency != CONFIG["latency"]:
                out["latency_mismatches"] += 1
            if cls != int(want_classes[j]) or logits != [int(v) for v in want_logits[j]]:
                rec["mismatches"] += 1
                if len(rec["first_mismatches"]) < 5:
                    rec["first_mismatches"].append({"image": j, "class": cls, "want_class": int(want_classes[j]),
                                                    "logits": logits, "want_logits": [int(v) for v in want_logits[j]]})
        rec["images"] = len(images)
        rec["latencies"] = sorted(lat)
        out["mismatches"] += rec["mismatches"]
        out["images"] += len(images)
        out["phases"].append(rec)
    out["wall_s"] = time.perf_counter() - t_wall
    out["cycles"] = _cycle() - c_start
    RESULTS["classify"] = out
    _save()
    assert out["mismatches"] == 0, f"{out['mismatches']} mismatching results"
    assert out["latency_mismatches"] == 0, "latency differs from the IR"
    for rec in out["phases"]:
        assert rec.get("reload_ok", True), f"reload took {rec['reload_cycles']} cycles, IR says {CONFIG['synth_cycles']}"
        assert not rec.get("error_after_load", 0), "error set after a good load"


@cocotb.test()
async def protocol_errors(dut):
    """Bad header, bad length and bad pixel counts set ``error``; the right things survive."""
    if not CONFIG.get("protocol_errors", True):
        return
    stim = _stim()
    good = [int(w) for w in stim[CONFIG["protocol_params"]]]
    img = stim[CONFIG["protocol_images"]][0].reshape(-1)
    want = (int(stim[CONFIG["protocol_classes"]][0]), [int(v) for v in stim[CONFIG["protocol_logits"]][0]])
    checks = {}
    await _start(dut)
    checks["ready_low_after_reset"] = int(dut.ready.value) == 0
    await load(dut, good)
    checks["good_load"] = int(dut.ready.value) == 1 and int(dut.error.value) == 0

    # wrong magic: error, stream dropped up to tlast, old parameters stay
    await load(dut, [good[0] ^ 1] + good[1:], expect_ok=False)
    checks["bad_magic_error"] = int(dut.error.value) == 1
    checks["bad_magic_keeps_params"] = int(dut.ready.value) == 1
    res = await infer(dut, img)
    checks["bad_magic_result"] = res is not None and (res[0], res[1]) == want
    # wrong design id, single-word garbage with tlast
    await load(dut, [good[0], good[1] ^ 0x80000000] + good[2:], expect_ok=False)
    checks["bad_id_error"] = int(dut.error.value) == 1 and int(dut.ready.value) == 1
    await load(dut, [0x12345678], expect_ok=False)
    checks["garbage_word_error"] = int(dut.error.value) == 1 and int(dut.ready.value) == 1
    res = await infer(dut, img)
    checks["bad_id_result"] = res is not None and (res[0], res[1]) == want

    # good load clears the error
    await load(dut, good)
    checks["reload_clears_error"] = int(dut.error.value) == 0 and int(dut.ready.value) == 1
    # tlast early: error, parameters invalid
    if len(good) > 3:
        await load(dut, good[:-1], expect_ok=False)
        checks["early_tlast_error"] = int(dut.error.value) == 1 and int(dut.ready.value) == 0
    # tlast late: error, invalid, extra words dropped
    await load(dut, good + [0, 0], expect_ok=False)
    checks["late_tlast_error"] = int(dut.error.value) == 1 and int(dut.ready.value) == 0
    await load(dut, good)
    checks["recovered"] = int(dut.error.value) == 0 and int(dut.ready.value) == 1

    # pixels: tlast early -> error, no result; tlast late -> error, the packet dropped up to tlast
    await _send(dut, dut.s_axis_tdata, dut.s_axis_tvalid, dut.s_axis_tlast, dut.s_axis_tready, img[:len(img) - 2])
    for _ in range(CONFIG["latency"] // 4 + 4):
        await FallingEdge(dut.clk)
    checks["early_pixel_tlast"] = int(dut.error.value) == 1 and int(dut.m_axis_tvalid.value) == 0 \
        and int(dut.ready.value) == 1
    await load(dut, good)
    extra = np.concatenate([img, img[:5]])
    await _send(dut, dut.s_axis_tdata, dut.s_axis_tvalid, dut.s_axis_tlast, dut.s_axis_tready, extra)
    for _ in range(CONFIG["latency"] + 4):
        await FallingEdge(dut.clk)
    checks["late_pixel_tlast"] = int(dut.error.value) == 1 and int(dut.m_axis_tvalid.value) == 0 \
        and int(dut.ready.value) == 1
    res = await infer(dut, img)
    checks["after_pixel_errors_result"] = res is not None and (res[0], res[1]) == want
    RESULTS["protocol_errors"] = checks
    _save()
    failed = [k for k, v in checks.items() if not v]
    assert not failed, f"protocol checks failed: {failed}"
