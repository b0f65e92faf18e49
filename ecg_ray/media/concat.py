"""Join a job's segments with the concat demuxer (stream copy) and mux the source audio once."""

from __future__ import annotations

import os

from ecg_ray.files import discard
from ecg_ray.media import ffmpeg
from ecg_ray.media.containers import CONTAINERS, Container
from ecg_ray.media.encode import out_colors_tags, timescale
from ecg_ray.media.models import OutputFormat, ProbeResult


def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"


def write_concat_list(segment_paths: list[str], frame_counts: list[int], out: OutputFormat, list_path: str) -> None:
    # Explicit durations: each segment's timestamps are offset by exactly the frames before it.
    lines = ["ffconcat version 1.0"]
    for path, frames in zip(segment_paths, frame_counts):
        lines.append(f"file {_quote(os.path.abspath(path))}")
        lines.append(f"duration {frames * out.fps_den / out.fps_num:.9f}")
    with open(list_path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def join(segment_paths: list[str], frame_counts: list[int], out: OutputFormat, src: ProbeResult | None,
         source_path: str | None, dest: str, container: Container = CONTAINERS["mp4"]) -> None:
    """Write ``dest`` in ``container`` (MP4 by default, faststart): the segments' video, then the
    source's first audio track."""
    list_path = dest + ".concat.txt"
    write_concat_list(segment_paths, frame_counts, out, list_path)
    duration = out.frame_count * out.fps_den / out.fps_num
    args = ["-f", "concat", "-safe", "0", "-i", list_path]
    audio = src.audio[0] if (src and src.audio and source_path) else None
    if audio is not None and src is not None and source_path is not None:
        # Output t=0 is the source's first video frame: audio before it is cut, so sync holds.
        shift = src.start
        copy = audio.codec in container.copy_audio and abs(shift) < 0.001
        if shift > 0.001:
            args += ["-ss", f"{shift:.6f}"]
        args += ["-i", source_path, "-map", "0:v:0", "-map", f"1:{audio.index}"]
        args += ["-c:a", "copy"] if copy else container.audio_args
    else:
        args += ["-map", "0:v:0"]
    args += ["-c:v", "copy", "-t", f"{duration:.6f}"]
    if out.is_hdr:
        args += ["-tag:v", "hvc1"]  # HEVC as Apple's players want it tagged (x265 segments)
    if container.faststart:
        args += ["-video_track_timescale", str(timescale(out)), "-movflags", "+faststart"]
    else:
        # VP9 carries only its matrix in the stream, and the segments' MP4 boxes are not read
        # back: the tags are written again here, or WebM would say nothing of primaries/transfer.
        args += out_colors_tags(out)
    args += ["-f", container.muxer, "-y", dest]
    try:
        ffmpeg.run(args, what="join")
    finally:
        discard(list_path)
