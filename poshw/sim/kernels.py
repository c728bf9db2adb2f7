"""numba kernels of the bit-accurate fast mode (docs/FIXED_POINT.md semantics).

Throughput notes: numba widens ``int32 * int32`` to int64, which defeats SIMD;
``np.int32(acc + np.int32(w) * np.int32(x))`` keeps the arithmetic in 32 bits,
and LLVM turns it into ``vpmaddwd``. That is exact only while partial sums fit
int32, so the dot product runs over column chunks of ``chunk`` elements whose
worst case fits int32 (``chunk * max|w| * max|x| < 2**31``; one chunk for int8
data), and chunk sums are added in int64. A 4-image x 2-row register block
reuses every loaded weight and activation.
"""

from __future__ import annotations

import os

import numpy as np
from llvmlite import ir as llir
from numba import njit, prange, types
from numba.extending import intrinsic


def _have_vnni() -> bool:
    """AVX-512 VNNI (``vpdpbusd``: 64 u8 x s8 MACs into 16 int32 per instruction) on this host.

    ``POSHW_SIM_VNNI=0`` turns the VNNI kernel off (the portable kernels then run everywhere).
    """
    if os.environ.get("POSHW_SIM_VNNI", "1").strip() in ("0", "false", "no", "off"):
        return False
    try:
        import llvmlite.binding as ll
        from numba import config

        feats = ll.get_host_cpu_features()
        if not (feats.get("avx512vnni") and feats.get("avx512bw") and feats.get("avx512f")):
            return False
        # numba told to compile for another CPU (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES): stay portable
        if config.CPU_NAME not in (None, "", "host"):
            return False
        return not config.CPU_FEATURES or "+avx512vnni" in config.CPU_FEATURES
    except Exception:  # pragma: no cover - any doubt: use the portable kernels
        return False


#: whether :func:`matvec_vnni` may run here
HAVE_VNNI = _have_vnni()



@njit(cache=True, inline="always")
def _epilogue(acc: np.int64, mult: np.int64, shift: np.int64, half: np.int64, lo: np.int64,
              hi: np.int64, requant: bool) -> tuple:
    """``sat(round_shift(acc * mult, shift))``; returns (value, saturated?)."""
    if not requant:
        return acc, False
    v = (acc * mult + half) >> shift
    if v < lo:
        return lo, lo != 0  # an unsigned format's bound 0 is the ReLU, not an overflow
    if v > hi:
        return hi, True
    return v, False


