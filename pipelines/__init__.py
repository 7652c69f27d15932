"""KFP pipelines, one module per experiment; each module defines a pipeline function named like itself."""
from __future__ import annotations

import importlib
import pkgutil

NOT_PIPELINES = {"compile", "run_local", "deployment", "experiment", "parameters", "draw"}


def defaults(pipeline) -> dict:
    """{name: default} of the parameters that have one."""
    return {name: spec.default for name, spec in (pipeline.component_spec.inputs or {}).items()
            if name not in required(pipeline)}


def required(pipeline) -> list[str]:
    """Parameters without a default, that every run must give (tag_audio's model and audio)."""
    return sorted(name for name, spec in (pipeline.component_spec.inputs or {}).items()
                  if spec.default is None and not spec.optional)


def discover() -> dict:
    """{name: pipeline function} for every experiment module in this package."""
    found = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in NOT_PIPELINES or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found[module_info.name] = getattr(module, module_info.name)
    return found
