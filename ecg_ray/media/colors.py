"""Which Y'CbCr matrix a source has and which the output keeps."""

from __future__ import annotations

from ecg_ray.media.models import ProbeResult


def source_colorspace(src: ProbeResult) -> str:
    """The source's Y'CbCr matrix: its tag, else the usual guess (HD: BT.709, SD: BT.601)."""
    return src.colorspace or ("bt709" if src.height >= 720 else "smpte170m")


def output_colors(src: ProbeResult) -> tuple[str, str]:
    """(matrix, colorspace tag) written: the source's own where it is BT.709 or BT.601, so the
    pixels pass through unconverted (a conversion costs a pass over every frame); other
    matrices (BT.2020, ...) are converted to BT.709."""
    csp = source_colorspace(src)
    if csp == "bt709":
        return "bt709", "bt709"
    if csp in ("smpte170m", "bt470bg"):
        return "bt601", csp
    return "bt709", "bt709"
