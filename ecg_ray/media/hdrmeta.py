"""A source's HDR side data: mastering display and content light level (from the first decoded
frame's side data, where FFmpeg's decoders put the stream's SEI and MP4 boxes alike), HDR10+
presence, and the Dolby Vision configuration record (an MP4/MOV box PyAV does not expose)."""

from __future__ import annotations

import os
import struct
from typing import Any

from ecg_ray.media.models import ContentLight, DolbyVision, HdrMetadata, MasteringDisplay

# MP4/MOV only: the moov box is read whole to find the record, so a moov larger than this
# (hours of sample tables) is left unread rather than loaded.
_MAX_MOOV = 64 << 20
_MAX_TOP_BOXES = 1000  # top-level boxes walked before giving up (real files have a handful)
_DV_BOXES = (b"dvcC", b"dvvC", b"dvwC")


def _rational(b: bytes, i: int) -> float:
    num, den = struct.unpack_from("<ii", b, i * 8)
    return num / den if den else 0.0


def mastering_display(b: bytes) -> MasteringDisplay | None:
    """AVMasteringDisplayMetadata: 10 AVRationals (r, g, b, white xy; min, max luminance) and
    two ints saying which halves are set."""
    if len(b) < 88:
        return None
    has_primaries, has_luminance = struct.unpack_from("<ii", b, 80)
    md = MasteringDisplay()
    if has_primaries:
        md.red, md.green, md.blue, md.white_point = (
            (round(_rational(b, 2 * k), 5), round(_rational(b, 2 * k + 1), 5)) for k in range(4))
    if has_luminance:
        md.min_luminance, md.max_luminance = round(_rational(b, 8), 5), round(_rational(b, 9), 3)
    return md if has_primaries or has_luminance else None


def content_light(b: bytes) -> ContentLight | None:
    if len(b) < 8:
        return None
    cll, fall = struct.unpack_from("<II", b, 0)
    return ContentLight(max_cll=cll, max_fall=fall)


def dolby_vision_record(b: bytes) -> DolbyVision | None:
    """The 24-byte DOVIDecoderConfigurationRecord (Dolby's ISOBMFF spec): version, then profile
    (7 bits), level (6), rpu/el/bl present flags, then the base layer's compatibility id (4)."""
    if len(b) < 5:
        return None
    bits = struct.unpack_from(">H", b, 2)[0]
    return DolbyVision(profile=bits >> 9, level=(bits >> 3) & 0x3F, rpu=bool(bits & 4),
                       enhancement_layer=bool(bits & 2), base_layer=bool(bits & 1),
                       bl_compatibility_id=b[4] >> 4)


def _moov(path: str) -> bytes | None:
    """The top-level moov box of an MP4/MOV file (walking box headers, mdat skipped unread)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            pos = 0
            for _ in range(_MAX_TOP_BOXES):
                if pos + 8 > size:
                    return None
                fh.seek(pos)
                head = fh.read(16)
                if len(head) < 8:
                    return None
                box_size, kind = struct.unpack_from(">I4s", head)
                header = 8
                if box_size == 1 and len(head) == 16:
                    box_size, header = struct.unpack_from(">Q", head, 8)[0], 16
                elif box_size == 0:
                    box_size = size - pos
                if box_size < header:
                    return None
                if kind == b"moov":
                    if box_size > _MAX_MOOV:
                        return None
                    fh.seek(pos + header)
                    return fh.read(box_size - header)
                pos += box_size
    except OSError:
        return None
    return None


def dolby_vision(path: str, container: str) -> DolbyVision | None:
    """The Dolby Vision record of an MP4/MOV file (FFmpeg's demuxer name "mov,mp4,m4a,...")."""
    if "mp4" not in container and "mov" not in container:
        return None
    moov = _moov(path)
    if not moov:
        return None
    for kind in _DV_BOXES:
        i = moov.find(kind)
        while i >= 4:
            box_size = struct.unpack_from(">I", moov, i - 4)[0]
            if 13 <= box_size <= 64:  # the record's box, not these four bytes inside another table
                return dolby_vision_record(moov[i + 4:i + box_size - 4])
            i = moov.find(kind, i + 4)
    return None


def hdr_metadata(frame: Any, path: str, container: str) -> HdrMetadata | None:
    """The HDR side data of a source (its first frame and its file), or None if it has none."""
    meta = HdrMetadata()
    for sd in getattr(frame, "side_data", None) or ():
        kind = getattr(sd.type, "name", "")
        if kind == "MASTERING_DISPLAY_METADATA":
            meta.mastering_display = mastering_display(bytes(sd))
        elif kind == "CONTENT_LIGHT_LEVEL":
            meta.content_light = content_light(bytes(sd))
        elif kind == "DYNAMIC_HDR_PLUS":
            meta.hdr10_plus = True
    meta.dolby_vision = dolby_vision(path, container)
    return meta if meta.model_dump(exclude_defaults=True) else None
