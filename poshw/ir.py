"""Hardware IR: a typed, versioned, JSON-serialisable description of a compiled network.

The IR holds the *structure* of a design: stages, shapes, number formats, lane
counts and where every fixed basis comes from (a ROM image or the on-chip
generator with its seeds). Everything a new task changes (coefficients, biases,
requantisation multipliers and shifts, synthesis shifts, directly trained
weights) is a *parameter*: it lives in the parameter image, laid out by
:meth:`NetworkIR.param_layout`, and is loaded into a running design through the
coefficient stream. Two coefficient sets for the same structure share one IR,
one design id and one generated Verilog.

The schedule of every stage (cycle counts) is defined here once, in
:meth:`Stage.cycles` and :meth:`Stage.synth_cycles`, and documented in
docs/MICROARCHITECTURE.md; the numba simulator and the RTL both implement it.
The arithmetic of every stage is defined in docs/FIXED_POINT.md and implemented
by ``poshw.fixedpoint.golden``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar, Union

from . import PoshwError
from .bases import Family

IR_VERSION = 1
#: first word of every parameter image / coefficient stream ("POSH")
PARAM_MAGIC = 0x504F5348

# --- schedule constants (the cycle model; see docs/MICROARCHITECTURE.md) ---------------
#: cycles a stage spends before its first memory read (state entry, counters reset)
STAGE_SETUP = 1
#: matvec: per block, after the n_in MAC-issue cycles: one drain cycle plus one epilogue flush
MATVEC_BLOCK_EXTRA = 2
#: hadamard: pipeline depth from the read of element 0 to the write of the last element
HADAMARD_TAIL = 3
#: gather: index-ROM read then activation read before the last write
GATHER_TAIL = 2
#: argmax: one cycle after the last comparison before the result is presented
ARGMAX_TAIL = 1
#: synthesis: cycles to (re)seed the generator / select the next basis
SYNTH_BASIS_SETUP = 1
#: synthesis: the final requantisation pass's pipeline tail
SYNTH_FINAL_TAIL = 2


class IRError(PoshwError, ValueError):
    """A malformed or inconsistent hardware IR."""


class StageKind(str, Enum):
    MATVEC = "matvec"
    HADAMARD = "hadamard"
    GATHER = "gather"
    ARGMAX = "argmax"


class WeightSource(str, Enum):
    ROM = "rom"      #: fixed integer matrix in a ROM image (DCT rows, random projection)
    RAM = "ram"      #: every weight trainable: loaded directly through the coefficient stream
    SYNTH = "synth"  #: weight RAM filled by weight synthesis sum_k a_k M_k


class BasisSource(str, Enum):
    ROM = "rom"              #: basis entries stored in a ROM image
    GENERATOR = "generator"  #: regenerated on chip by xorshift32 from a per-basis seed ROM


def _need(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise IRError(f"{where}: {msg}")


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Format:
    """A two's-complement (``signed``) or unsigned integer of ``bits`` bits."""

    bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        _need(_int(self.bits) and 1 <= self.bits <= 64, "Format", f"bits must be 1..64, got {self.bits!r}")
        _need(isinstance(self.signed, bool), "Format", f"signed must be a bool, got {self.signed!r}")

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def max_abs(self) -> int:
        return max(-self.lo, self.hi)

    def __str__(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @classmethod
    def parse(cls, text: str) -> "Format":
        if not isinstance(text, str):
            raise IRError(f"bad number format {text!r}: use intN or uintN, e.g. int8")
        t = text.strip().lower()
        for prefix, signed in (("uint", False), ("int", True)):
            if t.startswith(prefix) and t[len(prefix):].isdigit():
                return cls(int(t[len(prefix):]), signed)
        raise IRError(f"bad number format {text!r}: use intN or uintN, e.g. int8")


UINT8 = Format(8, False)
INT8 = Format(8, True)
INT32 = Format(32, True)
#: requantisation multiplier and shift, synthesis shift: fixed widths of the parameter words
REQUANT_MULT = Format(16, False)
REQUANT_SHIFT = Format(6, False)
SYNTH_SHIFT = Format(5, False)
#: widest accumulator a requantising stage may have: acc * mult must fit in int64
MAX_REQUANT_ACC_BITS = 47


def bits_for(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    return max(int(lo).bit_length(), int(hi).bit_length()) + 1 if (lo or hi) else 1


@dataclass(frozen=True)
class BasisGroup:
    """``count`` bases of one family; basis ``k`` is stream ``(seed, *path, k)`` (docs/BASES.md)."""

    family: Family
    count: int
    source: BasisSource
    seed: int
    path: tuple[int, ...]

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "family", Family(self.family))
            object.__setattr__(self, "source", BasisSource(self.source))
        except ValueError as e:
            raise IRError(f"BasisGroup: {e}") from None
        object.__setattr__(self, "path", tuple(self.path))
        _need(_int(self.count) and self.count >= 1, "BasisGroup", f"count must be >= 1, got {self.count!r}")
        _need(_int(self.seed) and self.seed >= 0, "BasisGroup", f"seed must be >= 0, got {self.seed!r}")
        _need(all(_int(p) and p >= 0 for p in self.path), "BasisGroup", f"bad stream path {self.path!r}")

    @property
    def entry_range(self) -> tuple[int, int]:
        return self.family.value_range


@dataclass(frozen=True)
class Synth:
    """Weight synthesis ``W = round_shift(sum_k a_k M_k, shift)`` of a ``rows x cols`` matrix."""

    rows: int
    cols: int
    groups: tuple[BasisGroup, ...]
    coef_fmt: Format = INT8
    #: width of the synthesis accumulator memory (exact sum, checked against the worst case)
    acc_bits: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        _need(_int(self.rows) and self.rows >= 1 and _int(self.cols) and self.cols >= 1, "Synth",
              f"bad shape {self.rows}x{self.cols}")
        _need(len(self.groups) >= 1, "Synth", "needs at least one basis group")
        _need(self.entries >= 2, "Synth", "the synthesis pipeline needs at least 2 entries")
        need = self.required_acc_bits()
        if self.acc_bits == 0:
            object.__setattr__(self, "acc_bits", need)
        _need(need <= self.acc_bits <= 64, "Synth",
              f"accumulator of {self.acc_bits} bits cannot hold the worst case ({need} bits)")

    @property
    def entries(self) -> int:
        return self.rows * self.cols

    @property
    def count(self) -> int:
        return sum(g.count for g in self.groups)

    def required_acc_bits(self) -> int:
        worst = sum(g.count * max(abs(g.entry_range[0]), abs(g.entry_range[1])) for g in self.groups)
        worst *= self.coef_fmt.max_abs
        return bits_for(-worst, worst)

    def needs_multiplier(self) -> bool:
        return any(g.family in (Family.GAUSS, Family.RANK1) for g in self.groups)

    def synth_cycles(self) -> int:
        per_basis = 0
        for g in self.groups:
            extra = self.rows + self.cols if g.family is Family.RANK1 else 0
            per_basis += g.count * (SYNTH_BASIS_SETUP + extra + self.entries)
        return STAGE_SETUP + per_basis + self.entries + SYNTH_FINAL_TAIL


@dataclass(frozen=True)
class Stage:
    """Base of the stage kinds. ``name`` is for humans and file names."""

    kind: ClassVar[StageKind]
    name: str

    # -- shape/format chain --
    @property
    def n_inputs(self) -> int:
        raise NotImplementedError

    @property
    def n_outputs(self) -> int:
        raise NotImplementedError

    @property
    def input_fmt(self) -> Format:
        raise NotImplementedError

    @property
    def output_fmt(self) -> Format:
        raise NotImplementedError

    def cycles(self) -> int:
        """Cycles of one inference in this stage (docs/MICROARCHITECTURE.md)."""
        raise NotImplementedError

    def synth_cycles(self) -> int:
        """Cycles of weight synthesis after a coefficient load (0 if nothing to synthesise)."""
        return 0

    def macs(self) -> int:
        return 0

    def param_fields(self) -> list[tuple[str, int, Format]]:
        """``(field, count, format)`` of this stage's loadable parameters, in stream order."""
        return []

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value}
        for f in fields(self):
            out[f.name] = _to_json(getattr(self, f.name))
        return out


