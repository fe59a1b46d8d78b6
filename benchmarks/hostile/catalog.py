"""Every case, in the order they run and are numbered: the stages' modules in pipeline order,
profile's (from its --help), then the cases of issue 28 (group "issue28")."""
from __future__ import annotations

import re

from . import (cases_dataset, cases_demo_grid, cases_evaluate_export, cases_features, cases_firmware,
               cases_issue28_paths, cases_issue28_models, cases_issue28_options, cases_train, cases_validate)
from .cases_profile import profile_cases
from .registry import Spec


def all_cases(asc: list[str], env: dict) -> list[Spec]:
    return [*cases_dataset.CASES, *cases_features.CASES, *cases_train.CASES, *cases_evaluate_export.CASES,
            *cases_validate.CASES, *cases_firmware.CASES, *cases_demo_grid.CASES, *profile_cases(asc, env),
            *cases_issue28_paths.CASES, *cases_issue28_models.CASES, *cases_issue28_options.CASES]


def select(numbered: list[tuple[int, Spec]], *, only: str | None, stages: str | None) -> list[tuple[int, Spec]]:
    """The cases ``--only`` (a regular expression on 'NNN command: title') and ``--stage`` (a
    comma-separated list of commands or groups, e.g. ``bundle,issue28``) select; both when both."""
    wanted = {s.strip() for s in stages.split(",") if s.strip()} if stages else None
    return [(n, s) for n, s in numbered
            if (only is None or re.search(only, f"{n:03d} {s.cmd}: {s.title}"))
            and (wanted is None or s.cmd in wanted or s.group in wanted)]
