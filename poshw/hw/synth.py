"""Weight synthesis: ``W = sat(round_shift(sum_k a_k M_k, synth_shift))`` into a weight memory.

Runs after a coefficient load, on the schedule of docs/MICROARCHITECTURE.md
(``Synth.synth_cycles()``): one setup cycle; per basis one setup cycle (generator
reseeded from the seed ROM, or the basis ROM address selected, coefficient ``a_k``
read), ``rows + cols`` cycles that fill the ``u``/``v`` buffers of a rank-1 basis,
then one entry per cycle in row-major order, ``acc[e] (+)= a_k * M_k[e]`` as a
read-modify-write of the synthesis accumulator one cycle apart; finally ``N``
cycles plus a 2-cycle tail that write ``W[e]`` into the (lane-packed) weight memory.

Rademacher and ternary groups add, subtract or skip (no multiplier); gauss and
rank-1 groups share one small multiplier per stage.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..bases import Family
from ..ir import SYNTH_SHIFT, BasisSource, Format, Synth
from .generator import VALUE_BITS, value_map, xorshift32_step
from .mem import AmaranthMemories, MemoryBackend
from .requant import round_shift_saturate

__all__ = ["WeightSynth", "basis_rom_width", "to_words"]


def basis_rom_width(family: Family) -> int:
    """Bits of one basis-ROM entry (rank-1 ROMs store the gauss entries of u and v)."""
    family = Family(family)
    return Family.GAUSS.entry_bits if family is Family.RANK1 else family.entry_bits


def to_words(values, width: int) -> list[int]:
    """Signed or unsigned integers as unsigned ``width``-bit words (two's complement)."""
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    return [int(v) & ((1 << width) - 1) for v in arr]


def _bits(n: int) -> int:
    return max(1, (max(n, 1) - 1).bit_length())


class WeightSynth(wiring.Component):
    """The weighted-sum accumulator of one synthesised stage.

    Parameters
    ----------
    synth : :class:`poshw.ir.Synth`
        Shape, basis groups (family, count, ROM or generator source) and formats.
    weight_fmt : :class:`poshw.ir.Format`
        Format of the synthesised weights (signed).
    lanes : int
        Lanes of the weight memory: entry ``e = r * cols + c`` goes to word
        ``(r // lanes) * cols + c``, lane ``r % lanes``.
    basis_roms : mapping group -> array
        Basis ROM contents of the ``rom``-sourced groups: ``count x rows*cols`` integer
        values (rank-1: ``count x (rows + cols)``, u then v).
    seeds : mapping group -> array
        Seed ROM contents (uint32 per basis) of the ``generator``-sourced groups.
    mems : :class:`~poshw.hw.mem.MemoryBackend`
        How memories are built (Amaranth ``Memory`` by default).
    name : str
        Prefix of the memory names (``<name>.basis<g>``, ``<name>.seeds<g>`` ...).

    Ports
    -----
    start : In(1)
        High in the stage's setup cycle.
    last : Out(1)
        High in the last cycle (``synth.synth_cycles() - 1`` cycles after ``start``).
    p_en, p_field, p_idx, p_data : In
        Parameter writes: field ``g < len(groups)`` is coefficient ``p_idx`` of group
        ``g``; field ``len(groups)`` is the synthesis shift.
    w_addr, w_data, w_en : Out
        Write port of the weight memory (``w_en`` one bit per lane, ``w_data`` the
        weight repeated in every lane).
    """

    def __init__(self, synth: Synth, weight_fmt: Format, lanes: int = 1, *,
                 basis_roms: Mapping[int, Sequence] | None = None,
                 seeds: Mapping[int, Sequence] | None = None,
                 mems: MemoryBackend | None = None, name: str = "synth"):
        if not isinstance(synth, Synth):
            raise TypeError(f"WeightSynth: synth must be a poshw.ir.Synth, not {synth!r}")
        if not isinstance(weight_fmt, Format) or not weight_fmt.signed:
            raise TypeError(f"WeightSynth: weight_fmt must be a signed Format, not {weight_fmt!r}")
        if not isinstance(lanes, int) or not 1 <= lanes <= synth.rows:
            raise ValueError(f"WeightSynth: lanes must be in 1..{synth.rows}, not {lanes!r}")
        self.synth, self.weight_fmt, self.lanes = synth, weight_fmt, lanes
        self.mems = mems if mems is not None else AmaranthMemories()
        self.name = name
        basis_roms = dict(basis_roms or {})
        seeds = dict(seeds or {})
        self._roms: dict[int, np.ndarray] = {}
        self._seeds: dict[int, np.ndarray] = {}
        R, C, N = synth.rows, synth.cols, synth.entries
        for g, grp in enumerate(synth.groups):
            per = R + C if grp.family is Family.RANK1 else N
            if grp.family is Family.RANK1 and C < 2:
                raise ValueError(f"WeightSynth {name}: a rank-1 group needs at least 2 columns")
            if grp.source is BasisSource.ROM:
                if g not in basis_roms:
                    raise ValueError(f"WeightSynth {name}: group {g} is ROM-sourced but no basis ROM was given")
                arr = np.asarray(basis_roms[g], dtype=np.int64)
                if arr.size != grp.count * per:
                    raise ValueError(f"WeightSynth {name}: basis ROM {g} has {arr.size} entries, "
                                     f"expected {grp.count} x {per}")
                lo, hi = Family.GAUSS.value_range if grp.family is Family.RANK1 else grp.entry_range
                if arr.size and (arr.min() < lo or arr.max() > hi):
                    raise ValueError(f"WeightSynth {name}: basis ROM {g} has values outside [{lo}, {hi}]")
                self._roms[g] = arr.reshape(-1)
            else:
                if g not in seeds:
                    raise ValueError(f"WeightSynth {name}: group {g} is generator-sourced but no seeds were given")
                arr = np.asarray(seeds[g], dtype=np.int64).reshape(-1)
                if arr.size != grp.count or (arr.size and (arr.min() <= 0 or arr.max() >= 1 << 32)):
                    raise ValueError(f"WeightSynth {name}: seed ROM {g} needs {grp.count} non-zero uint32 states")
                self._seeds[g] = arr
        self.blocks = -(-R // lanes)
        self.max_count = max(g.count for g in synth.groups)
        super().__init__({
            "start": In(1), "last": Out(1),
            "p_en": In(1), "p_field": In(range(len(synth.groups) + 1)),
            "p_idx": In(range(self.max_count)), "p_data": In(32),
            "w_addr": Out(range(self.blocks * C)), "w_data": Out(lanes * weight_fmt.bits),
            "w_en": Out(lanes),
        })

    @property
    def cycles(self) -> int:
        """Cycles from ``start`` to ``last`` inclusive (= ``Synth.synth_cycles()``)."""
        return self.synth.synth_cycles()

    def elaborate(self, platform):
        m = Module()
        syn, mems = self.synth, self.mems
        R, C, N = syn.rows, syn.cols, syn.entries
        G = len(syn.groups)
        cbits = syn.coef_fmt.bits
        has_rank1 = any(g.family is Family.RANK1 for g in syn.groups)

        # ---- parameter storage: coefficients per group, synthesis shift -------------------
        shift = Signal(SYNTH_SHIFT.bits)
        with m.If(self.p_en & (self.p_field == G)):
            m.d.sync += shift.eq(self.p_data[:SYNTH_SHIFT.bits])
        coef = []
        for g, grp in enumerate(syn.groups):
            cm = mems.memory(m, f"{self.name}.coef{g}", cbits, grp.count)
            m.d.comb += [cm.waddr.eq(self.p_idx), cm.wdata.eq(self.p_data[:cbits]),
                         cm.wen.eq(self.p_en & (self.p_field == g))]
            coef.append(cm)

        # ---- sequencing state ---------------------------------------------------------------
        g_cur = Signal(range(max(G, 2)))
        k = Signal(range(self.max_count + 1))
        e = Signal(range(N + 1))
        i_ext = Signal(range(R + C + 1))          # rank-1 u/v entry
        rom_addr = Signal(range(max(self.max_count * max(N, R + C), 2)))
        row = Signal(range(R + 1))
        col = Signal(range(C + 1))
        issue = Signal()        # an accumulate entry issued this cycle
        issue_ext = Signal()    # a rank-1 u/v entry issued this cycle
        first_basis = Signal()
        final_issue = Signal()

        counts = [grp.count for grp in syn.groups]
        count_of_g = Signal(range(self.max_count + 1))
        with m.Switch(g_cur):
            for g in range(G):
                with m.Case(g):
                    m.d.comb += count_of_g.eq(counts[g])
        rank1_of_g = Signal()
        with m.Switch(g_cur):
            for g, grp in enumerate(syn.groups):
                with m.Case(g):
                    m.d.comb += rank1_of_g.eq(grp.family is Family.RANK1)

        # coefficient memories and seed ROMs are addressed by the current basis
        for g in range(G):
            m.d.comb += coef[g].raddr.eq(k)

        # ---- basis sources ------------------------------------------------------------------
        # value of the entry issued in the previous cycle, per group (registered)
        values = []
        for g, grp in enumerate(syn.groups):
            fam = Family.GAUSS if grp.family is Family.RANK1 else grp.family
            vb = VALUE_BITS[fam]
            active = g_cur == g
            if grp.source is BasisSource.ROM:
                width = basis_rom_width(grp.family)
                rom = mems.memory(m, f"{self.name}.basis{g}", width, self._roms[g].size,
                                  init=to_words(self._roms[g], width), writable=False)
                m.d.comb += rom.raddr.eq(rom_addr)
                values.append(rom.rdata.as_signed())
            else:
                sr = mems.memory(m, f"{self.name}.seeds{g}", 32, grp.count,
                                 init=to_words(self._seeds[g], 32), writable=False)
                m.d.comb += sr.raddr.eq(k)
                state = Signal(32, name=f"gen{g}_state", init=1)
                entry0 = Signal(name=f"gen{g}_entry0")
                cur = Mux(entry0, sr.rdata, state)
                raw = Signal(32, name=f"gen{g}_raw")
                m.d.comb += raw.eq(xorshift32_step(cur))
                val = value_map(m, raw, fam, name=f"gen{g}_value")
                vreg = Signal(signed(vb), name=f"gen{g}_vreg")
                adv = active & (issue | issue_ext)
                first_entry = Mux(grp.family is Family.RANK1, issue_ext & (i_ext == 0), issue & (e == 0))
                m.d.comb += entry0.eq(first_entry)
                with m.If(adv):
                    m.d.sync += [state.eq(raw), vreg.eq(val)]
                values.append(vreg)

        # ---- rank-1 u/v buffers ---------------------------------------------------------------
        if has_rank1:
            ubuf = mems.memory(m, f"{self.name}.ubuf", 7, R)
            vbuf = mems.memory(m, f"{self.name}.vbuf", 7, C)
            ext_v = Signal()                       # pipeline of the u/v fill
            ext_i = Signal(range(R + C + 1))
            m.d.sync += [ext_v.eq(issue_ext), ext_i.eq(i_ext)]
            gv = Signal(signed(7))
            with m.Switch(g_cur):
                for g, grp in enumerate(syn.groups):
                    with m.Case(g):
                        if grp.family is Family.RANK1:
                            m.d.comb += gv.eq(values[g])
            m.d.comb += [
                ubuf.waddr.eq(ext_i), ubuf.wdata.eq(gv), ubuf.wen.eq(ext_v & (ext_i < R)),
                vbuf.waddr.eq(ext_i - R), vbuf.wdata.eq(gv), vbuf.wen.eq(ext_v & (ext_i >= R)),
                ubuf.raddr.eq(row), vbuf.raddr.eq(col),
            ]
            uv = Signal(signed(14))
            m.d.comb += uv.eq(ubuf.rdata.as_signed() * vbuf.rdata.as_signed())

        # ---- accumulator memory and the accumulate pipeline ------------------------------------
        accm = mems.memory(m, f"{self.name}.acc", syn.acc_bits, N)
        p_valid = Signal()
        p_e = Signal(range(N))
        p_first = Signal()
        p_g = Signal(range(max(G, 2)))
        m.d.sync += [p_valid.eq(issue), p_e.eq(e), p_first.eq(first_basis), p_g.eq(g_cur)]

        mbits = 11
        a_sel = Signal(signed(cbits))
        m_sel = Signal(signed(mbits + 4))
        with m.Switch(p_g):
            for g, grp in enumerate(syn.groups):
                with m.Case(g):
                    m.d.comb += a_sel.eq(coef[g].rdata.as_signed())
                    if grp.family is Family.RANK1:
                        m.d.comb += m_sel.eq(uv)
                    else:
                        m.d.comb += m_sel.eq(values[g])
        term = Signal(signed(cbits + mbits + 4))
        if syn.needs_multiplier():
            m.d.comb += term.eq(a_sel * m_sel)
        else:  # +-1 and ternary: add, subtract or skip
            m.d.comb += term.eq(Mux(m_sel == 0, 0, Mux(m_sel[-1], -a_sel, a_sel)))
        acc_new = Signal(signed(syn.acc_bits))
        m.d.comb += acc_new.eq(Mux(p_first, 0, accm.rdata.as_signed()) + term)
        m.d.comb += [accm.waddr.eq(p_e), accm.wdata.eq(acc_new), accm.wen.eq(p_valid)]

        # ---- final pass: W = sat(round_shift(acc, shift)) ---------------------------------------
        q_valid = Signal()
        r_valid = Signal()
        w_reg = Signal(signed(self.weight_fmt.bits))
        m.d.sync += [q_valid.eq(final_issue), r_valid.eq(q_valid)]
        with m.If(q_valid):
            m.d.sync += w_reg.eq(round_shift_saturate(accm.rdata.as_signed(), shift, self.weight_fmt))
        # read address: accumulate phases read entry e; the final pass too
        m.d.comb += accm.raddr.eq(e)

        # write-side counters of the lane-packed weight memory
        wc = Signal(range(C + 1))
        wl = Signal(range(self.lanes + 1))
        wbase = Signal(range(self.blocks * C + 1))
        m.d.comb += [self.w_addr.eq(wbase + wc), self.w_data.eq(w_reg.as_unsigned().replicate(self.lanes))]
        with m.If(r_valid):
            m.d.comb += self.w_en.eq(Const(1, self.lanes) << wl)
            with m.If(wc == C - 1):
                m.d.sync += wc.eq(0)
                with m.If(wl == self.lanes - 1):
                    m.d.sync += [wl.eq(0), wbase.eq(wbase + C)]
                with m.Else():
                    m.d.sync += wl.eq(wl + 1)
            with m.Else():
                m.d.sync += wc.eq(wc + 1)

        # ---- the FSM ---------------------------------------------------------------------------
        done_bases = Signal()   # this was the last basis of the last group
        m.d.comb += done_bases.eq((g_cur == G - 1) & (k == count_of_g - 1))
        with m.FSM(name="synth_fsm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [g_cur.eq(0), k.eq(0), rom_addr.eq(0), first_basis.eq(1),
                                 wc.eq(0), wl.eq(0), wbase.eq(0)]
                    m.next = "BSETUP"
            with m.State("BSETUP"):
                m.d.sync += [e.eq(0), i_ext.eq(0), row.eq(0), col.eq(0)]
                with m.If(rank1_of_g):
                    m.next = "EXTRA"
                with m.Else():
                    m.next = "ENTRY"
            with m.State("EXTRA"):
                m.d.comb += issue_ext.eq(1)
                m.d.sync += [i_ext.eq(i_ext + 1), rom_addr.eq(rom_addr + 1)]
                with m.If(i_ext == R + C - 1):
                    m.next = "ENTRY"
            with m.State("ENTRY"):
                m.d.comb += issue.eq(1)
                m.d.sync += e.eq(e + 1)
                with m.If(~rank1_of_g):
                    m.d.sync += rom_addr.eq(rom_addr + 1)
                with m.If(col == C - 1):
                    m.d.sync += [col.eq(0), row.eq(row + 1)]
                with m.Else():
                    m.d.sync += col.eq(col + 1)
                with m.If(e == N - 1):
                    m.d.sync += first_basis.eq(0)
                    with m.If(done_bases):
                        m.d.sync += e.eq(0)
                        m.next = "FINAL"
                    with m.Else():
                        with m.If(k == count_of_g - 1):
                            m.d.sync += [g_cur.eq(g_cur + 1), k.eq(0), rom_addr.eq(0)]
                        with m.Else():
                            m.d.sync += k.eq(k + 1)
                        m.next = "BSETUP"
            with m.State("FINAL"):
                m.d.comb += final_issue.eq(1)
                m.d.sync += e.eq(e + 1)
                with m.If(e == N - 1):
                    m.next = "TAIL1"
            with m.State("TAIL1"):
                m.next = "TAIL2"
            with m.State("TAIL2"):
                m.d.comb += self.last.eq(1)
                m.next = "IDLE"
        return m
