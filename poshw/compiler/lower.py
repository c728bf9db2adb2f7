"""Lowering: a trained coefficient set (float model) to a hardware IR plus float stage values.

The IR's structure depends only on the model spec and the :class:`CompileOptions`;
the float values (dense weights, coefficients, biases, ROM scales) are carried
alongside in :class:`FloatStage` for the quantiser (``poshw.fixedpoint.quantize``).

Layer mapping (one spec layer -> IR stages):

==================  ===========================================================
Flatten, Dropout    nothing (Dropout is the identity at inference)
Projection dct      matvec, ROM weights ``dct:...`` (exact integers x 2**-frac_bits)
Projection gauss    matvec, ROM weights ``gauss:...`` (integers x family scale / sqrt(n))
Projection subsample gather, seeded permutation prefix
Projection select   gather, prefix
Linear              matvec, RAM weights
ProdSumLinear       one synthesised matvec per factor, chained: factor p-1 first; the
                    intermediate ones have no bias and no ReLU (requantised to int)
Hadamard            hadamard stage (bias mode ``channel`` or ``none``)
ReLU                folded into the previous stage (unsigned output format)
last layer          matvec without requantisation (logits), then argmax
Conv2d, MaxPool2d   refused: the hardware has no convolutions
==================  ===========================================================

Every lowering is checked against the torch model: :func:`float_forward` (the
lowered float network in numpy) must reproduce the model's logits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import numpy as np

from .. import PoshwError
from .. import spec as S
from ..bases import DEFAULT_FRAC_BITS, Family, basis_stack, dct2_int
from ..ir import (
    Argmax, BasisGroup, BasisSource, Format, Gather, Hadamard, MatVec, NetworkIR, Stage, Synth,
    WeightSource, bits_for,
)
from .roms import format_rom_origin


class LoweringError(PoshwError, ValueError):
    """A model the hardware cannot implement, or options that do not fit it."""


class CalibMethod(str, Enum):
    MAX = "max"                #: the largest calibration value maps to the format's hi
    PERCENTILE = "percentile"  #: the given percentile of the calibration values does


#: command-line flags of the options whose name differs from the field
_FLAGS = {"calib_size": "--calib"}


@dataclass(frozen=True)
class CompileOptions:
    """How a coefficient set becomes hardware. JSON-serialisable (:meth:`to_dict`)."""

    #: activation width (signed intN between stages, uintN after a ReLU)
    act_bits: int = 8
    #: width of RAM and synthesised weights
    weight_bits: int = 8
    #: width of basis coefficients a_k
    coef_bits: int = 8
    #: MAC lanes of each matvec: min(n_out, lanes) unless ``stage_lanes`` names the stage
    lanes: int = 8
    #: per-stage lane counts by stage name, e.g. (("l1_linear", 16),)
    stage_lanes: tuple[tuple[str, int], ...] = ()
    #: where random bases come from: regenerated on chip (default) or stored in ROM
    basis_source: BasisSource = BasisSource.GENERATOR
    #: per spec-layer overrides of ``basis_source``, e.g. ((3, BasisSource.ROM),)
    layer_basis_source: tuple[tuple[int, BasisSource], ...] = ()
    #: training images used for calibration (a class-balanced slice)
    calib_size: int = 2000
    calibration: CalibMethod = CalibMethod.PERCENTILE
    #: percentile of |stage output| mapped to the format's hi (with ``percentile`` calibration)
    percentile: float = 99.99
    #: seed of the calibration slice
    calib_seed: int = 0

    def __post_init__(self) -> None:
        for name, enum in (("basis_source", BasisSource), ("calibration", CalibMethod)):
            try:
                object.__setattr__(self, name, enum(getattr(self, name)))
            except ValueError:
                raise LoweringError(f"--{name.replace('_', '-')} {getattr(self, name)!r}: choose from "
                                    f"{', '.join(m.value for m in enum)}") from None
        try:
            object.__setattr__(self, "layer_basis_source",
                               tuple((int(k), BasisSource(v)) for k, v in self.layer_basis_source))
        except (ValueError, TypeError):
            raise LoweringError(f"--layer-basis-source takes LAYER_INDEX=generator|rom, got "
                                f"{list(self.layer_basis_source)!r}") from None
        try:
            object.__setattr__(self, "stage_lanes", tuple((str(k), int(v)) for k, v in self.stage_lanes))
        except (ValueError, TypeError):
            raise LoweringError(f"--stage-lanes takes STAGE=INT, got {list(self.stage_lanes)!r}") from None
        for name, lo, hi in (("act_bits", 2, 16), ("weight_bits", 2, 16), ("coef_bits", 2, 16),
                             ("lanes", 1, 256), ("calib_size", 1, 60000)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise LoweringError(f"{_FLAGS.get(name, '--' + name.replace('_', '-'))} must be an integer in "
                                    f"{lo}..{hi}, got {v!r}")
        if isinstance(self.calib_seed, bool) or not isinstance(self.calib_seed, int) or self.calib_seed < 0:
            raise LoweringError(f"--calib-seed must be an integer >= 0, got {self.calib_seed!r}")
        if not (isinstance(self.percentile, (int, float)) and 50.0 <= self.percentile <= 100.0):
            raise LoweringError(f"--percentile must be in 50..100, got {self.percentile!r}")
        for flag, pairs in (("--stage-lanes", self.stage_lanes), ("--layer-basis-source", self.layer_basis_source)):
            keys = [k for k, _ in pairs]
            twice = sorted({k for k in keys if keys.count(k) > 1})
            if twice:
                raise LoweringError(f"{flag}: {', '.join(map(repr, twice))} given more than once")
        for name, lanes in self.stage_lanes:
            if lanes < 1:
                raise LoweringError(f"--stage-lanes: lanes of stage {name!r} must be >= 1, got {lanes}")

    def source_for(self, layer: int) -> BasisSource:
        return dict(self.layer_basis_source).get(layer, self.basis_source)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Enum):
                v = v.value
            elif f.name == "layer_basis_source":
                v = [[k, s.value] for k, s in v]
            elif f.name == "stage_lanes":
                v = [[k, n] for k, n in v]
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CompileOptions":
        known = {f.name for f in fields(cls)}
        extra = set(d) - known
        if extra:
            raise LoweringError(f"compile options: unknown keys {sorted(extra)}")
        kw = dict(d)
        for k in ("layer_basis_source", "stage_lanes"):
            if k in kw:
                kw[k] = tuple(tuple(x) for x in kw[k])
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass
class FloatStage:
    """The float values behind one IR stage.

    * ``rom``: float ``W = W_int * weight_scale`` (``W_int`` from the ROM);
    * ``ram``: ``weight`` float ``[n_out, n_in]``;
    * ``synth``: ``coefs[g]`` float coefficients, ``basis_scales[g]`` the float value of one
      integer step of group g's basis entries (rank-1: of ``u[r] * v[c]``);
    * ``bias``: float bias per output (Hadamard: per filter) or None.
    """

    kind: str                     #: "rom", "ram", "synth", "gather", "argmax"
    layer: int                    #: spec layer index (-1 for the argmax)
    weight: np.ndarray | None = None
    weight_scale: float | None = None
    coefs: tuple[np.ndarray, ...] = ()
    basis_scales: tuple[float, ...] = ()
    bias: np.ndarray | None = None


@dataclass
class Lowered:
    ir: NetworkIR
    stages: list[FloatStage]
    spec: S.ModelSpec
    options: CompileOptions


@dataclass
class _Proto:
    """A stage before formats are chained (ReLU folding needs to look back)."""

    cls: type
    kwargs: dict[str, Any]
    value: FloatStage
    requant: bool = True

    @property
    def name(self) -> str:
        return self.kwargs["name"]


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _group_scale(basis_sum: Any, g: int) -> float:
    # the model's own float value of one integer basis step (family scale x gain)
    return float(basis_sum.group_scale(g))


def _bias_value(cfg_bias: S.Bias, module: Any, where: str) -> np.ndarray | None:
    if cfg_bias.mode is S.BiasMode.NONE:
        return None
    b = module()  # BiasParam: the full vector (basis mode expanded)
    return None if b is None else _np(b)


def lower(coefset: Any, options: CompileOptions = CompileOptions(), *, check: bool = True) -> Lowered:
    """Lower a :class:`~poshw.coefset.CoefficientSet` (or a model with ``.spec``) to IR + float stages."""
    model = coefset.build_model() if hasattr(coefset, "build_model") else coefset
    spec: S.ModelSpec = model.spec
    if tuple(spec.input_shape) not in ((1, 28, 28), (28, 28), (784,)):
        raise LoweringError(f"model {spec.name!r}: input shape {spec.input_shape} is not a 28x28 image")
    layers = list(model.layers)
    protos: list[_Proto] = []
    last_compute: int | None = None  # spec index of the layer that made protos[-1]

    matvecs: list[str] = []  # names lanes_for was asked about

    def lanes_for(name: str, n_out: int) -> int:
        matvecs.append(name)
        lanes = dict(options.stage_lanes).get(name, min(n_out, options.lanes))
        if lanes > n_out:
            raise LoweringError(f"stage {name!r}: {lanes} lanes exceed its {n_out} outputs")
        return lanes

    for li, cfg in enumerate(spec.layers):
        mod = layers[li]
        where = f"layer {li} ({cfg.kind})"
        if isinstance(cfg, (S.Flatten, S.Dropout)):
            continue
        if isinstance(cfg, (S.Conv2d, S.MaxPool2d)):
            raise LoweringError(f"{where}: {type(cfg).__name__} is not supported by the hardware "
                                f"(poshw compiles fully connected, projection and Hadamard layers only; "
                                f"convolutions and pooling are refused)")
        if isinstance(cfg, S.ReLU):
            if not protos or last_compute != li - 1 - _skipped_before(spec, li):
                raise LoweringError(f"{where}: a ReLU must directly follow a linear, product-of-sums, "
                                    f"projection or Hadamard layer")
            p = protos[-1]
            if p.cls is Gather:
                raise LoweringError(f"{where}: a ReLU after a {p.kwargs['index_origin']} gather is not "
                                    f"supported (fold it into the layer before the projection)")
            if p.kwargs.get("relu"):
                raise LoweringError(f"{where}: two ReLUs in a row")
            p.kwargs["relu"] = True
            continue
        start = len(protos)
        if isinstance(cfg, S.Projection):
            protos.append(_lower_projection(cfg, li, spec.seed, lanes_for, mod))
        elif isinstance(cfg, S.ProdSumLinear):
            protos.extend(_lower_prodsum(cfg, li, spec.seed, options, lanes_for, mod, where))
        elif isinstance(cfg, S.Linear):
            name = f"l{li}_linear"
            protos.append(_Proto(MatVec, dict(
                name=name, n_in=cfg.n_in, n_out=cfg.n_out, lanes=lanes_for(name, cfg.n_out),
                weight_source=WeightSource.RAM, weight_fmt=Format(options.weight_bits, True),
                bias=cfg.bias.mode is not S.BiasMode.NONE),
                FloatStage("ram", li, weight=_np(mod.weight), bias=_bias_value(cfg.bias, mod.bias, where))))
        elif isinstance(cfg, S.Hadamard):
            protos.append(_lower_hadamard(cfg, li, spec.seed, options, mod, where))
        else:
            raise LoweringError(f"{where}: no hardware lowering for {type(cfg).__name__}")
        if len(protos) > start:
            last_compute = li

    if not protos:
        raise LoweringError(f"model {spec.name!r}: nothing to compile")
    unknown = [name for name, _ in options.stage_lanes if name not in matvecs]
    if unknown:
        raise LoweringError(f"--stage-lanes: model {spec.name!r} has no matvec stage "
                            f"{', '.join(map(repr, unknown))}; its matvec stages are {', '.join(matvecs)}")
    with_bases = [i for i, c in enumerate(spec.layers) if isinstance(c, (S.ProdSumLinear, S.Hadamard))]
    for layer, _ in options.layer_basis_source:
        if layer not in with_bases:
            what = (f"layer {layer} is a {spec.layers[layer].kind} layer" if 0 <= layer < len(spec.layers)
                    else f"there is no layer {layer}")
            raise LoweringError(f"--layer-basis-source: {what} of model {spec.name!r}; " + (
                f"the layers with random bases are {', '.join(map(str, with_bases))}" if with_bases
                else "it has no layers with random bases"))
    last = protos[-1]
    if last.cls is not MatVec:
        raise LoweringError(f"model {spec.name!r}: the last layer must be linear, product-of-sums or a "
                            f"dense projection (its accumulator gives the logits), got a {last.cls.kind.value}")
    if last.kwargs.get("relu"):
        raise LoweringError(f"model {spec.name!r}: a ReLU after the last layer is not supported "
                            f"(the logits are the last accumulator)")
    last.requant = False
    ir = _chain(spec, protos, options)
    lowered = Lowered(ir, [p.value for p in protos] + [FloatStage("argmax", -1)], spec, options)
    if check:
        _check_against_model(lowered, model)
    return lowered


def _skipped_before(spec: S.ModelSpec, li: int) -> int:
    """Flatten/Dropout layers directly before ``li`` (they are transparent to ReLU folding)."""
    n = 0
    j = li - 1
    while j >= 0 and isinstance(spec.layers[j], (S.Flatten, S.Dropout)):
        n += 1
        j -= 1
    return n


def _lower_projection(cfg: S.Projection, li: int, seed: int, lanes_for, mod) -> _Proto:
    kind = cfg.method
    if kind in (S.ProjectionKind.SUBSAMPLE, S.ProjectionKind.SELECT):
        perm = kind is S.ProjectionKind.SUBSAMPLE
        return _Proto(Gather, dict(
            name=f"l{li}_{kind.value}", n_in=cfg.n_in, n_out=cfg.m, channels=cfg.channels,
            index_origin="permutation" if perm else "prefix", seed=seed if perm else 0,
            path=(li, 0, 0) if perm else ()), FloatStage("gather", li), requant=False)
    n_out, n_in = cfg.channels * cfg.m, cfg.channels * cfg.n_in
    name = f"l{li}_{kind.value}"
    if kind is S.ProjectionKind.DCT:
        h, w = cfg.image
        block = dct2_int(h, w, cfg.m, DEFAULT_FRAC_BITS)
        origin = format_rom_origin("dct", h=h, w=w, m=cfg.m, frac_bits=DEFAULT_FRAC_BITS, channels=cfg.channels)
        scale = 2.0 ** -DEFAULT_FRAC_BITS
    else:
        block = basis_stack(Family.GAUSS, seed, (li, 0, 0), 1, cfg.m * cfg.n_in)
        origin = format_rom_origin("gauss", seed=seed, path=(li, 0, 0), rows=cfg.m, cols=cfg.n_in,
                                   channels=cfg.channels)
        scale = float(type(mod).gauss_scale(cfg))
    wfmt = Format(bits_for(int(block.min()), int(block.max())), True)
    return _Proto(MatVec, dict(
        name=name, n_in=n_in, n_out=n_out, lanes=lanes_for(name, n_out), weight_source=WeightSource.ROM,
        weight_fmt=wfmt, rom_origin=origin, bias=False), FloatStage("rom", li, weight_scale=scale))


def _groups(terms: tuple[S.Terms, ...], seed: int, path: tuple[int, int],
            source: BasisSource) -> tuple[BasisGroup, ...]:
    return tuple(BasisGroup(t.family, t.count, source, seed, (*path, g)) for g, t in enumerate(terms))


def _lower_prodsum(cfg: S.ProdSumLinear, li: int, seed: int, options: CompileOptions, lanes_for, mod,
                   where: str) -> list[_Proto]:
    out = []
    p = len(cfg.factors)
    shapes = cfg.factor_shapes()
    coef_fmt = Format(options.coef_bits, True)
    # y = F_0 F_1 ... F_{p-1} x: F_{p-1} is applied first
    for j in reversed(range(p)):
        rows, cols = shapes[j]
        bs = mod.factors[j]
        synth = Synth(rows, cols, _groups(cfg.factors[j], seed, (li, j), options.source_for(li)), coef_fmt)
        name = f"l{li}_f{j}" if p > 1 else f"l{li}_psum"
        final = j == 0
        bias = final and cfg.bias.mode is not S.BiasMode.NONE
        value = FloatStage("synth", li, coefs=tuple(_np(bs.coefficient(g)) for g in range(len(cfg.factors[j]))),
                           basis_scales=tuple(_group_scale(bs, g) for g in range(len(cfg.factors[j]))),
                           bias=_bias_value(cfg.bias, mod.bias, where) if bias else None)
        out.append(_Proto(MatVec, dict(
            name=name, n_in=cols, n_out=rows, lanes=lanes_for(name, rows), weight_source=WeightSource.SYNTH,
            weight_fmt=Format(options.weight_bits, True), synth=synth, bias=bias), value))
    return out


def _lower_hadamard(cfg: S.Hadamard, li: int, seed: int, options: CompileOptions, mod, where: str) -> _Proto:
    if cfg.bias.mode not in (S.BiasMode.CHANNEL, S.BiasMode.NONE):
        raise LoweringError(f"{where}: Hadamard bias mode {cfg.bias.mode.value!r} is not supported by the "
                            f"hardware (one bias per filter): use 'channel' or 'none'")
    bs = mod.diag_sum
    synth = Synth(cfg.filters, cfg.n, _groups((cfg.terms,), seed, (li, 0), options.source_for(li)),
                  Format(options.coef_bits, True))
    bias = None
    if cfg.bias.mode is S.BiasMode.CHANNEL:
        bias = _np(mod.bias.bias).reshape(-1)
    value = FloatStage("synth", li, coefs=(_np(bs.coefficient(0)),), basis_scales=(_group_scale(bs, 0),),
                       bias=bias)
    return _Proto(Hadamard, dict(
        name=f"l{li}_hadamard", n=cfg.n, filters=cfg.filters, channels_in=cfg.channels_in,
        weight_fmt=Format(options.weight_bits, True), synth=synth,
        bias=cfg.bias.mode is S.BiasMode.CHANNEL), value)


def _chain(spec: S.ModelSpec, protos: list[_Proto], options: CompileOptions) -> NetworkIR:
    """Create the IR stages, passing each output format on as the next input format."""
    fmt = Format(8, False)  # uint8 pixels
    stages: list[Stage] = []
    try:
        for p in protos:
            kw = dict(p.kwargs)
            if p.cls is Gather:
                kw["fmt"] = fmt
                st = Gather(**kw)
            else:
                relu = bool(kw.pop("relu", False))
                kw.update(in_fmt=fmt, relu=relu, requant=p.requant)
                if p.requant:
                    kw["out_fmt"] = Format(options.act_bits, not relu)
                st = p.cls(**kw)
            stages.append(st)
            fmt = st.output_fmt
        stages.append(Argmax("argmax", n=stages[-1].n_outputs, in_fmt=fmt))
        return NetworkIR(spec.name, tuple(stages))
    except PoshwError as e:
        raise LoweringError(f"model {spec.name!r}: {e}") from None


# --- float reference of the lowered network ----------------------------------------------------

def float_weights(lowered: Lowered, index: int, roms: dict[str, np.ndarray] | None = None) -> np.ndarray | None:
    """The float weight matrix (or Hadamard diagonals) of stage ``index``."""
    from .roms import rom_matrix
    st = lowered.ir.stages[index]
    v = lowered.stages[index]
    if v.kind == "rom":
        return rom_matrix(st).astype(np.float64) * v.weight_scale  # type: ignore[arg-type]
    if v.kind == "ram":
        return v.weight
    if v.kind == "synth":
        synth: Synth = st.synth  # type: ignore[attr-defined]
        w = np.zeros((synth.rows, synth.cols))
        for g, grp in enumerate(synth.groups):
            a = v.coefs[g]
            if grp.family is Family.RANK1:
                from ..bases import rank1_vectors
                u, vv = rank1_vectors(grp.seed, tuple(grp.path), grp.count, synth.rows, synth.cols)
                w += ((u.T.astype(np.float64) * a) @ vv.astype(np.float64)) * v.basis_scales[g]
            else:
                step = max(1, (1 << 21) // synth.entries)  # bases per chunk: bounded float64 temporaries
                for k0 in range(0, grp.count, step):
                    k1 = min(k0 + step, grp.count)
                    stack = _stack_rows(grp, synth.entries, k0, k1)
                    w += (a[k0:k1] @ stack.astype(np.float64)).reshape(synth.rows, synth.cols) * v.basis_scales[g]
        return w
    return None


def _stack_rows(grp: BasisGroup, entries: int, k0: int, k1: int) -> np.ndarray:
    """Bases ``k0..k1-1`` of a group (each basis is its own stream, so a slice is cheap)."""
    from ..bases import map_values, raw_streams, stream_seed
    seeds = np.array([stream_seed(grp.seed, *grp.path, k) for k in range(k0, k1)], dtype=np.uint32)
    return map_values(raw_streams(seeds, entries), grp.family)


def float_forward(lowered: Lowered, images: np.ndarray) -> np.ndarray:
    """Float64 logits of the lowered network on uint8 images (the model, rebuilt from the IR)."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1) / 255.0
    for i, st in enumerate(lowered.ir.stages):
        v = lowered.stages[i]
        if isinstance(st, Argmax):
            return x
        if isinstance(st, Gather):
            from .roms import gather_index
            idx = gather_index(st)
            x = x.reshape(len(x), st.channels, st.n_in)[:, :, idx].reshape(len(x), -1)
            continue
        w = float_weights(lowered, i)
        if isinstance(st, MatVec):
            x = x @ w.T
            if v.bias is not None:
                x = x + v.bias
        else:
            xc = x.reshape(len(x), st.channels_in, st.n)
            x = xc * w[None]
            if v.bias is not None:
                x = x + v.bias[None, :, None]
            x = x.reshape(len(x), -1)
        if getattr(st, "relu", False):
            x = np.maximum(x, 0.0)
    return x


def _check_against_model(lowered: Lowered, model: Any) -> None:
    """Refuse a lowering whose float network disagrees with the torch model (a misparse)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 28, 28)).astype(np.uint8)
    ref = model.logits(images).astype(np.float64)
    got = float_forward(lowered, images)
    scale = max(1e-6, float(np.abs(ref).max()))
    err = float(np.abs(got - ref).max()) / scale
    if not err < 1e-3:
        raise LoweringError(f"model {lowered.spec.name!r}: the lowered network disagrees with the torch "
                            f"model (relative logit error {err:.2e}); the lowering does not understand "
                            f"this model")