@njit(cache=True, parallel=True)
def matvec_chunked(x, w, bias, mult, shift, lo, hi, requant, chunk, out):
    """``out = epilogue(x @ w.T + bias)`` for a batch; int32 chunk sums; returns saturations.

    x: [N, n_in] small ints; w: [n_out, n_in] small ints; bias: int64 [n_out];
    out: [N, n_out] of the output format's dtype (int64 for logits).
    """
    n, n_in = x.shape
    n_out = w.shape[0]
    half = np.int64(0) if shift == 0 else np.int64(1) << (shift - 1)
    tiles = (n + 3) // 4
    sat = np.zeros(tiles, dtype=np.int64)
    for t in prange(tiles):
        b0 = t * 4
        nb = min(4, n - b0)
        acc = np.zeros((4, 2), dtype=np.int64)
        for r0 in range(0, n_out, 2):
            nr = min(2, n_out - r0)
            acc[:, :] = 0
            for c0 in range(0, n_in, chunk):
                c1 = min(n_in, c0 + chunk)
                if nb == 4 and nr == 2:
                    # register block: 4 images x 2 rows; every load feeds 2 or 4 MACs
                    # chunk views indexed from 0: a provably non-negative index lets
                    # LLVM drop numba's wraparound check and vectorise the loads
                    x0 = x[b0, c0:c1]
                    x1 = x[b0 + 1, c0:c1]
                    x2 = x[b0 + 2, c0:c1]
                    x3 = x[b0 + 3, c0:c1]
                    w0 = w[r0, c0:c1]
                    w1 = w[r0 + 1, c0:c1]
                    a00 = np.int32(0)
                    a01 = np.int32(0)
                    a02 = np.int32(0)
                    a03 = np.int32(0)
                    a10 = np.int32(0)
                    a11 = np.int32(0)
                    a12 = np.int32(0)
                    a13 = np.int32(0)
                    for c in range(c1 - c0):
                        v0 = np.int32(x0[c])
                        v1 = np.int32(x1[c])
                        v2 = np.int32(x2[c])
                        v3 = np.int32(x3[c])
                        u0 = np.int32(w0[c])
                        u1 = np.int32(w1[c])
                        a00 = np.int32(a00 + u0 * v0)
                        a01 = np.int32(a01 + u0 * v1)
                        a02 = np.int32(a02 + u0 * v2)
                        a03 = np.int32(a03 + u0 * v3)
                        a10 = np.int32(a10 + u1 * v0)
                        a11 = np.int32(a11 + u1 * v1)
                        a12 = np.int32(a12 + u1 * v2)
                        a13 = np.int32(a13 + u1 * v3)
                    acc[0, 0] += a00
                    acc[1, 0] += a01
                    acc[2, 0] += a02
                    acc[3, 0] += a03
                    acc[0, 1] += a10
                    acc[1, 1] += a11
                    acc[2, 1] += a12
                    acc[3, 1] += a13
                else:
                    for bi in range(nb):
                        xb = x[b0 + bi, c0:c1]
                        for ri in range(nr):
                            wr = w[r0 + ri, c0:c1]
                            a = np.int32(0)
                            for c in range(c1 - c0):
                                a = np.int32(a + np.int32(wr[c]) * np.int32(xb[c]))
                            acc[bi, ri] += a
            for bi in range(nb):
                for ri in range(nr):
                    r = r0 + ri
                    v, s = _epilogue(acc[bi, ri] + bias[r], mult, shift, half, lo, hi, requant)
                    out[b0 + bi, r] = v
                    if s:
                        sat[t] += 1
    return sat.sum()


@njit(cache=True, parallel=True)
def matvec_wide(x, w, bias, mult, shift, lo, hi, requant, out):
    """The same in plain int64 (for formats whose products do not fit int32)."""
    n, n_in = x.shape
    n_out = w.shape[0]
    half = np.int64(0) if shift == 0 else np.int64(1) << (shift - 1)
    sat = np.zeros(n, dtype=np.int64)
    for b in prange(n):
        for r in range(n_out):
            a = np.int64(0)
            for c in range(n_in):
                a += np.int64(w[r, c]) * np.int64(x[b, c])
            v, s = _epilogue(a + bias[r], mult, shift, half, lo, hi, requant)
            out[b, r] = v
            if s:
                sat[b] += 1
    return sat.sum()


@njit(cache=True, parallel=True)
def hadamard(x, d, channels_in, bias, mult, shift, lo, hi, requant, out):
    """``out[b, f*n + i] = epilogue(d[f, i] * x[b, c(f)*n + i] + bias[f])``."""
    n_img = x.shape[0]
    filters, n = d.shape
    half = np.int64(0) if shift == 0 else np.int64(1) << (shift - 1)
    sat = np.zeros(n_img, dtype=np.int64)
    for b in prange(n_img):
        for f in range(filters):
            base = 0 if channels_in == 1 else f * n
            for i in range(n):
                a = np.int64(d[f, i]) * np.int64(x[b, base + i]) + bias[f]
                v, s = _epilogue(a, mult, shift, half, lo, hi, requant)
                out[b, f * n + i] = v
                if s:
                    sat[b] += 1
    return sat.sum()


@njit(cache=True)
def gather(x, index, channels, n_in, out):
    n_img = x.shape[0]
    n_out = index.shape[0]
    for b in range(n_img):  # a copy: not worth a parallel region (and its compile time)
        for c in range(channels):
            for i in range(n_out):
                out[b, c * n_out + i] = x[b, c * n_in + index[i]]


@njit(cache=True)
def argmax(x, out):
    """Index of the largest value; strict ``>`` so the lowest index wins ties."""
    for b in range(x.shape[0]):
        best = x[b, 0]
        k = 0
        for i in range(1, x.shape[1]):
            if x[b, i] > best:
                best = x[b, i]
                k = i
        out[b] = k


# --- weight synthesis ------------------------------------------------------------------------

