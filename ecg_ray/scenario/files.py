"""Reading a scenario given as a file path, JSON text or an object (command line, Python)."""

from __future__ import annotations

import os
from typing import Any

from ecg_ray.errors import RenderError
from ecg_ray.scenario.model import load_scenario_text


def scenario_dir(scenario: Any) -> str | None:
    """The directory of a scenario given as a file path (its relative define assets live there)."""
    if isinstance(scenario, (str, os.PathLike)) and not isinstance(scenario, bytes):
        try:
            if os.path.isfile(str(scenario)):
                return os.path.dirname(os.path.abspath(str(scenario)))
        except (ValueError, OSError):  # JSON text with NUL, a name too long: not a path
            return None
    return None


def read_scenario(scenario: Any) -> Any:
    """A scenario given as a dict, JSON text, or a path to a JSON file."""
    if isinstance(scenario, (dict, list)):
        return scenario
    if isinstance(scenario, (str, os.PathLike)) and os.path.isfile(str(scenario)):
        with open(scenario, "rb") as fh:
            return load_scenario_text(fh.read(), os.path.basename(str(scenario)))
    if isinstance(scenario, (str, bytes)):
        return load_scenario_text(scenario)
    raise RenderError("invalid_scenario", "scenario must be a JSON object, JSON text or a path to a JSON file")
