"""Random small designs and parameters, for property tests of the golden, the simulator and the RTL.

``random_ir(rng)`` draws a valid chain of every stage kind (matvec with ROM / RAM /
synthesised weights, Hadamard, gather), number formats (int8 ... int16, unsigned
after ReLU), lane counts, basis families and sources; ``random_params(ir, rng)``
draws parameters whose outputs mostly stay in range (a few saturate, on purpose).
Both are deterministic in the numpy ``Generator`` they are given.
"""

from __future__ import annotations

import math

import numpy as np

from ..bases import Family
from ..ir import (
    Argmax, BasisGroup, BasisSource, Format, Gather, Hadamard, MatVec, NetworkIR, Stage, Synth,
    WeightSource, bits_for,
)
from .params import Params
from .roms import format_rom_origin, rom_contents

STAGE_KINDS = ("rom", "ram", "synth", "hadamard", "gather")


def _fmt(rng: np.random.Generator, choices=(4, 8, 8, 16), signed: bool = True) -> Format:
    return Format(int(rng.choice(choices)), signed)


def _groups(rng: np.random.Generator, allow_rank1: bool, sources: tuple[BasisSource, ...]) -> tuple[BasisGroup, ...]:
    fams = [Family.GAUSS, Family.RADEMACHER, Family.TERNARY] + ([Family.RANK1] if allow_rank1 else [])
    out = []
    for _ in range(int(rng.integers(1, 3))):
        out.append(BasisGroup(fams[int(rng.integers(len(fams)))], int(rng.integers(1, 6)),
                              sources[int(rng.integers(len(sources)))], int(rng.integers(0, 1000)),
                              tuple(int(p) for p in rng.integers(0, 9, size=int(rng.integers(1, 4))))))
    return tuple(out)


def random_ir(rng: np.random.Generator, *, stages: int = 3, max_dim: int = 12,
              input_shape: tuple[int, int] = (3, 4), kinds: tuple[str, ...] = STAGE_KINDS,
              sources: tuple[BasisSource, ...] = (BasisSource.GENERATOR, BasisSource.ROM),
              max_lanes: int = 5) -> NetworkIR:
    """A valid network of ``stages`` hidden stages (from ``kinds``) plus a final matvec and argmax."""
    n, fmt = input_shape[0] * input_shape[1], Format(8, False)
    out: list[Stage] = []
    for k in range(stages + 1):
        last = k == stages
        kind = str(rng.choice([c for c in kinds if c in ("rom", "ram", "synth")] or ["ram"])) if last \
            else str(rng.choice(kinds))
        name = f"s{k}_{kind}"
        relu = bool(rng.integers(2)) and not last
        out_fmt = _fmt(rng, (5, 8, 8, 16), signed=not relu)
        if kind == "gather":
            divs = [c for c in range(1, n + 1) if n % c == 0 and c <= 3]
            ch = int(rng.choice(divs))
            n_in = n // ch
            n_out = int(rng.integers(1, n_in + 1))
            perm = bool(rng.integers(2))
            st: Stage = Gather(name, n_in=n_in, n_out=n_out, channels=ch, fmt=fmt,
                               index_origin="permutation" if perm else "prefix",
                               seed=int(rng.integers(0, 100)) if perm else 0,
                               path=(int(rng.integers(0, 5)), 0) if perm else ())
        elif kind == "hadamard":
            filters = int(rng.integers(1 if n >= 2 else 2, 4))  # synthesis needs >= 2 entries
            depthwise = n % filters == 0 and filters > 1 and bool(rng.integers(2))
            hn = n // filters if depthwise else n
            wf = _fmt(rng)
            synth = Synth(filters, hn, _groups(rng, False, sources), _fmt(rng, (4, 8, 16)))
            st = Hadamard(name, n=hn, filters=filters, channels_in=filters if depthwise else 1, in_fmt=fmt,
                          weight_fmt=wf, synth=synth, bias=bool(rng.integers(2)), relu=relu, out_fmt=out_fmt)
        else:
            n_out = int(rng.integers(2, 7)) if last else int(rng.integers(1 if n >= 2 else 2, max_dim + 1))
            lanes = int(rng.integers(1, min(n_out, max_lanes) + 1))
            common = dict(n_in=n, n_out=n_out, lanes=lanes, in_fmt=fmt, bias=bool(rng.integers(2)),
                          requant=not last, relu=relu)
            if not last:
                common["out_fmt"] = out_fmt
            if kind == "rom":
                if k == 0 and rng.integers(2):
                    h, w = input_shape
                    m = int(rng.integers(1, n + 1))
                    common["n_out"] = m
                    common["lanes"] = min(lanes, m)
                    origin = format_rom_origin("dct", h=h, w=w, m=m, frac_bits=int(rng.integers(4, 9)), channels=1)
                else:
                    origin = format_rom_origin("gauss", seed=int(rng.integers(0, 100)), path=(k, 0, 0),
                                               rows=common["n_out"], cols=n, channels=1)
                from .roms import rom_matrix
                probe = MatVec(name, weight_source=WeightSource.ROM, weight_fmt=Format(16, True),
                               rom_origin=origin, **common)
                mat = rom_matrix(probe)
                st = MatVec(name, weight_source=WeightSource.ROM,
                            weight_fmt=Format(bits_for(int(mat.min()), int(mat.max())), True),
                            rom_origin=origin, **common)
            elif kind == "ram":
                st = MatVec(name, weight_source=WeightSource.RAM, weight_fmt=_fmt(rng), **common)
            else:
                synth = Synth(common["n_out"], n, _groups(rng, True, sources), _fmt(rng, (4, 8, 16)))
                st = MatVec(name, weight_source=WeightSource.SYNTH, weight_fmt=_fmt(rng), synth=synth, **common)
        out.append(st)
        n, fmt = st.n_outputs, st.output_fmt
    out.append(Argmax("argmax", n=n, in_fmt=fmt))
    return NetworkIR("random", tuple(out), input_len=input_shape[0] * input_shape[1], input_shape=input_shape)