def _to_json(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, Format):
        return str(v)
    if isinstance(v, (BasisGroup, Synth)):
        return {f.name: _to_json(getattr(v, f.name)) for f in fields(v)}
    if isinstance(v, tuple):
        return [_to_json(x) for x in v]
    return v


def _requant_fields(requant: bool) -> list[tuple[str, int, Format]]:
    return [("requant_mult", 1, REQUANT_MULT), ("requant_shift", 1, REQUANT_SHIFT)] if requant else []


def _synth_fields(synth: Synth) -> list[tuple[str, int, Format]]:
    out = [(f"coef.{g}", grp.count, synth.coef_fmt) for g, grp in enumerate(synth.groups)]
    return out + [("synth_shift", 1, SYNTH_SHIFT)]


def _check_epilogue(where: str, requant: bool, relu: bool, out_fmt: Format, acc_bits: int,
                    need: int) -> None:
    _need(_int(acc_bits) and need <= acc_bits <= 64, where,
          f"accumulator of {acc_bits} bits cannot hold the worst case ({need} bits)")
    if requant:
        _need(acc_bits <= MAX_REQUANT_ACC_BITS, where,
              f"a requantising stage's accumulator is limited to {MAX_REQUANT_ACC_BITS} bits, got {acc_bits}")
        _need(not relu or not out_fmt.signed, where, "a ReLU stage's output format must be unsigned")
        _need(relu or out_fmt.signed, where, "a stage without ReLU needs a signed output format")
    else:
        _need(not relu, where, "ReLU needs requantisation")
        _need(out_fmt == Format(acc_bits, True), where,
              f"without requantisation the output is the accumulator (int{acc_bits}), got {out_fmt}")


