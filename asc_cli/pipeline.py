"""The end-to-end pipeline behind ``asc demo`` and ``asc grid``, by its usual name: one configuration
through every stage (:mod:`asc_cli.stages`), the demo (:mod:`asc_cli.demo`) and the grid
(:mod:`asc_cli.grid`). ``asc grid`` calls :func:`run_grid` through this module."""
from __future__ import annotations

from asc_cli.demo import DEMO_PROFILE_TARGETS, DEMO_SUMMARY_MCUS, demo_summary, run_demo  # noqa: F401
from asc_cli.grid import (GRID_ATTEMPTS, GRID_RESULT, GRID_TABLES, PLACEMENT_COLUMNS, CellBusy,  # noqa: F401
                          attempts_file, cell_line, cell_lock, finished_cell_row, grid_configs, run_grid,
                          run_grid_cell, this_machine, write_grid_tables)
from asc_cli.stages import (DEMO_FIRMWARE_TARGETS, PipelineConfig, PipelineResult,  # noqa: F401
                            available_firmware_targets, run_pipeline)
