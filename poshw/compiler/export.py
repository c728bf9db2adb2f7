"""Coefficient set -> calibrated integer parameters -> build directory, with an accuracy report.

:func:`quantize_coefset` lowers and quantises a trained run and (optionally)
compares the float model with the fixed-point golden model on the test set;
:func:`export_build` also writes the build (docs/ARTIFACTS.md) with the report
as ``quant.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import PoshwError, __version__
from ..data import DATASETS, load_split, subset
from ..fixedpoint.golden import GoldenModel
from ..fixedpoint.quantize import Quantized, quantize
from .artifacts import Build, BuildError, write_build
from .lower import CompileOptions, lower
from .roms import rom_contents

QUANT_REPORT = "quant.json"


@dataclass
class QuantOutcome:
    quantized: Quantized
    report: dict[str, Any]


def run_dataset(coefset: Any, dataset: str | None) -> str:
    """The dataset to use: the one given, else the one the run was trained on, else mnist.

    A dataset that differs from the run's is refused: accuracy on it is meaningless.
    """
    info = getattr(coefset, "info", None) or {}
    trained = str(info.get("dataset", "")).strip().lower() or None
    ds = (dataset or trained or "mnist").strip().lower()
    if ds not in DATASETS:
        raise PoshwError(f"unknown dataset {ds!r}; choose from {', '.join(DATASETS)}")
    if trained and trained in DATASETS and trained != ds:
        raise PoshwError(f"the run was trained on {trained}, not {ds}: pass --dataset {trained}")
    return ds


def calibration_images(dataset: str, n: int, seed: int, data_dir: str | None = None) -> np.ndarray:
    """A class-balanced slice of ``n`` training images (never test images)."""
    images, labels = load_split(dataset, "train", data_dir)
    return np.ascontiguousarray(subset(images, labels, min(n, len(labels)), seed)[0])


def quantize_coefset(coefset: Any, options: CompileOptions = CompileOptions(), *, dataset: str | None = None,
                     data_dir: str | None = None, n_test: int | None = None,
                     evaluate: bool = True) -> QuantOutcome:
    """Lower, calibrate and quantise; with ``evaluate``, compare float and fixed point on the test set."""
    ds = run_dataset(coefset, dataset)
    t0 = time.perf_counter()
    lowered = lower(coefset, options)
    calib = calibration_images(ds, options.calib_size, options.calib_seed, data_dir)
    q = quantize(lowered, calib)
    report: dict[str, Any] = {
        "poshw": __version__, "model": lowered.spec.name, "dataset": ds, "design_id": f"0x{q.ir.design_id():08x}",
        "options": options.to_dict(), "calibration": {"split": "train", "n": int(len(calib)),
                                                      "method": options.calibration.value,
                                                      "percentile": options.percentile},
        "stages": [s.to_dict() for s in q.stages],
    }
    if evaluate:
        images, labels = load_split(ds, "test", data_dir)
        if n_test is not None:
            images, labels = images[:n_test], labels[:n_test]
        model = coefset.build_model() if hasattr(coefset, "build_model") else coefset
        float_pred = model.predict(images)
        golden = GoldenModel.from_parts(q.ir, rom_contents(q.ir), q.params)
        res = golden.run(images)
        lab = np.asarray(labels, dtype=np.int64)
        report["test"] = {
            "n": int(len(lab)),
            "float_accuracy": float(np.mean(float_pred == lab)),
            "fixed_accuracy": float(np.mean(res.classes == lab)),
            "agreement": float(np.mean(res.classes == float_pred)),
            "saturation": {k: int(v) for k, v in res.saturation.items()},
            "outputs": {st.name: int(st.n_outputs) * int(len(lab)) for st in q.ir.stages},
            "synth_saturation": {k: int(v) for k, v in res.synth_saturation.items()},
        }
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return QuantOutcome(q, report)


def export_build(coefset: Any, out_dir: str | Path, options: CompileOptions = CompileOptions(), *,
                 dataset: str | None = None, data_dir: str | None = None, golden_n: int = 64,
                 n_test: int | None = None, evaluate: bool = True) -> tuple[Build, dict[str, Any]]:
    """Quantise a run and write its build directory; golden vectors are the first ``golden_n`` test images."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():  # before the work, not after
        raise BuildError(f"{out_dir}: exists and is not a directory")
    outcome = quantize_coefset(coefset, options, dataset=dataset, data_dir=data_dir, n_test=n_test,
                               evaluate=evaluate)
    ds = outcome.report["dataset"]
    golden_inputs = None
    if golden_n > 0:
        images, _ = load_split(ds, "test", data_dir)
        golden_inputs = np.ascontiguousarray(images[:golden_n])
    build = write_build(out_dir, outcome.quantized.ir, outcome.quantized.params, golden_inputs,
                        extra={QUANT_REPORT: outcome.report})
    return build, outcome.report
