"""HLS pieces of a job's live preview: the source's audio as AAC once, one CMAF fragment per
finished segment (its video stream-copied, so the preview's frames are the final video's), and
the EVENT playlist over them.

FFmpeg's fragmented MP4 muxer writes each fragment's ``tfdt`` from 0 whatever its input
timestamps (``-output_ts_offset``, ``-itsoffset`` and the HLS muxer alike, FFmpeg 9 here): a
player would lay every fragment over the first. So each fragment is written from 0 and its
``tfdt`` boxes are set here to where it sits in the job (the video bytes are not touched).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass

from ecg_ray.errors import RenderError
from ecg_ray.media import ffmpeg
from ecg_ray.media.models import ProbeResult

# The preview's whole timeline starts this late, so that a segment's first decode time (before
# its first frame by its B-frame delay) and the AAC encoder's priming are never below 0. A
# player starts at the first fragment whatever its time (hls.js: initPTS).
TIMELINE_START_S = 1.0
AAC_FRAME = 1024          # samples per AAC frame
AAC_PRIMING = 1024        # FFmpeg's AAC encoder's priming samples (its first frame holds them)
AUDIO_BITRATE = "128k"
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex"}


# -- boxes ----------------------------------------------------------------------------------

def _boxes(data: bytes | bytearray, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the boxes in ``data[start:end]``, one level."""
    end = len(data) if end is None else end
    out = []
    off = start
    while off + 8 <= end:
        size, kind = struct.unpack(">I4s", data[off:off + 8])
        if size == 1:
            size = struct.unpack(">Q", data[off + 8:off + 16])[0]
        elif size == 0:
            size = end - off
        if size < 8 or off + size > end:
            raise RenderError("encoder_failed", f"preview fragment: a {kind!r} box runs past its end")
        out.append((kind, off, size))
        off += size
    return out


def _walk(data: bytes | bytearray, start: int = 0, end: int | None = None):  # type: ignore[no-untyped-def]
    for kind, off, size in _boxes(data, start, end):
        yield kind, off, size
        if kind in _CONTAINERS:
            yield from _walk(data, off + 8, off + size)


def _timescales(init: bytes) -> dict[int, int]:
    """track id -> timescale (mdhd), from an init segment."""
    out: dict[int, int] = {}
    track = 0
    for kind, off, _ in _walk(init):
        if kind == b"tkhd":
            version = init[off + 8]
            track = struct.unpack(">I", init[off + (28 if version == 1 else 20):][:4])[0]
        elif kind == b"mdhd":
            version = init[off + 8]
            out[track] = struct.unpack(">I", init[off + (28 if version == 1 else 20):][:4])[0]
    return out


def _video_setup(init: bytes) -> bytes:
    """The video track's sample entry of an init segment (codec, size, SPS/PPS) without its
    bitrate box (btrt: each segment's own): equal ones decode alike."""
    for kind, off, size in _walk(init):
        if kind == b"stsd":
            entry = off + 16
            entry_size = struct.unpack(">I", init[entry:entry + 4])[0]
            head = entry + 8 + 78  # a visual sample entry's fields, then its boxes
            kept = [init[o:o + s] for k, o, s in _boxes(init, head, entry + entry_size) if k != b"btrt"]
            return init[entry + 4:head] + b"".join(kept)
    return b""


def _first_presentation(media: bytearray, track: int) -> int:
    """The first sample's composition offset of ``track`` in the first fragment (its first frame
    is shown this long after its first decode time; B-frames make it > 0)."""
    for kind, off, size in _walk(media):
        if kind != b"traf":
            continue
        tfhd = next(o for k, o, _ in _boxes(media, off + 8, off + size) if k == b"tfhd")
        if struct.unpack(">I", media[tfhd + 12:tfhd + 16])[0] != track:
            continue
        trun = next(o for k, o, _ in _boxes(media, off + 8, off + size) if k == b"trun")
        version = media[trun + 8]
        flags = struct.unpack(">I", media[trun + 8:trun + 12])[0] & 0xFFFFFF
        pos = trun + 16 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
        if not flags & 0x800:
            return 0
        pos += 4 * bool(flags & 0x100) + 4 * bool(flags & 0x200) + 4 * bool(flags & 0x400)
        return int(struct.unpack(">i" if version else ">I", media[pos:pos + 4])[0])
    return 0


