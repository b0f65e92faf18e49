"""Which colours a source has, which the output keeps, and the filters between the two.

The default output is BT.709 SDR, 8-bit, whatever the source: HDR (PQ, HLG; Dolby Vision by
its base layer) is tone-mapped, wide-gamut SDR is gamut-mapped, 10-bit is dithered to 8-bit.
It all happens in the segment's own FFmpeg, before the captions are drawn (burn.py, decode.py),
so captions look as they do on an SDR source.
"""

from __future__ import annotations

from ecg_ray.media.models import OutputFormat, ProbeResult

# HDR reference white (ITU-R BT.2408): diffuse white, and so SDR white, sits at 203 cd/m2 in PQ
# and at 75% signal in HLG. Linear light is scaled so that 1.0 is this white.
REFERENCE_WHITE_NITS = 203.0
# The brightest light assumed where the file does not say: HLG's nominal display peak, and the
# 1000 cd/m2 that phones' HDR10 is mastered for.
DEFAULT_PEAK_NITS = 1000.0
# Mobius tone curve (mpv's long-time default): linear up to this fraction of reference white
# (about 75% of the SDR signal), highlights above it rolled off into the rest. Measured on the
# demo clip converted to PQ and HLG (SDR white at 203 cd/m2), mid-tone error against the original
# SDR clip, mean absolute of 255: knee 0.3: 3.8; 0.5: 3.0; 0.7: 2.8 (clip, the floor: 2.6);
# reinhard 6.7, hable 28.7 (hable darkens SDR-range content by design).
TONEMAP_KNEE = 0.5
_SDR_PRIMARIES = ("", "bt709", "smpte170m", "bt470bg")


def source_colorspace(src: ProbeResult) -> str:
    """The source's Y'CbCr matrix: its tag, else the usual guess (HDR or BT.2020: BT.2020;
    HD: BT.709, SD: BT.601)."""
    if src.colorspace:
        return src.colorspace
    if src.dynamic_range != "sdr" or src.color_primaries == "bt2020":
        return "bt2020nc"
    return "bt709" if src.height >= 720 else "smpte170m"


def converts(src: ProbeResult) -> bool:
    """Whether the source's pictures need more than a matrix change to become BT.709 SDR 8-bit:
    HDR, wide-gamut primaries or more than 8 bits."""
    return src.dynamic_range != "sdr" or src.color_primaries not in _SDR_PRIMARIES or src.bit_depth > 8


def output_colors(src: ProbeResult) -> tuple[str, str]:
    """(matrix, colorspace tag) written: the source's own where it is BT.709 or BT.601, so the
    pixels pass through unconverted (a conversion costs a pass over every frame); other
    matrices (BT.2020, ...) and every source converted (HDR, wide gamut) are BT.709."""
    csp = source_colorspace(src)
    if csp == "bt709" or converts(src):
        return "bt709", "bt709"
    if csp in ("smpte170m", "bt470bg"):
        return "bt601", csp
    return "bt709", "bt709"


def peak_nits(src: ProbeResult) -> float:
    """The source's brightest light: its content light level, else its mastering display's
    peak, else DEFAULT_PEAK_NITS (always for HLG, whose signal is relative)."""
    hdr = src.hdr
    if src.dynamic_range == "pq" and hdr is not None:
        if hdr.content_light is not None and hdr.content_light.max_cll > 0:
            return float(hdr.content_light.max_cll)
        if hdr.mastering_display is not None and hdr.mastering_display.max_luminance > 0:
            return hdr.mastering_display.max_luminance
    return DEFAULT_PEAK_NITS


def missing_tags(src: ProbeResult) -> list[str]:
    """setparams keys saying what a converted source's untagged properties are taken to be
    (zscale cannot convert from "unknown" primaries or transfer)."""
    if not converts(src):
        return []
    parts = []
    if not src.color_primaries:
        parts.append("color_primaries=" + ("bt2020" if source_colorspace(src).startswith("bt2020") else "bt709"))
    if not src.color_trc:
        drm = src.dynamic_range
        parts.append("color_trc=" + {"pq": "smpte2084", "hlg": "arib-std-b67"}.get(drm, "bt709"))
    return parts


def color_filter(src: ProbeResult, out: OutputFormat) -> str | None:
    """The filters taking the source's pictures to the output's colours (yuv420p, BT.709 SDR),
    or None where the usual pixel format conversion does (8-bit BT.709 and BT.601 sources).

    One zscale does a gamut or bit-depth change (zimg linearizes for the primaries itself;
    out-of-gamut colours are clipped). Tone mapping goes through linear float RGB: zscale to
    linear with reference white at 1.0, FFmpeg's tonemap (mobius) to SDR's range, zscale back.
    The last step dithers (ordered) to 8 bits, so 10-bit gradients do not band.

    HDR kept (``out.is_hdr``): the source's transfer stays; only a source not already in BT.2020
    primaries and matrix is converted to them."""
    if out.is_hdr:
        if src.color_primaries in ("", "bt2020") and source_colorspace(src) == "bt2020nc":
            return None
        return "zscale=p=2020:m=2020_ncl:r=tv"
    if not converts(src):
        return None
    to_709 = "zscale=p=709:t=709:m=709:r=tv:d=ordered,format=yuv420p"  # (output_colors: BT.709)
    if src.dynamic_range == "sdr":
        return to_709
    peak = max(1.0, peak_nits(src) / REFERENCE_WHITE_NITS)
    return (f"zscale=t=linear:npl={REFERENCE_WHITE_NITS:g},format=gbrpf32le,zscale=p=709,"
            f"tonemap=tonemap=mobius:param={TONEMAP_KNEE:g}:peak={peak:.4g},{to_709}")
