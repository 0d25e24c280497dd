"""The `tis` job pack: the nightly database jobs of the old TIS-SYNC service.

`PACK` is what the daemon loads; `TisSettings` is the `[packs.tis]` config table. The CLI
commands (`syncd db init`, `syncd demo-data`) live in `syncd_tis.commands`.
"""

from __future__ import annotations

from syncd_tis._pack import PACK as PACK
from syncd_tis._settings import TisSettings as TisSettings

__all__ = ["PACK", "TisSettings"]
