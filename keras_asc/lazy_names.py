"""A package's public names, imported on first use (PEP 562 module ``__getattr__``): ``import
keras_asc`` (or tflite_export, firmware_harness) stays light, so that ``asc --help`` starts fast,
and ``keras_asc.train`` imports keras_asc.api (and so the stage modules) when it is first read."""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_names(package: str, names: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` whose public ``names`` map each name to the
    module that defines it (``{"train": "keras_asc.api"}``); a name read once is kept in the package."""
    return _lazy(package, names.get, lambda: list(names))


def lazy_module(package: str, module: str) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` whose public names are ``module``'s
    ``__all__`` (``package.__all__`` included), ``module`` imported when one is first read."""
    def public() -> list[str]:
        return list(importlib.import_module(module).__all__)

    return _lazy(package, lambda name: module if name in public() else None, public)


def _lazy(package: str, module_of: Callable[[str], str | None],
          public: Callable[[], list[str]]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    def __getattr__(name: str) -> object:
        if name == "__all__":
            return sorted(public())
        module = None if name.startswith("__") else module_of(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(public()))

    return __getattr__, __dir__
