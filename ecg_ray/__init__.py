"""ecg_ray: burn MotionText animated captions into videos, in parallel segments on Ray.

The public surface is what this module exports; everything else is internal.
"""

from typing import TYPE_CHECKING

from ecg_ray.errors import ERROR_CODES, RenderError
from ecg_ray.media.models import ProbeResult
from ecg_ray.media.probe import probe
from ecg_ray.rendering.models import RenderOptions, RenderResult
from ecg_ray.scenario.normalize import normalize
from ecg_ray.scenario.plugins import installed_plugins
from ecg_ray.service.models import JobOptions, JobOutput, JobStatus, RenderRequest, SubmitAnswer
from ecg_ray.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from ecg_ray.rendering.progress import Progress
    from ecg_ray.rendering.renderer import Renderer, render
    from ecg_ray.service.client import Client, submit

_LAZY = {"Progress": "rendering.progress", "Renderer": "rendering.renderer", "render": "rendering.renderer",
         "Client": "service.client", "submit": "service.client"}


def __getattr__(name: str) -> object:
    # Ray and httpx are imported only by what needs them (the CLI's `plugins`, the codec benchmarks).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


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
