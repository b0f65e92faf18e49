"""ecg_ray: burn MotionText animated captions into videos, in parallel segments on Ray.

The public surface is what this module exports; everything else is internal.
"""

from typing import TYPE_CHECKING

from .errors import ERROR_CODES, RenderError
from .models import (
    JobOptions,
    JobOutput,
    JobStatus,
    ProbeResult,
    RenderOptions,
    RenderRequest,
    RenderResult,
    SubmitAnswer,
)
from .plugins import installed_plugins
from .probe import probe
from .scenario import normalize

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client, submit
    from .pipeline import Progress, Renderer, render

_LAZY = {"Progress": "pipeline", "Renderer": "pipeline", "render": "pipeline", "Client": "client", "submit": "client"}


def __getattr__(name: str):
    # Ray and httpx are imported only by what needs them (the CLI's `plugins`, the codec benchmarks).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ERROR_CODES",
    "JobOptions",
    "JobOutput",
    "JobStatus",
    "RenderRequest",
    "SubmitAnswer",
    "submit",
    "ProbeResult",
    "Progress",
    "RenderError",
    "RenderOptions",
    "RenderResult",
    "Renderer",
    "installed_plugins",
    "normalize",
    "probe",
    "render",
    "__version__",
]
