"""Memories of the datapaths, built one of two ways.

Every memory of the design (activation buffers, weight ROMs and RAMs, basis and seed
ROMs, coefficient and bias memories, the synthesis accumulator) has one synchronous
read port (data the cycle after the address, old data on a same-address write) and
at most one write port with lane enables. A :class:`MemoryBackend` builds them:

* :class:`AmaranthMemories` (default) uses :class:`amaranth.lib.memory.Memory`, for
  the Amaranth simulator and unit tests;
* :class:`ReadmemhMemories` instantiates the small hand-kept Verilog primitive
  :data:`POSHW_MEM_VERILOG` (module ``poshw_mem``) whose initial contents come from a
  ``.hex`` file through ``$readmemh``, so generated Verilog never carries giant
  literals (Amaranth would print one ``initial`` line per word, zeros included).

Both give the same cycle behaviour; the Verilog tests check it end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from amaranth import ClockSignal, Const, Instance, Module, Signal, unsigned
from amaranth.lib import memory

__all__ = ["MemPorts", "MemoryBackend", "AmaranthMemories", "ReadmemhMemories",
           "POSHW_MEM_VERILOG", "hex_lines"]


@dataclass
class MemPorts:
    """The ports of one memory: ``raddr``/``rdata`` and, if writable, ``waddr``/``wdata``/``wen``.

    ``wen`` has one bit per lane (``width // granularity`` bits).
    """

    raddr: Signal
    rdata: Signal
    waddr: Signal | None = None
    wdata: Signal | None = None
    wen: Signal | None = None


def _check(name: str, width: int, depth: int, init: Sequence[int] | None, granularity: int | None):
    if not isinstance(name, str) or not name:
        raise TypeError(f"memory name must be a non-empty string, not {name!r}")
    if not isinstance(width, int) or width < 1:
        raise TypeError(f"memory {name}: width must be a positive integer, not {width!r}")
    if not isinstance(depth, int) or depth < 1:
        raise TypeError(f"memory {name}: depth must be a positive integer, not {depth!r}")
    if granularity is not None and (granularity < 1 or width % granularity):
        raise ValueError(f"memory {name}: granularity {granularity} does not divide width {width}")
    if init is not None:
        if len(init) > depth:
            raise ValueError(f"memory {name}: {len(init)} initial words exceed depth {depth}")
        for v in init:
            if not 0 <= int(v) < (1 << width):
                raise ValueError(f"memory {name}: initial word {int(v):#x} does not fit {width} bits")


def hex_lines(words: Sequence[int], width: int) -> str:
    """``$readmemh`` text: one lowercase word per line, ``ceil(width / 4)`` digits."""
    digits = -(-width // 4)
    return "".join(f"{int(w):0{digits}x}\n" for w in words)


class MemoryBackend:
    """Builds memories inside a module; see the module docstring."""

    def memory(self, m: Module, name: str, width: int, depth: int, *,
               init: Sequence[int] | None = None, writable: bool = True,
               granularity: int | None = None) -> MemPorts:
        """A ``depth x width`` memory named ``name`` (unsigned words).

        ``init``: initial words (unsigned, ``< 2**width``), zeros beyond; a ROM is a
        memory with ``init`` and ``writable=False``. ``granularity``: bits per write lane.
        """
        raise NotImplementedError


class AmaranthMemories(MemoryBackend):
    """:class:`amaranth.lib.memory.Memory` with one read port and one write port."""

    def memory(self, m, name, width, depth, *, init=None, writable=True, granularity=None):
        _check(name, width, depth, init, granularity)
        mem = memory.Memory(shape=unsigned(width), depth=depth,
                            init=[int(v) for v in init] if init is not None else [])
        m.submodules[name.replace(".", "_")] = mem
        rp = mem.read_port()
        ports = MemPorts(rp.addr, rp.data)
        if writable:
            wp = mem.write_port(granularity=granularity if granularity and granularity < width else None)
            ports.waddr, ports.wdata = wp.addr, wp.data
            ports.wen = wp.en
        return ports


class ReadmemhMemories(MemoryBackend):
    """The ``poshw_mem`` Verilog primitive; initial contents go to ``files[name + ".hex"]``.

    ``files`` (a dict: file name -> text) collects the ``.hex`` files the generated
    Verilog reads; the caller writes them beside it. Memory names must be unique.
    """

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.memories: list[tuple[str, int, int, bool]] = []

    def memory(self, m, name, width, depth, *, init=None, writable=True, granularity=None):
        _check(name, width, depth, init, granularity)
        fname = ""
        if init is not None:
            fname = f"{name}.hex"
            if fname in self.files:
                raise ValueError(f"two memories named {name!r}")
            self.files[fname] = hex_lines(list(init) + [0] * (depth - len(init)), width)
        self.memories.append((name, width, depth, writable))
        abits = max(1, (depth - 1).bit_length())
        gran = granularity if granularity and granularity < width else width
        lanes = width // gran
        iname = name.replace(".", "_")
        raddr, rdata = Signal(abits, name=f"{iname}_raddr"), Signal(width, name=f"{iname}_rdata")
        ports = MemPorts(raddr, rdata)
        if writable:
            ports.waddr = Signal(abits, name=f"{iname}_waddr")
            ports.wdata = Signal(width, name=f"{iname}_wdata")
            ports.wen = Signal(lanes, name=f"{iname}_wen")
            wa, wd, we = ports.waddr, ports.wdata, ports.wen
        else:
            wa, wd, we = Const(0, abits), Const(0, width), Const(0, lanes)
        params = {"p_WIDTH": width, "p_DEPTH": depth, "p_ABITS": abits, "p_LANES": lanes}
        if fname:
            params["p_INIT_FILE"] = fname
        m.submodules[iname] = Instance(
            "poshw_mem", **params,
            i_clk=ClockSignal(), i_raddr=raddr, o_rdata=rdata,
            i_waddr=wa, i_wdata=wd, i_wen=we)
        return ports


#: The memory primitive used by :class:`ReadmemhMemories` (written beside the generated Verilog).
POSHW_MEM_VERILOG = r"""// poshw_mem: one synchronous read port, one write port with lane enables.
// Read data appears the cycle after the address; a same-address write returns the old data.
// Initial contents come from INIT_FILE through $readmemh (no literals in the netlist).
// Hand-kept primitive written by `poshw compile` (poshw/hw/mem.py).
`default_nettype none
module poshw_mem #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 16,
    parameter integer ABITS = 4,
    parameter integer LANES = 1,
    parameter INIT_FILE = "",
    parameter integer SMALL_BITS = 1024
) (
    input  wire             clk,
    input  wire [ABITS-1:0] raddr,
    output reg  [WIDTH-1:0] rdata,
    input  wire [ABITS-1:0] waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire [LANES-1:0] wen
);
    localparam integer GRAN = WIDTH / LANES;
    integer i;
    generate if (WIDTH * DEPTH <= SMALL_BITS) begin : g_logic
        // a few hundred bits: flip-flops / LUTs rather than a whole 4-kbit block RAM
        (* ram_style = "logic", logic_block = 1 *) reg [WIDTH-1:0] mem [0:DEPTH-1];
        initial begin
`ifndef SYNTHESIS
            for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
            rdata = {WIDTH{1'b0}};
`endif
            if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
        end
        always @(posedge clk) begin
            rdata <= mem[raddr];
            for (i = 0; i < LANES; i = i + 1)
                if (wen[i]) mem[waddr][i*GRAN +: GRAN] <= wdata[i*GRAN +: GRAN];
        end
    end else begin : g_bram
        reg [WIDTH-1:0] mem [0:DEPTH-1];
        initial begin
`ifndef SYNTHESIS
            for (i = 0; i < DEPTH; i = i + 1) mem[i] = {WIDTH{1'b0}};
            rdata = {WIDTH{1'b0}};
`endif
            if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
        end
        always @(posedge clk) begin
            rdata <= mem[raddr];
            for (i = 0; i < LANES; i = i + 1)
                if (wen[i]) mem[waddr][i*GRAN +: GRAN] <= wdata[i*GRAN +: GRAN];
        end
    end endgenerate
endmodule
`default_nettype wire
"""