@njit(cache=True, inline="always")
def xorshift32(s: np.uint64) -> np.uint64:
    """One xorshift32 step (13, 17, 5) on a state held in a uint64 (masked to 32 bits)."""
    m = np.uint64(0xFFFFFFFF)
    s = (s ^ (s << np.uint64(13))) & m
    s = s ^ (s >> np.uint64(17))
    return (s ^ (s << np.uint64(5))) & m


@njit(cache=True, inline="always")
def family_value(raw: np.uint64, family: int) -> np.int64:
    """Integer basis value of a raw output: 0 gauss (and rank-1 factors), 1 rademacher, 2 ternary."""
    if family == 1:
        return np.int64(1) - np.int64(2) * np.int64(raw >> np.uint64(31))
    if family == 2:  # r >> 30: 0 -> -1, 1 -> +1, 2 and 3 -> 0
        top = np.int64(raw >> np.uint64(30))
        return np.int64(-1) if top == 0 else (np.int64(1) if top == 1 else np.int64(0))
    h = np.int64(raw >> np.uint64(16))
    return (h & 15) + ((h >> 4) & 15) + ((h >> 8) & 15) + ((h >> 12) & 15) - 30


@njit(cache=True, parallel=True)
def synth_group(acc, coef, seeds, table, family, rank1, rows, cols, use_rom, threads):
    """``acc += sum_k coef[k] * M_k`` for one basis group (fast mode: bases split over threads).

    ``table`` is the basis ROM ([count, rows*cols] or rank-1 [count, rows+cols]) when
    ``use_rom``, else bases are regenerated from ``seeds``.
    """
    count = coef.shape[0]
    n = rows * cols
    part = np.zeros((threads, n), dtype=np.int64)
    for t in prange(threads):
        buf = np.empty(rows + cols, dtype=np.int64)
        for k in range(t, count, threads):
            a = np.int64(coef[k])
            if a == 0:
                continue
            s = np.uint64(seeds[k]) if not use_rom else np.uint64(0)
            if rank1:
                for j in range(rows + cols):
                    if use_rom:
                        buf[j] = table[k, j]
                    else:
                        s = xorshift32(s)
                        buf[j] = family_value(s, 0)
                for r in range(rows):
                    ar = a * buf[r]
                    for c in range(cols):
                        part[t, r * cols + c] += ar * buf[rows + c]
            elif use_rom:
                for e in range(n):
                    part[t, e] += a * table[k, e]
            else:
                for e in range(n):
                    s = xorshift32(s)
                    part[t, e] += a * family_value(s, family)
    for t in range(threads):
        for e in range(n):
            acc[e] += part[t, e]


@njit(cache=True)
def synth_finish(acc, shift, lo, hi, out):
    """``out = sat(round_shift(acc, shift))``; returns saturations."""
    half = np.int64(0) if shift == 0 else np.int64(1) << (shift - 1)
    sat = 0
    for e in range(acc.shape[0]):
        v = (acc[e] + half) >> shift
        if v < lo:
            v = lo
            sat += 1
        elif v > hi:
            v = hi
            sat += 1
        out[e] = v
    return sat


# --- AVX-512 VNNI kernel --------------------------------------------------------------------------

