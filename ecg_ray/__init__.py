"""ecg_ray: burn MotionText animated captions into videos, in parallel segments on Ray.

The public surface is what this module exports; everything else is internal.
"""

from typing import TYPE_CHECKING

from .errors import ERROR_CODES, RenderError
from .models import ProbeResult, RenderOptions, RenderResult
from .plugins import installed_plugins
from .probe import probe
from .scenario import normalize

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Progress, Renderer, render

_LAZY = {"Progress", "Renderer", "render"}


def __getattr__(name: str):
    # Ray is imported only by what needs it (the CLI's `plugins`, benchmarks of the codec path).
    if name in _LAZY:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)

__version__ = "0.1.0"

__all__ = [
    "ERROR_CODES",
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
