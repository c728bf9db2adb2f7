"""The shipped designs: models/*.npz -> export -> compile -> rtl/<design>/.

    python -m bench.ship            (what `make rtl` runs)

Each design directory gets the generated Verilog, the ROM images it reads and one
``<task>.params.hex`` coefficient stream per task; the first task's build is the one
compiled (every task of a design shares its design id). tests/test_shipped.py runs
:func:`generate` into a temporary directory and compares it with the committed rtl/.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from .common import ROOT

MODELS = ROOT / "models"
RTL = ROOT / "rtl"

#: design directory -> {task: coefficient set in models/}
DESIGNS = {
    "linear-dct-m16": {"mnist": "mnist-linear-dct-m16.npz"},
    "mlp-reduced-762": {"mnist": "mnist-mlp-reduced-762.npz", "fashion": "fashion-mlp-reduced-762.npz"},
}


def generate(design: str, dest: Path, work: Path, data_dir: str | None = None) -> None:
    """Write ``design``'s Verilog, ROM images and per-task coefficient streams into ``dest``."""
    from poshw import coefset
    from poshw.compiler.export import export_build
    from poshw.compiler.lower import CompileOptions
    from poshw.hw.flow import compile_build

    for i, (task, file) in enumerate(DESIGNS[design].items()):
        build = work / f"{design}-{task}"
        export_build(coefset.load(MODELS / file), build, CompileOptions(), data_dir=data_dir, evaluate=False)
        if i == 0:
            compile_build(build, dest)
        shutil.copyfile(build / "params.hex", dest / f"{task}.params.hex")


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        for design in DESIGNS:
            dest = RTL / design
            shutil.rmtree(dest, ignore_errors=True)
            generate(design, dest, Path(work))
            print(f"wrote {dest.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