def _bits_above(v: float) -> int:
    return int(math.ceil(math.log2(v))) if v > 1 else 0


def random_params(ir: NetworkIR, rng: np.random.Generator, *, probe: int = 8) -> Params:
    """Random parameters; requantisation and synthesis shifts follow the values on random inputs."""
    from ..fixedpoint.golden import (  # late: golden imports the compiler package
        stage_forward, stage_roms, synth_accumulate, round_shift, count_saturated,
    )
    roms = rom_contents(ir)
    x = rng.integers(0, 256, size=(probe, ir.input_len)).astype(np.int64)
    params: Params = {}
    for i, st in enumerate(ir.stages):
        p: dict[str, np.ndarray] = {}
        sr = stage_roms(roms, i)
        synth = getattr(st, "synth", None)
        if isinstance(st, MatVec) and st.weight_source is WeightSource.RAM:
            p["weights"] = rng.integers(st.weight_fmt.lo, st.weight_fmt.hi + 1, size=(st.n_out, st.n_in))
        if synth is not None:
            for g, grp in enumerate(synth.groups):
                p[f"coef.{g}"] = rng.integers(synth.coef_fmt.lo, synth.coef_fmt.hi + 1, size=grp.count)
            acc = synth_accumulate(synth, sr, p)
            shift = 0
            while shift < 31 and count_saturated(round_shift(acc, shift), st.weight_fmt):
                shift += 1
            shift = max(0, shift - int(rng.integers(0, 2)))  # sometimes one short: a few saturate
            p["synth_shift"] = np.array([shift])
        if isinstance(st, (MatVec, Hadamard)):
            if st.bias:
                count = st.n_out if isinstance(st, MatVec) else st.filters
                p["bias"] = np.zeros(count, dtype=np.int64)
            if st.requant:
                p["requant_mult"] = np.array([1])
                p["requant_shift"] = np.array([0])
            # the accumulator's size on the probe inputs decides bias, multiplier and shift
            probe_p = dict(p)
            if st.requant:
                probe_p.update(requant_mult=np.array([1]), requant_shift=np.array([0]))
            import dataclasses
            bare = dataclasses.replace(st, requant=False, relu=False, out_fmt=Format(st.acc_bits, True)) \
                if st.requant else st
            acc = stage_forward(bare, x, sr, probe_p).y
            peak = max(1.0, float(np.abs(acc).max(initial=0)))
            if st.bias:
                p["bias"] = np.clip(rng.integers(-int(peak), int(peak) + 1, size=p["bias"].shape),
                                    -(1 << 31), (1 << 31) - 1)
            if st.requant:
                mult = int(rng.integers(1, 1 << 16))
                shift = _bits_above(2 * peak * mult / st.out_fmt.hi) + int(rng.integers(-1, 2))
                p["requant_mult"] = np.array([mult])
                p["requant_shift"] = np.array([min(63, max(0, shift))])
        params[i] = {k: np.asarray(v, dtype=np.int64).reshape(-1) if k != "weights" else np.asarray(v, np.int64)
                     for k, v in p.items()}
        if not isinstance(st, Argmax):
            x = stage_forward(st, x, sr, params[i]).y
    return {i: p for i, p in params.items() if p}


def train_tiny(spec, images: np.ndarray, labels: np.ndarray, *, steps: int = 300, batch: int = 64,
               lr: float = 3e-3, seed: int = 0, dataset: str = "mnist"):
    """A quickly trained :class:`~poshw.coefset.CoefficientSet` (Adam, a few hundred steps).

    For tests that need a model that actually classifies; not a substitute for ``poshw train``.
    """
    import torch

    from ..coefset import CoefficientSet
    from ..nn import build_model

    torch.manual_seed(seed)
    model = build_model(spec)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    x_all = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    gen = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        idx = torch.from_numpy(gen.integers(0, len(y_all), size=batch))
        loss = torch.nn.functional.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return CoefficientSet.from_model(model, {"dataset": dataset, "steps": steps})
