"""ecg_ray: burn MotionText animated captions into videos, in parallel segments on Ray.

The public surface is what this module exports; everything else is internal.
"""

from .errors import ERROR_CODES, RenderError
from .models import ProbeResult, RenderOptions, RenderResult
from .pipeline import Progress, Renderer, render
from .plugins import installed_plugins
from .probe import probe
from .scenario import normalize

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
