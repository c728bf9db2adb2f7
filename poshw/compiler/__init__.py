"""Hardware compiler front half: lowering, ROM contents, parameter images, build artifacts.

* ``roms``: ROM contents as a function of the IR; lane packing of weight memories.
* ``params``: the parameter image (coefficient stream) encode / decode.
* ``artifacts``: build directories (docs/ARTIFACTS.md): write and verify.
* ``lower``: a trained coefficient set to a hardware IR plus float stage values.
* ``export``: coefficient set -> quantised build directory in one call.
"""

from .artifacts import Build, BuildError, Golden, load_build, write_build
from .params import ParamError, decode_params, encode_params
from .roms import lane_pack, lane_unpack, rom_contents

__all__ = [
    "Build", "BuildError", "Golden",
    "ParamError", "decode_params", "encode_params",
    "lane_pack", "lane_unpack", "load_build", "rom_contents", "write_build",
]
