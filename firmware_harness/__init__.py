"""firmware_harness: validate an int8 model against TFLM and LiteRT, build and run it as TFLM C++
firmware (host and Cortex-M under QEMU), profile its latency, bundle it.

The public API (keyword-only functions taking and returning typed records; docs/api.md)::

    import firmware_harness
    report = firmware_harness.validate(source=Path("work/run/export"), data_dir=data)
    print(firmware_harness.format_report(report))

The public names are :mod:`firmware_harness.api`'s ``__all__``, imported on first use
(:mod:`keras_asc.lazy_names`): importing the package is light.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from keras_asc.lazy_names import lazy_module

__getattr__, __dir__ = lazy_module(__name__, "firmware_harness.api")  # its __all__ is the public names

if TYPE_CHECKING:  # the same names for type checkers and readers
    from firmware_harness.api import *  # noqa: F401,F403
