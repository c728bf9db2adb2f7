"""ONNX export of a trained float model (for interchange with other runtimes and tools).

The graph is written directly with ``onnx.helper`` (the numba autograd functions of
``poshw.nn`` cannot be traced by ``torch.onnx``). Every product of sums is
*materialised*: the ONNX model holds the float matrices ``W = prod_j sum_k a_jk M_jk``
(multiplied out, or as the chain of factors when that is smaller), the materialised
biases, the fixed projection matrices and gather indices, all as float32 / int64
initializers. The fixed bases are thus **baked in**: the file no longer knows which
weights were trainable coefficients and which were generated bases, and it is about as
large as a dense model of the same shapes. The compact form stays the coefficient set
(``coefs.npz``); the model's ``doc_string`` and ``metadata_props`` say where it came from
(poshw version, model name, spec JSON, trainable-parameter count, the coefficient set's
sha256, see :func:`onnx_metadata`).

Input ``input``: float32 ``[N, *spec.input_shape]`` (``[N, 1, 28, 28]`` for the zoo),
holding ``pixel / 255`` (uint8 pixels divided by 255, as :func:`poshw.data.to_float`).
Output ``logits``: float32 ``[N, num_classes]`` (``[N, 10]``), the float model's logits;
the class is the argmax (lowest index on ties). Dropout is omitted (inference).

Layer lowering: Flatten -> Flatten; Linear / ProdSumLinear -> Gemm (``transB=1``, the
weight stored ``[n_out, n_in]`` as in torch; for p > 1 a chain of Gemms, one per factor,
when that stores fewer floats than the product); Conv2d / ProdSumConv2d -> Conv with pads;
MaxPool2d -> MaxPool (stride = kernel); ReLU -> Relu; Projection -> Reshape to
``[N, C, n_in]`` then MatMul by the fixed ``[n_in, m]`` matrix (dct, gauss), Gather
(subsample) or Slice (select) on the last axis; Hadamard -> Reshape to ``[N, C_in, n]``,
Mul by the ``[filters, n]`` diagonals (broadcast when ``C_in = 1``), Add the bias.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import PoshwError, __version__
from . import spec as S

#: default opset: widely supported by runtimes, and every operator used here exists in it
DEFAULT_OPSET = 17
#: oldest opset accepted (Gemm, Conv, Reshape with a shape input, Slice with tensor inputs)
MIN_OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: relative tolerance of the ONNX-vs-torch check, scaled by max(1, max |torch logit|)
CHECK_RTOL = 1e-4
#: metadata_props keys written by :func:`build_onnx`
META_PREFIX = "poshw."
_PROTOBUF_LIMIT = 2**31 - 1


def _onnx():
    try:
        import onnx
        import onnx.helper
    except ImportError as e:  # pragma: no cover - onnx is a dependency
        raise PoshwError(f"the onnx package is needed for ONNX export ({e})") from None
    return onnx


def max_opset() -> int:
    return int(_onnx().defs.onnx_opset_version())


# --- inputs -----------------------------------------------------------------------------

def _resolve(source: Any):
    """``(model, coefset_or_None)`` of a CoefficientSet, a PoshwNet, or a run dir / coefs.npz path."""
    from .coefset import CoefficientSet, load
    from .nn.model import PoshwNet

    if isinstance(source, (str, os.PathLike)):
        source = load(source)
    if isinstance(source, CoefficientSet):
        return source.build_model(), source
    if isinstance(source, PoshwNet):
        return source, None
    raise PoshwError(f"ONNX export needs a coefficient set, a poshw model or a run directory, "
                     f"got {type(source).__name__}")


# --- graph building ----------------------------------------------------------------------

class _Graph:
    """Nodes, initializers and typed intermediate values; tracks the current tensor and its
    per-sample shape."""

    def __init__(self, onnx_mod, input_shape: tuple[int, ...]):
        self.onnx = onnx_mod
        self.h = onnx_mod.helper
        self.nodes: list = []
        self.inits: list = []
        self.value_info: list = []
        self.names: set[str] = {INPUT_NAME}
        self.cur = INPUT_NAME
        self.shape = tuple(input_shape)
        self.stored = 0  # float entries baked in
        self.layer = -1
        self.where = "input"

    def _unique(self, base: str) -> str:
        name, i = base, 1
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def const(self, suffix: str, array: np.ndarray) -> str:
        array = np.ascontiguousarray(array)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
            if not np.all(np.isfinite(array)):
                raise PoshwError(f"{self.where}: materialised {suffix} holds NaN or infinite values")
            self.stored += array.size
        else:
            array = array.astype(np.int64)
        name = self._unique(f"layer{self.layer}.{suffix}")
        self.inits.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...], doc: str = "", **attrs) -> str:
        out = self._unique(f"layer{self.layer}.{op.lower()}")
        n = self.h.make_node(op, inputs, [out], name=f"layer{self.layer}/{op}", doc_string=doc, **attrs)
        self.nodes.append(n)
        self.value_info.append(self.h.make_tensor_value_info(
            out, self.onnx.TensorProto.FLOAT, ["N", *shape]))
        self.cur, self.shape = out, tuple(int(d) for d in shape)
        return out

    def ensure(self, shape: tuple[int, ...]) -> None:
        """Make the current tensor ``[N, *shape]`` (same element count, row-major)."""
        shape = tuple(int(d) for d in shape)
        if self.shape == shape:
            return
        if int(np.prod(self.shape)) != int(np.prod(shape)):  # pragma: no cover - spec validated
            raise PoshwError(f"{self.where}: cannot reshape {self.shape} to {shape}")
        if len(shape) == 1:
            self.node("Flatten", [self.cur], shape, axis=1)
        else:
            target = self.const("shape", np.array([0, *shape], dtype=np.int64))
            self.node("Reshape", [self.cur, target], shape)


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _bias(mod) -> np.ndarray | None:
    b = mod()
    return None if b is None else _np(b)


def _linear(g: _Graph, cfg, mod) -> None:
    g.ensure((cfg.n_in,))
    w = _np(mod.weight)
    b = _bias(mod.bias)
    inputs = [g.cur, g.const("weight", w)] + ([g.const("bias", b)] if b is not None else [])
    g.node("Gemm", inputs, (cfg.n_out,), doc=f"{g.where}: dense weight", transB=1)


def _prodsum_linear(g: _Graph, cfg: S.ProdSumLinear, mod) -> None:
    g.ensure((cfg.n_in,))
    mats = [_np(f()) for f in mod.factors]
    b = _bias(mod.bias)
    p = len(mats)
    chain = p > 1 and sum(m.size for m in mats) < cfg.n_out * cfg.n_in
    if chain:
        # y = F_1 (F_2 (... (F_p x))) + b: one Gemm per factor, last factor first
        for j in reversed(range(p)):
            inputs = [g.cur, g.const(f"factor{j}", mats[j])]
            if j == 0 and b is not None:
                inputs.append(g.const("bias", b))
            g.node("Gemm", inputs, (mats[j].shape[0],), transB=1,
                   doc=f"{g.where}: factor {j} of {p} (sum of fixed bases, materialised)")
        return
    w = mats[0].astype(np.float64)
    for m in mats[1:]:
        w = w @ m.astype(np.float64)
    inputs = [g.cur, g.const("weight", w.astype(np.float32))] + ([g.const("bias", b)] if b is not None else [])
    g.node("Gemm", inputs, (cfg.n_out,), transB=1,
           doc=f"{g.where}: product of {p} sum(s) of fixed bases, multiplied out")


def _conv(g: _Graph, cfg: S.Conv2d, mod, out_shape) -> None:
    if len(g.shape) != 3:  # pragma: no cover - the spec only lets (C, H, W) reach a conv
        raise PoshwError(f"{g.where}: expects a (C, H, W) input, got {g.shape}")
    w = _np(mod.kernel())
    b = _bias(mod.bias)
    inputs = [g.cur, g.const("weight", w)] + ([g.const("bias", b)] if b is not None else [])
    what = "sum of fixed filters, materialised" if isinstance(cfg, S.ProdSumConv2d) else "dense kernel"
    g.node("Conv", inputs, out_shape, doc=f"{g.where}: {what}", kernel_shape=[cfg.kernel] * 2,
           pads=[cfg.padding] * 4, strides=[1, 1], dilations=[1, 1], group=1)


def _maxpool(g: _Graph, cfg: S.MaxPool2d, out_shape) -> None:
    if len(g.shape) != 3:  # pragma: no cover
        raise PoshwError(f"{g.where}: expects a (C, H, W) input, got {g.shape}")
    g.node("MaxPool", [g.cur], out_shape, kernel_shape=[cfg.kernel] * 2, strides=[cfg.kernel] * 2)


def _projection(g: _Graph, cfg: S.Projection, mod) -> None:
    c = cfg.channels
    g.ensure((c, cfg.n_in))
    kind = cfg.method
    if kind in (S.ProjectionKind.DCT, S.ProjectionKind.GAUSS):
        m = _np(mod.matrix)  # (m, n_in)
        g.node("MatMul", [g.cur, g.const(f"{kind.value}_matrix", m.T)], (c, cfg.m),
               doc=f"{g.where}: fixed {kind.value} projection per channel")
    elif kind is S.ProjectionKind.SUBSAMPLE:
        idx = mod.index.detach().cpu().numpy().astype(np.int64)
        g.node("Gather", [g.cur, g.const("index", idx)], (c, cfg.m), axis=2,
               doc=f"{g.where}: fixed random subsample of each channel")
    elif kind is S.ProjectionKind.SELECT:
        starts = g.const("starts", np.array([0], np.int64))
        ends = g.const("ends", np.array([cfg.m], np.int64))
        axes = g.const("axes", np.array([2], np.int64))
        g.node("Slice", [g.cur, starts, ends, axes], (c, cfg.m),
               doc=f"{g.where}: the first {cfg.m} entries of each channel")
    else:  # pragma: no cover - ProjectionKind is closed
        raise PoshwError(f"{g.where}: projection method {kind.value!r} is not supported by the ONNX exporter")


def _hadamard(g: _Graph, cfg: S.Hadamard, mod) -> None:
    g.ensure((cfg.channels_in, cfg.n))
    d = _np(mod.diag_sum())  # (filters, n)
    g.node("Mul", [g.cur, g.const("diag", d)], (cfg.filters, cfg.n),
           doc=f"{g.where}: {cfg.filters} diagonal filters"
               + (" (depthwise)" if cfg.depthwise else " (broadcast over one input channel)"))
    if mod.bias.mode is S.BiasMode.NONE:
        return
    if mod.bias.mode is S.BiasMode.CHANNEL:
        b = _np(mod.bias.bias).reshape(cfg.filters, 1)
    else:
        b = _bias(mod.bias).reshape(cfg.filters, cfg.n)
    g.node("Add", [g.cur, g.const("bias", b)], (cfg.filters, cfg.n), doc=f"{g.where}: bias")


def _layer(g: _Graph, cfg: S.LayerSpec, mod, out_shape: tuple[int, ...]) -> None:
    t = type(cfg)
    handlers: dict[type, Callable[[], None]] = {
        S.Flatten: lambda: g.ensure((int(np.prod(g.shape)),)),
        S.Linear: lambda: _linear(g, cfg, mod),
        S.ProdSumLinear: lambda: _prodsum_linear(g, cfg, mod),
        S.Conv2d: lambda: _conv(g, cfg, mod, out_shape),
        S.ProdSumConv2d: lambda: _conv(g, cfg, mod, out_shape),
        S.MaxPool2d: lambda: _maxpool(g, cfg, out_shape),
        S.ReLU: lambda: g.node("Relu", [g.cur], g.shape),
        S.Dropout: lambda: None,  # inference: identity
        S.Projection: lambda: _projection(g, cfg, mod),
        S.Hadamard: lambda: _hadamard(g, cfg, mod),
    }
    if t not in handlers:
        raise PoshwError(f"{g.where}: layer kind {getattr(t, 'kind', '') or t.__name__!r} is not "
                         f"supported by the ONNX exporter")
    handlers[t]()


# --- public API -------------------------------------------------------------------------

def build_onnx(coefset_or_model, *, opset: int = DEFAULT_OPSET, check: bool = True):
    """The ONNX ``ModelProto`` of a trained float model (nothing written).

    ``coefset_or_model``: a :class:`~poshw.coefset.CoefficientSet`, a
    :class:`~poshw.nn.PoshwNet`, or a run directory / ``coefs.npz`` path. Weights are
    materialised (fixed bases baked in, see the module docstring). With ``check`` the graph
    passes ``onnx.checker.check_model(full_check=True)`` and strict shape inference, and the
    inferred output is ``[N, num_classes]``.

    Raises:
        PoshwError: an unsupported layer (named), a bad opset, a model too large for one
            protobuf, or a coefficient set that does not load.
    """
    import torch

    onnx = _onnx()
    check_opset(opset)
    model, cs = _resolve(coefset_or_model)
    spec: S.ModelSpec = model.spec
    if cs is None:
        from .coefset import CoefficientSet
        cs = CoefficientSet.from_model(model)
    sha = cs.checksum()
    trainable = spec.trainable_parameters()

    g = _Graph(onnx, spec.input_shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, (cfg, mod) in enumerate(zip(spec.layers, model.layers)):
                g.layer, g.where = i, f"layer {i} ({type(cfg).__name__})"
                _layer(g, cfg, mod, spec.shapes[i + 1])
    finally:
        model.train(was_training)
    g.layer, g.where = len(spec.layers), "output"
    g.ensure((spec.num_classes,))
    if g.cur == INPUT_NAME:  # a graph with no computation at all
        g.node("Identity", [g.cur], g.shape)
    # the last value becomes the graph output
    last = g.cur
    g.nodes[-1].output[0] = OUTPUT_NAME
    g.value_info = [v for v in g.value_info if v.name != last]

    h = onnx.helper
    float_t = onnx.TensorProto.FLOAT
    x = h.make_tensor_value_info(INPUT_NAME, float_t, ["N", *spec.input_shape])
    x.doc_string = (f"float32 images [N, {', '.join(map(str, spec.input_shape))}] holding pixel / 255 "
                    f"(uint8 pixels divided by 255.0)")
    y = h.make_tensor_value_info(OUTPUT_NAME, float_t, ["N", spec.num_classes])
    y.doc_string = f"float32 logits [N, {spec.num_classes}]; the class is the argmax (lowest index on ties)"
    graph = h.make_graph(g.nodes, spec.name, [x], [y], initializer=g.inits, value_info=g.value_info,
                         doc_string=f"poshw model {spec.name!r}, weights materialised")
    opsets = [h.make_opsetid("", opset)]
    proto = h.make_model(graph, opset_imports=opsets, producer_name="poshw", producer_version=__version__)
    proto.ir_version = h.find_min_ir_version_for(opsets)
    proto.doc_string = (
        f"poshw {__version__} float model {spec.name!r} ({trainable:,} trainable parameters, "
        f"coefficient set sha256 {sha}). Every product of sums is materialised: the fixed bases "
        f"(generated from seed {spec.seed}) are baked into the {g.stored:,} stored float weights, "
        f"so this file cannot retrain or regenerate them; the compact form is the coefficient set. "
        f"Input: {x.doc_string}. Output: {y.doc_string}. Dropout omitted (inference).")
    meta = {
        "version": __version__,
        "model": spec.name,
        "spec": json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":")),
        "trainable_parameters": str(trainable),
        "coefset_sha256": sha,
        "stored_floats": str(g.stored),
        "bases": "materialised (baked into the weights)",
        "input": x.doc_string,
    }
    ds = cs.info.get("dataset") if isinstance(cs.info, dict) else None
    if ds:
        meta["dataset"] = str(ds)
    h.set_model_props(proto, {META_PREFIX + k: v for k, v in meta.items()})

    if proto.ByteSize() > _PROTOBUF_LIMIT:
        raise PoshwError(f"model {spec.name!r}: the materialised weights ({g.stored:,} floats) exceed "
                         f"the 2 GiB limit of a single ONNX protobuf")
    if check:
        check_onnx(proto, spec.num_classes)
    return proto


def check_onnx(proto, num_classes: int | None = None) -> None:
    """``onnx.checker`` (full check) and strict shape inference; the output must be ``[N, classes]``."""
    onnx = _onnx()
    try:
        onnx.checker.check_model(proto, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise PoshwError(f"the generated ONNX graph fails the checker (a poshw bug): {e}") from None
    out = inferred.graph.output[0].type.tensor_type.shape.dim
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in out]
    if num_classes is not None and dims[1:] != [num_classes]:
        raise PoshwError(f"the generated ONNX graph's output has shape {dims}, "
                         f"expected [N, {num_classes}] (a poshw bug)")


def check_opset(opset) -> None:
    """Refuse an opset this exporter cannot target."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= max_opset():
        raise PoshwError(f"opset must be an integer in {MIN_OPSET}..{max_opset()} "
                         f"(onnx {_onnx().__version__}), got {opset!r}")


