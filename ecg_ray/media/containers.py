"""The files a job can write (``options.format``): what each carries and how FFmpeg writes it.

MP4 and MOV hold the same H.264 video and AAC audio (MOV is QuickTime's container, which
editing tools on macOS prefer); WebM holds VP9 and Opus, encoded by libvpx and libopus where
the FFmpeg build has them. Segments are always MP4 files (VP9 is carried in MP4 too) and are
joined into the container with stream copy, so the container changes only the join.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ecg_ray.errors import RenderError
from ecg_ray.media.encode import audio_encoder_opens, encoder_opens
from ecg_ray.media.models import ContainerName


@dataclass(frozen=True)
class Container:
    name: str                     # options.format
    muxer: str                    # FFmpeg's -f
    mime: str
    video_codec: str | None       # None: the encoder the cluster chose (H.264: libx264 or NVENC)
    copy_audio: frozenset[str]    # source audio codecs carried as they are
    audio_codec: str              # what other audio is encoded with
    audio_opts: tuple[str, ...]   # and how
    faststart: bool               # moov atom first (MP4/MOV): playback starts before the download ends

    @property
    def ext(self) -> str:
        return self.name

    @property
    def audio_args(self) -> list[str]:
        return ["-c:a", self.audio_codec, *self.audio_opts]


# Codecs MP4/MOV carry and players accept; anything else is re-encoded to AAC.
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac"})

CONTAINERS: dict[str, Container] = {
    "mp4": Container("mp4", "mp4", "video/mp4", None, _MP4_AUDIO, "aac", ("-b:a", "192k"), True),
    "mov": Container("mov", "mov", "video/quicktime", None, _MP4_AUDIO, "aac", ("-b:a", "192k"), True),
    # Opus runs at 48 kHz (libopus takes 8-48 kHz steps only): resampled where the source is not.
    "webm": Container("webm", "webm", "video/webm", "libvpx-vp9", frozenset({"opus", "vorbis"}),
                      "libopus", ("-b:a", "160k", "-ar", "48000"), False),
}


def container(name: ContainerName | str) -> Container:
    try:
        return CONTAINERS[name]
    except KeyError:
        raise RenderError("invalid_options", f"options.format {name!r} is not one of {', '.join(CONTAINERS)}") from None


@lru_cache(maxsize=8)
def _encoders_missing(name: str) -> tuple[str, ...]:
    c = CONTAINERS[name]
    missing = []
    if c.video_codec and not encoder_opens(c.video_codec):
        missing.append(c.video_codec)
    # FFmpeg's own AAC encoder is in every build; libopus is a library it may lack.
    if c.audio_codec != "aac" and not audio_encoder_opens(c.audio_codec):
        missing.append(c.audio_codec)
    return tuple(missing)


def check_supported(name: ContainerName | str) -> Container:
    """The container, or ``invalid_options`` naming ``options.format`` when this FFmpeg cannot
    write it (checked by real one-frame test encodes, once per process)."""
    c = container(name)
    missing = _encoders_missing(c.name)
    if missing:
        ok = [n for n in CONTAINERS if not _encoders_missing(n)]
        raise RenderError("invalid_options",
                          f"options.format {c.name!r} needs the {' and '.join(missing)} encoder(s), which this "
                          f"FFmpeg build lacks; supported here: {', '.join(ok)}")
    return c


def hdr_encoder(requested: str, name: str) -> str:
    """The encoder of an HDR-kept output (options.dynamic_range "hdr"): HEVC Main 10 by libx265,
    in MP4 or MOV; ``invalid_options`` naming what cannot be done."""
    if name not in ("mp4", "mov"):
        raise RenderError("invalid_options", f"options.dynamic_range hdr writes HEVC, which options.format "
                                             f"{name!r} does not carry here; use mp4 or mov")
    if requested != "auto":
        raise RenderError("invalid_options", f"options.encoder {requested!r} writes SDR H.264; HDR output is "
                                             "encoded by libx265 (leave encoder at auto)")
    if not encoder_opens("libx265"):
        raise RenderError("invalid_options", "options.dynamic_range hdr needs the libx265 encoder, which this "
                                             "FFmpeg build lacks")
    return "libx265"