def _set_decode_times(media: bytearray, starts: dict[int, int]) -> None:
    """Add ``starts[track]`` to every tfdt of ``track`` (written as 64-bit, version 1)."""
    for kind, off, size in list(_walk(media)):
        if kind != b"traf":
            continue
        inner = _boxes(media, off + 8, off + size)
        tfhd = next(o for k, o, _ in inner if k == b"tfhd")
        track = struct.unpack(">I", media[tfhd + 12:tfhd + 16])[0]
        for k, o, s in inner:
            if k != b"tfdt":
                continue
            if media[o + 8] != 1 or s != 20:
                raise RenderError("encoder_failed", "preview fragment: a 32-bit tfdt (FFmpeg writes 64-bit ones)")
            now = struct.unpack(">Q", media[o + 12:o + 20])[0]
            media[o + 12:o + 20] = struct.pack(">Q", now + starts.get(track, 0))


# -- audio ----------------------------------------------------------------------------------

@dataclass
class AdtsAudio:
    """The job's audio as ADTS AAC frames: cut by time without decoding, each frame in one
    fragment only (no gap, no overlap between fragments)."""

    data: bytes
    frames: list[tuple[int, int]]   # (offset, size)
    sample_rate: int

    @classmethod
    def read(cls, path: str) -> AdtsAudio:
        with open(path, "rb") as fh:
            data = fh.read()
        frames: list[tuple[int, int]] = []
        rate = 0
        off = 0
        while off + 7 <= len(data):
            if data[off] != 0xFF or data[off + 1] & 0xF0 != 0xF0:
                raise RenderError("encoder_failed", f"preview audio: no ADTS frame at byte {off}")
            if not rate:
                rate = _ADTS_RATES[(data[off + 2] >> 2) & 0xF]
            size = ((data[off + 3] & 3) << 11) | (data[off + 4] << 3) | (data[off + 5] >> 5)
            frames.append((off, size))
            off += size
        return cls(data, frames, rate or 48000)

    def frame_at(self, t: float) -> int:
        """The first frame whose audio starts at or after ``t`` seconds of the video."""
        return max(0, math.ceil((t * self.sample_rate + AAC_PRIMING) / AAC_FRAME - 1e-6))

    def cut(self, t0: float, t1: float | None) -> tuple[bytes, int]:
        """The frames of [t0, t1) (to the end for None) and the first one's sample in the video."""
        k0 = self.frame_at(t0) if t0 > 0 else 0  # the priming frame goes first, before the video's t=0
        k1 = len(self.frames) if t1 is None else min(len(self.frames), self.frame_at(t1))
        body = b"".join(self.data[o:o + n] for o, n in self.frames[k0:k1])
        return body, k0 * AAC_FRAME - AAC_PRIMING


_ADTS_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350, 0, 0, 0]


def encode_audio(src: ProbeResult, source_path: str, dest: str) -> bool:
    """The source's first audio track from its first video frame on (as the join takes it) as
    ADTS AAC in ``dest``; False when the source has none."""
    if not src.audio:
        return False
    args = []
    if src.start > 0.001:
        args += ["-ss", f"{src.start:.6f}"]
    args += ["-i", source_path, "-map", f"0:{src.audio[0].index}", "-vn", "-c:a", "aac", "-b:a", AUDIO_BITRATE,
             "-f", "adts", "-y", dest]
    ffmpeg.run(args, what="preview audio")
    return True


# -- one fragment -----------------------------------------------------------------------------

@dataclass
class Fragment:
    init: bytes     # ftyp + moov
    media: bytes    # moof + mdat pairs, decode times set to the segment's place
    duration: float