@intrinsic
def _vnni_dot4x2(typingctx, x0, x1, x2, x3, w0, w1, nblk, out):
    """Dots of 4 uint8 rows ``x*`` with 2 int8 rows ``w*``, ``64 * nblk`` bytes each (addresses).

    Eight ``<16 x i32>`` accumulators; each 64-byte step is 6 loads and 8 ``vpdpbusd``.
    Writes the 8 int32 sums to ``out``: index ``r * 4 + b``. No overflow: the caller
    bounds ``64 * nblk * 255 * 128`` below 2**31.
    """
    sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64,
                     types.int64, types.int64)

    def codegen(context, builder, signature, args):
        i64, i32 = llir.IntType(64), llir.IntType(32)
        v16 = llir.VectorType(i32, 16)
        mod = builder.module
        dp = mod.globals.get("llvm.x86.avx512.vpdpbusd.512") or llir.Function(
            mod, llir.FunctionType(v16, [v16, v16, v16]), name="llvm.x86.avx512.vpdpbusd.512")
        red = mod.globals.get("llvm.vector.reduce.add.v16i32") or llir.Function(
            mod, llir.FunctionType(i32, [v16]), name="llvm.vector.reduce.add.v16i32")
        xs, ws, n, outp = args[0:4], args[4:6], args[6], args[7]
        entry = builder.block
        loop = builder.append_basic_block("vnni.loop")
        done = builder.append_basic_block("vnni.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        i = builder.phi(i64)
        i.add_incoming(llir.Constant(i64, 0), entry)
        accs = []
        for _ in range(8):
            phi = builder.phi(v16)
            phi.add_incoming(llir.Constant(v16, None), entry)
            accs.append(phi)
        off = builder.mul(i, llir.Constant(i64, 64))

        def load(addr):
            ld = builder.load(builder.inttoptr(builder.add(addr, off), v16.as_pointer()))
            ld.align = 1
            return ld

        xv = [load(a) for a in xs]
        wv = [load(a) for a in ws]
        new = [builder.call(dp, [accs[r * 4 + b], xv[b], wv[r]]) for r in range(2) for b in range(4)]
        nxt = builder.add(i, llir.Constant(i64, 1))
        i.add_incoming(nxt, builder.block)
        for acc, v in zip(accs, new):
            acc.add_incoming(v, builder.block)
        builder.cbranch(builder.icmp_unsigned("<", nxt, n), loop, done)
        builder.position_at_end(done)
        optr = builder.inttoptr(outp, i32.as_pointer())
        for k in range(8):
            builder.store(builder.call(red, [new[k]]), builder.gep(optr, [llir.Constant(i64, k)]))
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, parallel=True)
def matvec_vnni(x, w, corr, bias, mult, shift, lo, hi, requant, out):
    """:func:`matvec_chunked` for uint8 activations and int8 weights with ``vpdpbusd``.

    x: uint8 [N, npad], w: int8 [n_out, npad], npad a multiple of 64, zero padding;
    corr: int64 [n_out] added to every dot (``-128 * rowsum(W)`` when the activations are
    signed int8 shifted by +128 into uint8, else 0); out: [N, n_out] of the output's
    compact dtype. Per 4-image tile: all dots into an int32 buffer, then a vectorisable
    epilogue per image. Call only when :data:`HAVE_VNNI`.
    """
    n, npad = x.shape
    n_out = w.shape[0]
    nblk = npad // 64
    half = np.int64(0) if shift == 0 else np.int64(1) << (shift - 1)
    lo_counts = np.int64(1) if lo != 0 else np.int64(0)  # ReLU zeros are not overflows
    xb = np.int64(x.ctypes.data)  # int64, not uintp: uintp + int64 would be a float in numba
    wb = np.int64(w.ctypes.data)
    tiles = (n + 3) // 4
    sat = np.zeros(tiles, dtype=np.int64)
    for t in prange(tiles):
        res = np.zeros(8, dtype=np.int32)
        rp = np.int64(res.ctypes.data)
        acc = np.empty((4, n_out), dtype=np.int64)
        b0 = t * 4
        nb = min(4, n - b0)
        # a partial tile repeats its last image; the extra sums are ignored
        a0 = xb + b0 * npad
        a1 = xb + (b0 + min(1, nb - 1)) * npad
        a2 = xb + (b0 + min(2, nb - 1)) * npad
        a3 = xb + (b0 + min(3, nb - 1)) * npad
        for r0 in range(0, n_out, 2):
            nr = min(2, n_out - r0)
            _vnni_dot4x2(a0, a1, a2, a3, wb + r0 * npad, wb + (r0 + nr - 1) * npad, nblk, rp)
            for ri in range(nr):
                for bi in range(4):
                    acc[bi, r0 + ri] = res[ri * 4 + bi]
        cnt = np.int64(0)
        for bi in range(nb):
            row = acc[bi]
            o = out[b0 + bi]
            if requant:
                for r in range(n_out):
                    v = ((row[r] + corr[r] + bias[r]) * mult + half) >> shift
                    cnt += np.int64(v > hi) + np.int64(v < lo) * lo_counts
                    o[r] = min(max(v, lo), hi)
            else:
                for r in range(n_out):
                    o[r] = row[r] + corr[r] + bias[r]
        sat[t] = cnt
    return sat.sum()
