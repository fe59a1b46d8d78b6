"""Cases of issue 28."""
from __future__ import annotations

from .registry import CaseList

CASES = CaseList("issue28")
case = CASES.case
