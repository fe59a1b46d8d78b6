"""asc_cli: the ``asc`` command (:mod:`asc_cli.main`) and the end-to-end pipeline behind ``asc demo``
and ``asc grid``. Its public names (docs/api.md), imported on first use::

    import asc_cli
    result = asc_cli.run_demo(Path("work/demo"), size="tiny", cfg=asc_cli.PipelineConfig())
    found = asc_cli.fit(data_dir=Path("work/demo/data/demo"), out_dir=Path("work/fit"), mcu="stm32f407",
                        base=asc_cli.PipelineConfig(), clip_seconds=10.0)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from keras_asc.lazy_names import lazy_names

_NAMES = {"run_demo": "asc_cli.demo", "run_grid": "asc_cli.grid", "grid_configs": "asc_cli.grid",
          "PipelineConfig": "asc_cli.stages", "PipelineFeatures": "asc_cli.stages", "PipelineResult": "asc_cli.stages", "run_pipeline": "asc_cli.stages",
          "fit": "asc_cli.fitting.search", "FitResult": "asc_cli.fitting.search", "SearchSpace": "asc_cli.fitting.space"}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)

if TYPE_CHECKING:  # the same names for type checkers and readers
    from asc_cli.demo import run_demo  # noqa: F401
    from asc_cli.fitting.search import FitResult, fit  # noqa: F401
    from asc_cli.fitting.space import SearchSpace  # noqa: F401
    from asc_cli.grid import grid_configs, run_grid  # noqa: F401
    from asc_cli.stages import PipelineConfig, PipelineFeatures, PipelineResult, run_pipeline  # noqa: F401
