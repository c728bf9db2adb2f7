"""Cycle-stepped mode: the schedule of docs/MICROARCHITECTURE.md walked one cycle at a time.

Each kernel advances a cycle counter once per loop iteration and models the
pipeline registers the schedule names (synchronous memory reads: data the cycle
after the address). The counts are *measured* by walking, never taken from the
formulas in ``poshw/ir.py``; tests check that both agree, and that the values
equal the golden model's.

Weight memories are modelled as ``[words, lanes]`` arrays: word ``b*n_in + c``,
lane ``l`` holds ``W[b*lanes + l, c]`` (the lane packing of the artifacts).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernels import family_value, xorshift32


@njit(cache=True)
def _requant(acc, mult, shift, lo, hi, requant):
    if not requant:
        return acc, 0
    half = np.int64(0) if shift == 0 else np.int64(1) << (shift - 1)
    v = (acc * mult + half) >> shift
    if v < lo:
        return lo, 1 if lo != 0 else 0  # ReLU zeros are not overflows
    if v > hi:
        return hi, 1
    return v, 0


@njit(cache=True)
def input_stream(image, buf):
    """One pixel per beat into the input buffer; returns cycles."""
    cycles = 0
    for p in range(image.shape[0]):
        buf[p] = image[p]
        cycles += 1
    return cycles


@njit(cache=True)
def matvec(x, mem, n_out, n_in, lanes, bias, has_bias, mult, shift, lo, hi, requant, out):
    """Setup; per block: n_in issue cycles, a drain cycle, one epilogue cycle per lane, a flush.

    Returns ``(cycles, saturated)``.
    """
    cycles = 1  # setup: state entry, counters reset
    sat = 0
    blocks = (n_out + lanes - 1) // lanes
    acc = np.zeros(lanes, dtype=np.int64)
    wreg = np.zeros(lanes, dtype=np.int64)  # weight word read data (one register per lane)
    xreg = np.int64(0)                      # activation read data
    valid = False
    for b in range(blocks):
        for t in range(n_in + 1):           # n_in issue cycles + the drain cycle
            if valid:                       # MAC of the element read in the previous cycle
                for lane in range(lanes):
                    acc[lane] += wreg[lane] * xreg
            if t < n_in:                    # issue reads of weight word b*n_in+t and activation t
                word = b * n_in + t
                for lane in range(lanes):
                    wreg[lane] = mem[word, lane]
                xreg = np.int64(x[t])
                valid = True
            else:
                valid = False
            cycles += 1
        for lane in range(lanes):           # epilogue: lane l -> output b*lanes + l
            r = b * lanes + lane
            if r < n_out:
                a = acc[lane] + (bias[r] if has_bias else 0)
                v, s = _requant(a, mult, shift, lo, hi, requant)
                out[r] = v
                sat += s
            acc[lane] = 0
            cycles += 1
        cycles += 1                         # flush
    return cycles, sat


@njit(cache=True)
def hadamard(x, d, filters, n, channels_in, bias, has_bias, mult, shift, lo, hi, requant, out):
    """Setup; one element issued per cycle; 3 tail cycles (read data, multiply-add, requantise-write)."""
    cycles = 1
    sat = 0
    total = filters * n
    a_valid = False  # address issued last cycle
    a_e = 0
    r_valid = False  # read data latched
    r_e = 0
    r_d = np.int64(0)
    r_x = np.int64(0)
    m_valid = False  # multiply-add result
    m_e = 0
    m_acc = np.int64(0)
    for t in range(total + 3):
        if m_valid:                          # requantise and write
            v, s = _requant(m_acc, mult, shift, lo, hi, requant)
            out[m_e] = v
            sat += s
        m_valid = r_valid                    # multiply-add
        if r_valid:
            f = r_e // n
            m_acc = r_d * r_x + (bias[f] if has_bias else 0)
            m_e = r_e
        r_valid = a_valid                    # memory data arrives
        if a_valid:
            f = a_e // n
            i = a_e % n
            r_d = np.int64(d[f, i])
            r_x = np.int64(x[(0 if channels_in == 1 else f) * n + i])
            r_e = a_e
        a_valid = t < total                  # issue element t
        a_e = t
        cycles += 1
    return cycles, sat


@njit(cache=True)
def gather(x, index, channels, n_in, n_out, out):
    """Setup; per output: index-ROM read, activation read, write (pipelined): 2 tail cycles."""
    cycles = 1
    total = channels * n_out
    i_valid = False
    i_o = 0
    i_addr = 0
    x_valid = False
    x_o = 0
    x_val = np.int64(0)
    for t in range(total + 2):
        if x_valid:                          # write
            out[x_o] = x_val
        x_valid = i_valid                    # activation read at the index
        if i_valid:
            x_val = np.int64(x[i_addr])
            x_o = i_o
        i_valid = t < total                  # index-ROM read for output t
        if i_valid:
            c = t // n_out
            i_o = t
            i_addr = c * n_in + index[t % n_out]
        cycles += 1
    return cycles


@njit(cache=True)
def argmax(x, n):
    """Setup; one value per cycle (read, compare next cycle); 1 tail cycle. Lowest index wins ties."""
    cycles = 1
    best = np.int64(0)
    k = 0
    r_valid = False
    r_i = 0
    r_v = np.int64(0)
    for t in range(n + 1):
        if r_valid and (r_i == 0 or r_v > best):
            best = r_v
            k = r_i
        r_valid = t < n
        if r_valid:
            r_i = t
            r_v = np.int64(x[t])
        cycles += 1
    return k, cycles


@njit(cache=True)
def synth_basis(acc, first, a, seed, table_row, family, rank1, rows, cols, use_rom, buf):
    """One basis: setup cycle, rank-1 vector generation, one entry per cycle. Returns cycles."""
    cycles = 1                               # setup: reseed / select ROM base, read a_k
    s = np.uint64(seed)
    n = rows * cols
    if rank1:
        for j in range(rows + cols):         # u then v into small buffers
            if use_rom:
                buf[j] = table_row[j]
            else:
                s = xorshift32(s)
                buf[j] = family_value(s, 0)
            cycles += 1
    for e in range(n):                       # one entry per cycle, row-major
        if rank1:
            m = buf[e // cols] * buf[rows + e % cols]
        elif use_rom:
            m = table_row[e]
        else:
            s = xorshift32(s)
            m = family_value(s, family)
        if first:
            acc[e] = a * m
        else:
            acc[e] += a * m
        cycles += 1
    return cycles


@njit(cache=True)
def synth_final(acc, shift, lo, hi, rows, cols, lanes, mem):
    """Final pass: one entry per cycle into the lane-packed weight memory, then a 2-cycle tail."""
    cycles = 0
    sat = 0
    half = np.int64(0) if shift == 0 else np.int64(1) << (shift - 1)
    for e in range(rows * cols):
        v = (acc[e] + half) >> shift
        if v < lo:
            v = lo
            sat += 1
        elif v > hi:
            v = hi
            sat += 1
        r = e // cols
        c = e % cols
        mem[(r // lanes) * cols + c, r % lanes] = v
        cycles += 1
    return cycles + 2, sat