def fragment(segment_path: str, start_s: float, duration_s: float, audio: AdtsAudio | None,
             last: bool, workdir: str, name: str) -> Fragment:
    """Segment ``segment_path`` (its video, starting ``start_s`` into the job) with the job's
    audio of the same time as one fMP4 fragment. One FFmpeg run: the video is stream-copied."""
    out = os.path.join(workdir, f"{name}.mp4")
    args = ["-i", segment_path]
    audio_path = os.path.join(workdir, f"{name}.aac")
    first_sample = 0
    body = b""
    if audio is not None:
        body, first_sample = audio.cut(start_s, None if last else start_s + duration_s)
    try:
        if body:
            with open(audio_path, "wb") as fh:
                fh.write(body)
            args += ["-i", audio_path, "-map", "0:v:0", "-map", "1:a:0", "-bsf:a", "aac_adtstoasc"]
        else:
            args += ["-map", "0:v:0"]
        # No edit list: players that apply one (FFmpeg) would show the video a B-frame delay early,
        # those that do not (MSE) would not; the tfdt set below places the first frame itself.
        # And no shift of the streams' timestamps: the video's first decode time is before 0 (its
        # B-frame delay), and the default shift moved the audio 80 ms (two frames at 25 fps)
        # late inside the fragment while its tfdt stayed 0 (measured: beeps at +0.48 s, not 0.4).
        args += ["-c", "copy", "-f", "mp4", "-use_editlist", "0", "-avoid_negative_ts", "disabled",
                 "-movflags", "+frag_keyframe+empty_moov+delay_moov+default_base_moof",
                 "-y", out]
        ffmpeg.run(args, what="preview fragment")
        with open(out, "rb") as fh:
            data = fh.read()
    finally:
        for p in (out, audio_path):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass
    top = _boxes(data)
    init = b"".join(data[o:o + s] for k, o, s in top if k in (b"ftyp", b"moov"))
    media = bytearray(b"".join(data[o:o + s] for k, o, s in top if k in (b"moof", b"mdat")))
    scales = _timescales(init)
    video_track = 1  # mapped first
    v_scale = scales.get(video_track, 0)
    if not v_scale:
        raise RenderError("encoder_failed", f"preview fragment of {segment_path}: no video track")
    starts = {video_track: round((TIMELINE_START_S + start_s) * v_scale) - _first_presentation(media, video_track)}
    if body and audio is not None:
        starts[2] = round(TIMELINE_START_S * audio.sample_rate) + first_sample
    _set_decode_times(media, starts)
    return Fragment(init=init, media=bytes(media), duration=duration_s)


def same_decoder_setup(a: bytes, b: bytes) -> bool:
    """Two init segments whose video is set up the same (codec, size, SPS/PPS): a fragment of
    one plays after the other's init."""
    return _video_setup(a) == _video_setup(b)


def codecs(init: bytes, audio: bool) -> str:
    """The RFC 6381 codecs of an init segment's tracks ("" where the video's is not H.264):
    players need them in the master playlist (hls.js guesses "mp4a.40" from the init alone,
    which Chromium's MediaSource refuses)."""
    for kind, off, _ in _walk(init):
        if kind == b"stsd":
            entry = off + 16
            for k, o, _s in _boxes(init, entry + 8 + 78, entry + struct.unpack(">I", init[entry:entry + 4])[0]):
                if k == b"avcC":
                    profile, compat, level = init[o + 9], init[o + 10], init[o + 11]
                    video = f"avc1.{profile:02x}{compat:02x}{level:02x}"
                    return video + (",mp4a.40.2" if audio else "")
            return ""
    return ""


# -- the playlist ------------------------------------------------------------------------------

def playlist(durations: list[float], init_name: str, media_name: str, ended: bool) -> str:
    """An EVENT media playlist over fragments 0..n-1 (``media_name`` formatted with the index),
    ended (``#EXT-X-ENDLIST``) once the job's video is all in it."""
    target = max([math.ceil(d) for d in durations] or [1])
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}", "#EXT-X-MEDIA-SEQUENCE:0",
             "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-INDEPENDENT-SEGMENTS", f'#EXT-X-MAP:URI="{init_name}"']
    for i, d in enumerate(durations):
        lines += [f"#EXTINF:{d:.6f},", media_name.format(i)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def master(media_uri: str, bandwidth: int, codec_list: str) -> str:
    """The master playlist: one variant, the media playlist, with its codecs where known."""
    attrs = f"BANDWIDTH={max(1, bandwidth)}" + (f',CODECS="{codec_list}"' if codec_list else "")
    return f"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:{attrs}\n{media_uri}\n"


def with_query(text: str, query: str) -> str:
    """``text`` (a playlist) with ``query`` (``?...``) after each of its URIs: the signature
    that opened the playlist opens its files too."""
    out = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:URI=\""):
            uri = line[len('#EXT-X-MAP:URI="'):-1]
            line = f'#EXT-X-MAP:URI="{uri}{query}"'
        elif line and not line.startswith("#"):
            line += query
        out.append(line)
    return "\n".join(out) + "\n"
