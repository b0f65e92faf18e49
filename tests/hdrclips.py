"""HDR, wide-gamut and 10-bit sources made from the vendored real footage with FFmpeg's own
colour filters (zscale), and RGB frame comparisons against the SDR clip they came from."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from ecg_ray.media import ffmpeg
from ecg_ray.media.testclip import BITS, block_size, read_frame_number, stamp_number

from .conftest import REAL_CLIP

SIZE = (480, 270)
SECONDS = 2.0
# SDR white at 203 cd/m2 (BT.2408), as phones grade it: zscale's linear 1.0 is npl cd/m2.
_TO_LINEAR = "zscale=t=linear:npl=203,format=gbrpf32le"
_HEVC10 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:crf=10", "-pix_fmt",
           "yuv420p10le"]
# name: (filters from the BT.709 reference, encoder args with the colour tags)
KINDS: dict[str, tuple[str, list[str]]] = {
    "hlg": (f"{_TO_LINEAR},zscale=p=2020:t=arib-std-b67:m=2020_ncl:r=tv:npl=203,format=yuv420p10le",
            [*_HEVC10, "-color_primaries", "bt2020", "-color_trc", "arib-std-b67", "-colorspace", "bt2020nc"]),
    "pq": (f"{_TO_LINEAR},zscale=p=2020:t=smpte2084:m=2020_ncl:r=tv:npl=203,format=yuv420p10le",
           [*_HEVC10, "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"]),
    # Wide-gamut SDR: BT.2020 primaries and matrix, the SDR curve, 10 bits.
    "bt2020-sdr": ("zscale=p=2020:t=2020_10:m=2020_ncl:r=tv,format=yuv420p10le",
                   [*_HEVC10, "-color_primaries", "bt2020", "-color_trc", "bt2020-10", "-colorspace", "bt2020nc"]),
    "h264-10bit": ("zscale=d=none,format=yuv420p10le",
                   ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "6", "-pix_fmt", "yuv420p10le",
                    "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]),
    "yuv422": ("format=yuv422p",
               ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "6", "-pix_fmt", "yuv422p",
                "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]),
}


def make_reference(path: Path) -> None:
    """The SDR clip: the first SECONDS of the real footage at SIZE, nearly lossless, tagged
    BT.709, each frame's number stamped in blocks along its top (testclip.read_frame_number)."""
    w, h = SIZE
    raw = subprocess.run([ffmpeg.ffmpeg_exe(), "-loglevel", "error", "-i", str(REAL_CLIP), "-t", f"{SECONDS}",
                          "-vf", f"scale={w}:{h}", "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"],
                         capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, w * h * 3 // 2).copy()
    band = BITS * block_size(w) + 8  # the blocks' own width: the rest of the top stays footage
    for n, f in enumerate(frames):
        stamp_number(f[:w * h].reshape(h, w), n, band)
    proc = subprocess.run([ffmpeg.ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                           "-s", f"{w}x{h}", "-framerate", "25", "-i", "pipe:0",
                           # (tags set on the frames: FFmpeg's encoders take them from there)
                           "-vf", "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv",
                           "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-y",
                           str(path)], input=frames.tobytes(), capture_output=True)
    assert proc.returncode == 0, proc.stderr[-500:]


def make_source(ref: Path, kind: str, path: Path, extra: tuple[str, ...] = ()) -> None:
    vf, enc = KINDS[kind]
    ffmpeg.run(["-loglevel", "error", "-i", str(ref), "-vf", vf, *enc, *extra, "-y", str(path)])


def rgb_frames(path: Path) -> np.ndarray:
    """Every frame as BT.709 R'G'B' (int16, frames x H x W x 3), read as an SDR player shows it
    (the file's matrix; no tone mapping)."""
    exe = ffmpeg.ffmpeg_exe()
    out = subprocess.run([exe, "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "pipe:1"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, SIZE[1], SIZE[0], 3).astype(np.int16)


def frame_numbers_rgb(frames: np.ndarray) -> list[int]:
    """The stamped frame numbers of R'G'B' frames (their green channel reads as luma here)."""
    return [read_frame_number(f[..., 1].astype(np.uint8)) for f in frames]