@dataclass(frozen=True)
class MatVec(Stage):
    """``y = epilogue(W x + b)`` with W ``n_out x n_in`` on ``lanes`` MAC lanes.

    Epilogue: add ``bias`` (int32, accumulator scale), then either requantise
    (multiplier, shift, round half up, saturate to ``out_fmt``; ReLU = lower bound 0)
    or, with ``requant=False``, pass the accumulator on (logits for argmax).
    """

    kind: ClassVar[StageKind] = StageKind.MATVEC
    n_in: int = 0
    n_out: int = 0
    lanes: int = 1
    in_fmt: Format = INT8
    weight_source: WeightSource = WeightSource.RAM
    weight_fmt: Format = INT8
    synth: Synth | None = None
    #: how the ROM matrix is made, in the grammar of docs/ARTIFACTS.md
    #: (e.g. "dct:h=28,w=28,m=169,frac_bits=10"); the IR alone determines every ROM
    rom_origin: str = ""
    bias: bool = True
    requant: bool = True
    relu: bool = False
    out_fmt: Format = INT8
    acc_bits: int = 0

    def __post_init__(self) -> None:
        w = f"stage {self.name!r} (matvec)"
        object.__setattr__(self, "weight_source", WeightSource(self.weight_source))
        for n in ("n_in", "n_out", "lanes"):
            _need(_int(getattr(self, n)) and getattr(self, n) >= 1, w, f"{n} must be >= 1")
        _need(self.lanes <= self.n_out, w, f"lanes={self.lanes} exceeds n_out={self.n_out}")
        _need((self.synth is not None) == (self.weight_source is WeightSource.SYNTH), w,
              "a synth description is needed exactly when weight_source is 'synth'")
        if self.synth is not None:
            _need((self.synth.rows, self.synth.cols) == (self.n_out, self.n_in), w,
                  f"synthesised {self.synth.rows}x{self.synth.cols} does not match W {self.n_out}x{self.n_in}")
        _need(self.weight_fmt.signed, w, "weights must be signed")
        _need(isinstance(self.rom_origin, str), w, f"rom_origin must be a string, got {self.rom_origin!r}")
        need = self.required_acc_bits()
        if self.acc_bits == 0:
            object.__setattr__(self, "acc_bits", need)
            if not self.requant:
                object.__setattr__(self, "out_fmt", Format(need, True))
        _check_epilogue(w, self.requant, self.relu, self.out_fmt, self.acc_bits, need)

    def required_acc_bits(self) -> int:
        worst = self.n_in * self.weight_fmt.max_abs * self.in_fmt.max_abs
        if self.bias:
            worst += INT32.max_abs
        return bits_for(-worst, worst)

    @property
    def n_inputs(self) -> int:
        return self.n_in

    @property
    def n_outputs(self) -> int:
        return self.n_out

    @property
    def input_fmt(self) -> Format:
        return self.in_fmt

    @property
    def output_fmt(self) -> Format:
        return self.out_fmt

    @property
    def blocks(self) -> int:
        return -(-self.n_out // self.lanes)

    def cycles(self) -> int:
        return STAGE_SETUP + self.blocks * (self.n_in + self.lanes + MATVEC_BLOCK_EXTRA)

    def synth_cycles(self) -> int:
        return self.synth.synth_cycles() if self.synth else 0

    def macs(self) -> int:
        return self.n_in * self.n_out

    def param_fields(self) -> list[tuple[str, int, Format]]:
        out: list[tuple[str, int, Format]] = []
        if self.weight_source is WeightSource.RAM:
            out.append(("weights", self.n_out * self.n_in, self.weight_fmt))
        elif self.synth is not None:
            out += _synth_fields(self.synth)
        if self.bias:
            out.append(("bias", self.n_out, INT32))
        return out + _requant_fields(self.requant)


@dataclass(frozen=True)
class Hadamard(Stage):
    """``y[f, i] = epilogue(d[f, i] * x[c(f), i] + bias[f])``, ``d`` synthesised from diagonal tuples.

    ``channels_in`` is 1 (every filter multiplies the one input channel) or
    ``filters`` (depthwise: filter f multiplies channel f). Outputs are laid out
    ``f * n + i``. The bias is one int32 per filter.
    """

    kind: ClassVar[StageKind] = StageKind.HADAMARD
    n: int = 0
    filters: int = 1
    channels_in: int = 1
    in_fmt: Format = INT8
    weight_fmt: Format = INT8
    synth: Synth | None = None
    bias: bool = True
    requant: bool = True
    relu: bool = False
    out_fmt: Format = INT8
    acc_bits: int = 0

    def __post_init__(self) -> None:
        w = f"stage {self.name!r} (hadamard)"
        _need(_int(self.n) and self.n >= 1 and _int(self.filters) and self.filters >= 1, w, "bad shape")
        _need(self.channels_in in (1, self.filters), w,
              f"channels_in must be 1 or filters ({self.filters}), got {self.channels_in}")
        _need(self.synth is not None and (self.synth.rows, self.synth.cols) == (self.filters, self.n), w,
              f"needs a synth of {self.filters}x{self.n} diagonals")
        _need(all(g.family is not Family.RANK1 for g in self.synth.groups), w, "rank1 diagonals are not supported")
        need = self.required_acc_bits()
        if self.acc_bits == 0:
            object.__setattr__(self, "acc_bits", need)
            if not self.requant:
                object.__setattr__(self, "out_fmt", Format(need, True))
        _check_epilogue(w, self.requant, self.relu, self.out_fmt, self.acc_bits, need)

    def required_acc_bits(self) -> int:
        worst = self.weight_fmt.max_abs * self.in_fmt.max_abs + (INT32.max_abs if self.bias else 0)
        return bits_for(-worst, worst)

    @property
    def n_inputs(self) -> int:
        return self.channels_in * self.n

    @property
    def n_outputs(self) -> int:
        return self.filters * self.n

    @property
    def input_fmt(self) -> Format:
        return self.in_fmt

    @property
    def output_fmt(self) -> Format:
        return self.out_fmt

    def cycles(self) -> int:
        return STAGE_SETUP + self.filters * self.n + HADAMARD_TAIL

    def synth_cycles(self) -> int:
        return self.synth.synth_cycles()

    def macs(self) -> int:
        return self.filters * self.n

    def param_fields(self) -> list[tuple[str, int, Format]]:
        out = _synth_fields(self.synth)
        if self.bias:
            out.append(("bias", self.filters, INT32))
        return out + _requant_fields(self.requant)


@dataclass(frozen=True)
class Gather(Stage):
    """``y[c * n_out + i] = x[c * n_in + index[i]]`` for each of ``channels``: a fixed index ROM."""

    kind: ClassVar[StageKind] = StageKind.GATHER
    n_in: int = 0
    n_out: int = 0
    channels: int = 1
    fmt: Format = INT8
    #: how the index ROM is made: "prefix" (first n_out entries) or "permutation" (seeded)
    index_origin: str = "prefix"
    seed: int = 0
    path: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        w = f"stage {self.name!r} (gather)"
        object.__setattr__(self, "path", tuple(self.path))
        _need(_int(self.n_in) and _int(self.n_out) and 1 <= self.n_out <= self.n_in, w,
              f"need 1 <= n_out <= n_in, got {self.n_out}, {self.n_in}")
        _need(_int(self.channels) and self.channels >= 1, w, "channels must be >= 1")
        _need(self.index_origin in ("prefix", "permutation"), w,
              f"index_origin must be 'prefix' or 'permutation', got {self.index_origin!r}")

    @property
    def n_inputs(self) -> int:
        return self.channels * self.n_in

    @property
    def n_outputs(self) -> int:
        return self.channels * self.n_out

    @property
    def input_fmt(self) -> Format:
        return self.fmt

    @property
    def output_fmt(self) -> Format:
        return self.fmt

    def cycles(self) -> int:
        return STAGE_SETUP + self.n_outputs + GATHER_TAIL


@dataclass(frozen=True)
class Argmax(Stage):
    """Index of the largest of ``n`` values; the lowest index wins ties."""

    kind: ClassVar[StageKind] = StageKind.ARGMAX
    n: int = 0
    in_fmt: Format = INT32

    def __post_init__(self) -> None:
        _need(_int(self.n) and self.n >= 1, f"stage {self.name!r} (argmax)", "n must be >= 1")

    @property
    def n_inputs(self) -> int:
        return self.n

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def input_fmt(self) -> Format:
        return self.in_fmt

    @property
    def output_fmt(self) -> Format:
        return Format(max(1, (self.n - 1).bit_length()), False)

    def cycles(self) -> int:
        return STAGE_SETUP + self.n + ARGMAX_TAIL


AnyStage = Union[MatVec, Hadamard, Gather, Argmax]
STAGE_TYPES: dict[str, type[Stage]] = {c.kind.value: c for c in (MatVec, Hadamard, Gather, Argmax)}


@dataclass(frozen=True)
class ParamField:
    """One field of the parameter image: ``count`` words at ``offset`` (after the 2-word header)."""

    stage: int
    name: str
    offset: int
    count: int
    fmt: Format


@dataclass(frozen=True)
class Estimate:
    """Analytic resource and time figures of one stage (no external tool)."""

    stage: str
    rom_bits: int
    coef_ram_bits: int
    weight_ram_bits: int
    act_bits: int
    multipliers: int
    cycles: int
    synth_cycles: int
    macs: int


@dataclass(frozen=True)
class NetworkIR:
    """A compiled network: a chain of stages from the input stream to the argmax."""

    name: str
    stages: tuple[Stage, ...]
    input_len: int = 784
    input_fmt: Format = UINT8
    #: (height, width) of the input image, streamed row-major one pixel per beat
    input_shape: tuple[int, int] = (28, 28)
    version: int = IR_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        _need(self.version == IR_VERSION, "IR", f"version {self.version} is not supported ({IR_VERSION})")
        _need(isinstance(self.name, str), "IR", f"name must be a string, got {self.name!r}")
        _need(len(self.input_shape) == 2 and all(_int(v) and v >= 1 for v in self.input_shape), "IR",
              f"input_shape must be [height, width], got {list(self.input_shape)}")
        _need(len(self.stages) >= 1, "IR", "no stages")
        _need(self.input_shape[0] * self.input_shape[1] == self.input_len, "IR",
              f"input shape {self.input_shape} does not have {self.input_len} pixels")
        n, fmt = self.input_len, self.input_fmt
        for i, st in enumerate(self.stages):
            _need(isinstance(st, Stage), "IR", f"stage {i} is not a stage: {st!r}")
            _need(st.n_inputs == n, f"stage {i} {st.name!r}",
                  f"takes {st.n_inputs} inputs but the previous stage gives {n}")
            _need(st.input_fmt == fmt, f"stage {i} {st.name!r}",
                  f"takes {st.input_fmt} inputs but the previous stage gives {fmt}")
            _need(isinstance(st, Argmax) == (i == len(self.stages) - 1), "IR",
                  "the last stage, and only the last, must be an argmax")
            n, fmt = st.n_outputs, st.output_fmt
        names = [s.name for s in self.stages]
        _need(len(set(names)) == len(names), "IR", f"stage names must be unique: {names}")

    # -- parameters --
    def param_layout(self) -> list[ParamField]:
        out, offset = [], 0
        for i, st in enumerate(self.stages):
            for name, count, fmt in st.param_fields():
                out.append(ParamField(i, name, offset, count, fmt))
                offset += count
        return out

    def param_words(self) -> int:
        """Words of the parameter image payload (the stream adds a 2-word header)."""
        return sum(f.count for f in self.param_layout())

    # -- identity --
    def structure_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def design_id(self) -> int:
        """32-bit id of the structure: a parameter image for another design is refused."""
        return int(hashlib.sha256(self.structure_json().encode()).hexdigest()[:8], 16)

    # -- schedule and estimates --
    def latency_cycles(self) -> int:
        """Cycles from the first input beat to the result (input beats back to back)."""
        return self.input_len + sum(st.cycles() for st in self.stages)

    def synth_cycles(self) -> int:
        """Cycles from the last coefficient beat to ready (weight synthesis of every stage)."""
        return STAGE_SETUP + sum(st.synth_cycles() for st in self.stages)

    def macs(self) -> int:
        return sum(st.macs() for st in self.stages)

    def lane_bound_cycles(self) -> int:
        """Lower bound: input beats plus MACs / lanes of every stage (no overheads)."""
        total = self.input_len
        for st in self.stages:
            if isinstance(st, MatVec):
                total += -(-st.macs() // st.lanes)
            elif isinstance(st, (Hadamard, Gather)):
                total += st.n_outputs
            else:
                total += st.n_inputs
        return total

    def estimates(self) -> list[Estimate]:
        out = []
        for st in self.stages:
            rom = coef = wram = 0
            mults = 0
            for _, count, fmt in st.param_fields():
                coef += count * fmt.bits
            synth = getattr(st, "synth", None)
            if synth is not None:
                wram += synth.entries * (st.weight_fmt.bits + synth.acc_bits)
                for g in synth.groups:
                    if g.source is BasisSource.GENERATOR:
                        rom += g.count * 32
                    elif g.family is Family.RANK1:
                        rom += g.count * (synth.rows + synth.cols) * Family.GAUSS.entry_bits
                    else:
                        rom += g.count * synth.entries * g.family.entry_bits
                mults += 1 if synth.needs_multiplier() else 0
            if isinstance(st, MatVec):
                if st.weight_source is WeightSource.ROM:
                    rom += st.macs() * st.weight_fmt.bits
                mults += st.lanes + (1 if st.requant else 0)
            elif isinstance(st, Hadamard):
                mults += 1 + (1 if st.requant else 0)
            elif isinstance(st, Gather):
                rom += st.n_out * max(1, (st.n_in - 1).bit_length())
            act = st.n_outputs * st.output_fmt.bits
            out.append(Estimate(st.name, rom, coef, wram, act, mults, st.cycles(), st.synth_cycles(),
                                st.macs()))
        return out

    # -- JSON --
    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "name": self.name, "input_len": self.input_len,
                "input_fmt": str(self.input_fmt), "input_shape": list(self.input_shape),
                "stages": [st.to_dict() for st in self.stages]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetworkIR":
        _need(isinstance(d, dict), "IR", "must be a JSON object")
        _need(d.get("version") == IR_VERSION, "IR",
              f"version {d.get('version')!r} is not supported (this poshw reads {IR_VERSION})")
        _need(isinstance(d.get("stages"), list), "IR", "'stages' must be a list")
        stages = tuple(_stage_from_dict(s, i) for i, s in enumerate(d["stages"]))
        try:
            return cls(name=d["name"], stages=stages, input_len=d["input_len"],
                       input_fmt=Format.parse(d["input_fmt"]), input_shape=tuple(d["input_shape"]))
        except (KeyError, TypeError) as e:
            raise IRError(f"IR: missing or bad field {e}") from None

    @classmethod
    def from_json(cls, text: str) -> "NetworkIR":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise IRError(f"IR is not valid JSON: {e}") from None


def _stage_from_dict(d: Any, index: int) -> Stage:
    where = f"IR stage {index}"
    _need(isinstance(d, dict) and d.get("kind") in STAGE_TYPES, where,
          f"needs a 'kind' in {sorted(STAGE_TYPES)}, got {d.get('kind') if isinstance(d, dict) else d!r}")
    cls = STAGE_TYPES[d["kind"]]
    names = {f.name: f for f in fields(cls)}
    _need(isinstance(d.get("name"), str) and d["name"] != "", where, f"needs a 'name' string, got {d.get('name')!r}")
    kwargs: dict[str, Any] = {}
    for k, v in d.items():
        if k == "kind":
            continue
        _need(k in names, where, f"unknown field {k!r} for {d['kind']}")
        _need(not isinstance(names[k].default, bool) or isinstance(v, bool), where,
              f"{k} must be true or false, got {v!r}")
        if k == "synth" and v is not None:
            v = _synth_from_dict(v, where)
        elif k.endswith("fmt"):
            v = Format.parse(v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise IRError(f"{where}: {e}") from None


def _synth_from_dict(d: Any, where: str) -> Synth:
    _need(isinstance(d, dict), where, "synth must be an object")
    try:
        groups = tuple(BasisGroup(**g) for g in d["groups"])
        return Synth(rows=d["rows"], cols=d["cols"], groups=groups,
                     coef_fmt=Format.parse(d["coef_fmt"]), acc_bits=d["acc_bits"])
    except (KeyError, TypeError) as e:
        raise IRError(f"{where}: bad synth: {e}") from None