def save_onnx(proto, path: str | os.PathLike) -> Path:
    """Write ``proto`` atomically (the old file, if any, survives a failed write)."""
    from .fileio import write_bytes_atomic

    path = Path(path)
    check_writable(path)
    try:
        write_bytes_atomic(path, proto.SerializeToString())
    except OSError as e:
        raise PoshwError(f"{path}: cannot write the ONNX model ({e.strerror or e})") from None
    return path


def check_writable(path: str | os.PathLike) -> None:
    """Refuse early (before any slow work) an output path that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise PoshwError(f"{path}: is a directory (give a file name, e.g. {path / 'model.onnx'})")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise PoshwError(f"{path}: cannot write the ONNX model ({parent} is not a directory)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PoshwError(f"{path}: cannot write the ONNX model (no write permission in {parent})")


def export_onnx(coefset_or_model, path: str | os.PathLike | None, *, opset: int = DEFAULT_OPSET):
    """Build (see :func:`build_onnx`), check and write (atomically) the ONNX model; returns the
    ``onnx.ModelProto``. ``path=None`` writes nothing.

    Weights are the materialised float matrices: the fixed bases are baked in, so the file is
    about as large as a dense model of the same shapes. Input ``input``: float32
    ``[N, 1, 28, 28]`` holding pixel / 255; output ``logits``: float32 ``[N, 10]``.
    """
    if path is not None:
        check_writable(path)
    proto = build_onnx(coefset_or_model, opset=opset)
    if path is not None:
        save_onnx(proto, path)
    return proto


def onnx_metadata(model_or_path) -> dict[str, str]:
    """The ``poshw.*`` metadata of an exported model (a ModelProto or a file), prefix removed."""
    from google.protobuf.message import DecodeError

    onnx = _onnx()
    if not isinstance(model_or_path, onnx.ModelProto):
        try:
            model_or_path = onnx.load(str(model_or_path), load_external_data=False)
        except (OSError, ValueError, DecodeError) as e:
            raise PoshwError(f"{model_or_path}: not a readable ONNX model ({e})") from None
    return {p.key[len(META_PREFIX):]: p.value for p in model_or_path.metadata_props
            if p.key.startswith(META_PREFIX)}


def reference_logits(proto, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Run the model on float32 inputs ``x`` with ``onnx.reference.ReferenceEvaluator`` (slow,
    pure Python/numpy; no onnxruntime needed)."""
    from onnx.reference import ReferenceEvaluator

    ev = ReferenceEvaluator(proto)
    x = np.asarray(x, dtype=np.float32)
    outs = [ev.run(None, {INPUT_NAME: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    if not outs:
        return np.zeros((0, proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value), np.float32)
    return np.concatenate(outs)


def compare_with_torch(proto, model, images: np.ndarray, rtol: float = CHECK_RTOL) -> dict[str, Any]:
    """ONNX reference logits vs the torch float model on ``images`` (uint8 ``[N, 28, 28]`` pixels,
    or float inputs already scaled). ``ok`` when ``max |diff| <= rtol * max(1, max |torch logit|)``."""
    import torch

    from .data import to_float

    images = np.asarray(images)
    x = to_float(images) if images.dtype == np.uint8 else images.astype(np.float32)
    x = x.reshape(len(x), *model.spec.input_shape)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).reshape(len(x), -1).numpy()
    model.train(was_training)
    got = reference_logits(proto, x)
    diff = float(np.max(np.abs(got - ref))) if len(x) else 0.0
    scale = max(1.0, float(np.max(np.abs(ref))) if len(x) else 1.0)
    return {"n": len(x), "max_abs_diff": diff, "max_abs_logit": scale, "relative": diff / scale,
            "tolerance": rtol, "ok": bool(diff <= rtol * scale),
            "argmax_agree": int(np.sum(np.argmax(got, 1) == np.argmax(ref, 1))) if len(x) else 0}


def summary(proto) -> dict[str, Any]:
    """Opset, node count, operator histogram and metadata of an exported model."""
    ops: dict[str, int] = {}
    for n in proto.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "ir_version": proto.ir_version, "nodes": len(proto.graph.node),
            "ops": dict(sorted(ops.items())), "initializers": len(proto.graph.initializer),
            "bytes": proto.ByteSize(), "metadata": onnx_metadata(proto)}


def spec_of(proto) -> S.ModelSpec:
    """The :class:`~poshw.spec.ModelSpec` recorded in an exported model's metadata."""
    meta = onnx_metadata(proto)
    if "spec" not in meta:
        raise PoshwError("the ONNX model holds no poshw spec (not exported by poshw)")
    return S.ModelSpec.from_dict(json.loads(meta["spec"]))
