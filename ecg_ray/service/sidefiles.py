"""Files made beside a job's video on request (``options.poster``, ``options.webvtt``,
``options.alpha_video``), stored next to it and named in the result's ``files``.

Made after the join, from what the platform gets: the poster is a frame of the joined video
(media/poster.py), the WebVTT the scenario's text and times (scenario/webvtt.py). The captions
alone with transparency are made by the render itself (its second pass, media/alpha.py) beside
the video. A file asked for that cannot be made fails the job, as a video that cannot be made
would.
"""

from __future__ import annotations

from collections.abc import Callable

from ecg_ray.errors import RenderError
from ecg_ray.media.poster import extract_poster, poster_frame
from ecg_ray.rendering.models import RenderResult
from ecg_ray.scenario.normalize import normalize
from ecg_ray.scenario.webvtt import to_webvtt
from ecg_ray.service.models import OutputFile, RenderRequest
from ecg_ray.service.storage import SIDECARS, Sidecar, Store

# options.poster.format -> the file kind stored (its name and media type)
_POSTER_KINDS = {"jpeg": SIDECARS["poster.jpg"], "png": SIDECARS["poster.png"]}


def side_file_problem(req: RenderRequest) -> str:
    """Why the side files ``req`` asks for cannot be made ("" when they can): a 422 at submission."""
    if req.options.poster is not None and req.options.dynamic_range == "hdr":
        return ("options.poster: a poster of an HDR video is not made (its PQ or HLG pixels would show "
                "washed out as a JPEG or PNG); ask for it with dynamic_range sdr")
    if req.options.alpha_video is not None and req.options.dynamic_range == "hdr":
        return ("options.alpha_video: the captions alone are made for SDR outputs only (their pictures are "
                "8-bit SDR); ask for them with dynamic_range sdr")
    return ""


def make_side_files(req: RenderRequest, result: RenderResult, video: str, base: str) -> list[tuple[Sidecar, str]]:
    """The side files ``req`` asks for, written to ``base``.<ext> (the job's temp name, removed
    with its other temp files): [(kind, path)]."""
    made: list[tuple[Sidecar, str]] = []
    poster = req.options.poster
    if poster is not None:
        kind = _POSTER_KINDS[poster.format]
        path = f"{base}.{kind.ext}"
        extract_poster(video, poster_frame(poster.at, result.fps, result.frames), result.fps, path, poster.format)
        made.append((kind, path))
    if req.options.webvtt:
        kind = SIDECARS["vtt"]
        path = f"{base}.{kind.ext}"
        # The same scenario the render drew (the frame's shape only moves the captions, not their text or times).
        text = to_webvtt(normalize(req.scenario, result.width / max(1, result.height)))
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise RenderError("storage_failed", f"the WebVTT file could not be written: {exc}") from exc
        made.append((kind, path))
    alpha = req.options.alpha_video
    if alpha is not None:
        if result.alpha_output is None:
            raise RenderError("internal_error", "options.alpha_video: the render made no captions-only file")
        made.append((SIDECARS[f"captions.{alpha.format}"], result.alpha_output))
    return made


def store_side_files(store: Store, ref: str, made: list[tuple[Sidecar, str]], cancelled: Callable[[], bool],
                     sign: Callable[[str, Sidecar], str]) -> dict[str, OutputFile]:
    """Store each made file beside the video; the result's ``files`` (local links signed by ``sign``)."""
    files: dict[str, OutputFile] = {}
    for kind, path in made:
        stored = store.put(path, ref, kind, cancelled=cancelled)
        link = stored.download_url if stored.location.startswith("s3://") else sign(stored.download_url, kind)
        files[kind.kind] = OutputFile(download_url=link, location=stored.location, file_size=stored.file_size,
                                      content_type=kind.mime)
    return files
