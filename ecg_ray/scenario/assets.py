"""Define assets: the fonts and images a scenario's ``define`` section names.

motiontext-renderer 1.5.0 loads every top-level define entry of the form
``{"type": "font" | "image", "url": "..."}`` when a scenario is loaded: a font becomes a
``FontFace`` whose family is the entry's key, an image is preloaded (an image node shows it
with ``"src": "define.KEY"``; an image node's src that is a URL of its own becomes such an
entry in ``normalize``). The page itself may never reach the network or the disk, so:

- at submission (``normalize``) only the shape is checked: ``check_define_assets`` (a scheme
  this module can fetch, a non-empty literal URL), nothing is fetched;
- when the job runs, ``fetch_assets`` (on the driver, once per job, before any segment renders)
  fetches each distinct asset once: http(s) through the URL policy (``urls.request``: SSRF
  checks, pinned address, validated redirects), ``s3://`` through ``storage.download_s3``, a
  path relative to the scenario file's directory (the command line) or, for the service, only
  inside ECG_LOCAL_INPUT_DIRS (the rule for local video inputs), ``data:`` decoded. Each is
  held to ECG_MAX_ASSET_BYTES, ECG_MAX_ASSETS_TOTAL_BYTES, ECG_MAX_ASSETS and
  ECG_ASSET_TIMEOUT_S, and its content (not its name or Content-Type) must be a font or an
  image of an allowed kind;
- the scenario's define URLs are rewritten to content-addressed URLs on the caption page's
  made-up origin, and the bytes travel with the job (``Scenario.assets``, through Ray's object
  store with the JobSpec) to every segment actor, whose page answers exactly those URLs from
  memory (browser.py). Everything else stays refused.

A failure names the define key, the URL or path (credentials redacted) and what went wrong:
``asset_failed``, or ``forbidden_url`` for a URL the network policy refuses.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import io
import logging
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ecg_ray.errors import Cancelled, RenderError, invalid_scenario
from ecg_ray.files import discard
from ecg_ray.scenario.model import PAGE_ORIGIN, SRC_ASSET_PREFIX, PageAsset, Scenario
from ecg_ray.sources.inputs import allowed_local_path
from ecg_ray.sources.s3 import download_s3
from ecg_ray.sources.urls import NetPolicy, redact, request
from ecg_ray.sources.watch import TransferWatch

if TYPE_CHECKING:
    from ecg_ray.config import Settings

log = logging.getLogger(__name__)

# What motiontext-renderer 1.5.0's AssetManager.isAssetDefinition counts as an asset. Only fonts
# and images are fetched (it loads them at loadConfig); video and audio entries are merely
# registered by URL there, and the page has no media at all (CSP media-src 'none').
ASSET_TYPES = ("font", "image", "video", "audio")
LOADED_TYPES = ("font", "image")
# Where the page finds the fetched bytes: content-addressed, so the URL says exactly which bytes
# it serves (the same in every segment, every actor and every retry).
PATH_PREFIX = "/define-assets/"
# Decoded, an image costs width*height*4 bytes in the browser (and in every segment actor): a
# small PNG of 60000x60000 pixels would be a decompression bomb. 4096x4096 is 64 MiB decoded,
# more than a logo or a lower third needs.
MAX_IMAGE_PIXELS = 4096 * 4096
_PARALLEL = 4  # assets fetched at once

_SCHEMES = ("http", "https", "s3", "data", "file")

# Content sniffing: the first bytes decide what a file is; names and Content-Type do not.
_FONT_MAGIC = (
    (b"\x00\x01\x00\x00", "ttf", "font/ttf"),
    (b"true", "ttf", "font/ttf"),
    (b"OTTO", "otf", "font/otf"),
    (b"wOFF", "woff", "font/woff"),
    (b"wOF2", "woff2", "font/woff2"),
)
# SVG is refused, not sanitized: it is XML that may carry script, event handlers, external
# references (href, @import, url(...)), entities and embedded fonts; in an <img> Chromium runs
# none of that, but what it draws then depends on rules we would have to re-check on every
# Chromium update, and a sanitizer that is not exactly right is worse than none. Its text also
# draws with whatever fonts the actor happens to have. Raster formats only: export the logo as
# PNG (or WebP) at the size it is shown.
_IMAGE_FORMATS = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"),
                  "GIF": ("gif", "image/gif"), "WEBP": ("webp", "image/webp")}


# -- shape (submission) ----------------------------------------------------------------------

def asset_entries(sc: dict) -> list[tuple[str, str, str]]:
    """(key, type, url) of every define entry the page treats as an asset, in define order."""
    define = sc.get("define")
    if not isinstance(define, dict):
        return []
    out = []
    for key, value in define.items():
        if (isinstance(value, dict) and isinstance(value.get("type"), str) and value["type"] in ASSET_TYPES
                and isinstance(value.get("url"), str)):
            out.append((key, value["type"], value["url"]))
    return out


def _scheme(url: str) -> str:
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError:
        return "?"
    return "" if len(scheme) == 1 else scheme  # C:\\fonts\\a.ttf is a path


def asset_label(sc: dict, key: str) -> str:
    """How messages name a define asset: ``define.KEY``, or the image node's ``...src`` that
    normalize turned into this entry (scenario._image_src)."""
    entry = sc.get("define", {}).get(key) if isinstance(sc.get("define"), dict) else None
    if key.startswith(SRC_ASSET_PREFIX) and isinstance(entry, dict) and isinstance(entry.get("ecgFrom"), str):
        return entry["ecgFrom"]
    return f"define.{key}" if key.replace("_", "a").replace("-", "a").isalnum() else f"define[{key!r}]"


def check_define_assets(sc: dict) -> None:
    """The shape of the define assets (no fetch, no DNS): what ``fetch_assets`` could fetch.

    Raises invalid_scenario naming ``define.KEY.url`` (or the image node's src it came from)."""
    for key, typ, url in asset_entries(sc):
        if typ not in LOADED_TYPES:
            continue
        label = asset_label(sc, key)
        check_asset_url(url, label if label.endswith(".src") else label + ".url")


def check_asset_url(url: str, path: str) -> None:
    """One asset URL's shape: invalid_scenario naming ``path`` unless fetch_assets could fetch it."""
    if not url.strip():
        raise invalid_scenario(path, "must be a URL or a path, not empty")
    if url.startswith("define."):
        raise invalid_scenario(path, "must be a literal URL or path (not a define reference)")
    if len(url) > 8192 and not url.startswith("data:"):
        raise invalid_scenario(path, f"is {len(url)} characters long")
    scheme = _scheme(url)
    if scheme == "?":
        raise invalid_scenario(path, f"{redact(url)[:200]!r} is not a valid URL or path")
    if scheme and scheme not in _SCHEMES:
        raise invalid_scenario(path, f"URL scheme {scheme!r} is not allowed (use http, https, s3, data, "
                                     "or a path relative to the scenario file)")
    if scheme in ("http", "https"):
        parts = urllib.parse.urlsplit(url.strip())
        if not parts.hostname or any(ord(c) < 0x21 or c == "\x7f" for c in url.strip()):
            raise invalid_scenario(path, f"{redact(url)[:200]!r} is not a valid {scheme} URL")
    elif scheme == "s3":
        bucket, _, obj = url[5:].partition("/")
        if not bucket or not obj:
            raise invalid_scenario(path, f"{url[:200]!r} is not an s3://bucket/key URL")
    elif scheme == "data":
        if "," not in url:
            raise invalid_scenario(path, "is not a data: URL (no comma)")
    elif scheme == "file":
        if urllib.parse.urlsplit(url).netloc not in ("", "localhost"):
            raise invalid_scenario(path, f"file URL {url[:200]!r} names another host")
    elif "\x00" in url:
        raise invalid_scenario(path, "a path must not contain NUL")


# -- fetching (when the job runs) ------------------------------------------------------------

class _Failed(Exception):
    """What went wrong with one source (the caller adds the define keys and the source)."""

    def __init__(self, why: str, code: str = "asset_failed") -> None:
        super().__init__(why)
        self.why, self.code = why, code


@dataclasses.dataclass
class _Budget:
    """The job's total byte allowance, shared by the fetching threads."""

    left: int
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def take(self, n: int, total: int) -> None:
        with self.lock:
            if n > self.left:
                raise _Failed(f"the job's define assets together exceed {total} bytes (ECG_MAX_ASSETS_TOTAL_BYTES)")
            self.left -= n


def _describe(body: bytes) -> str:
    """What a refused file looks like, for the message."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not body:
        return "an empty file"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head:
        return "an HTML page"
    if b"<svg" in head:
        return "an SVG image (SVG is not accepted: it can carry script and external references)"
    if head.startswith(b"<?xml") or head.startswith(b"<"):
        return "XML or HTML text"
    if head.startswith((b"{", b"[")):
        return "JSON text"
    for magic, fmt, _ in _FONT_MAGIC:
        if body.startswith(magic):
            return f"a {fmt.upper()} font"
    for magic, name in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                        (b"BM", "a BMP image"), (b"\x00\x00\x01\x00", "an ICO image"), (b"%PDF", "a PDF file"),
                        (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "gzip data"), (b"ttcf", "a font collection (TTC)")):
        if body.startswith(magic):
            return name
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "a WebP image"
    try:
        body[:1024].decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return f"unknown data (first bytes {body[:8].hex()})"


def sniff(body: bytes, typ: str) -> tuple[str, str]:
    """(extension, content type) when ``body`` is an allowed ``typ`` ("font" or "image"), else _Failed."""
    if typ == "font":
        for magic, ext, ctype in _FONT_MAGIC:
            if body.startswith(magic):
                return ext, ctype
        raise _Failed(f"is not a font (TrueType, OpenType, WOFF or WOFF2): it looks like {_describe(body)}")
    from PIL import Image, UnidentifiedImageError

    # Pillow reads the header only (no pixels) to tell the format, the size and animation.
    try:
        with Image.open(io.BytesIO(body)) as im:
            fmt = im.format
            w, h = im.size
            animated = bool(getattr(im, "is_animated", False)) if fmt in _IMAGE_FORMATS else False
    except Image.DecompressionBombError as exc:  # far beyond our own limit below
        raise _Failed(f"is too large an image ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _Failed(f"is not a PNG, JPEG, GIF or WebP image: it looks like {_describe(body)}"
                      + (f" ({exc})" if not isinstance(exc, UnidentifiedImageError) else "")) from None
    if fmt not in _IMAGE_FORMATS:
        raise _Failed(f"is a {fmt} image; only PNG, JPEG, GIF and WebP are accepted")
    if w * h > MAX_IMAGE_PIXELS:
        raise _Failed(f"is {w}x{h} pixels; at most {MAX_IMAGE_PIXELS} pixels (4096x4096) are accepted")
    if animated:
        # An animated image plays on the browser's clock, not on the frame being rendered: two
        # segments (or two runs) would draw different frames of it.
        raise _Failed(f"is an animated {fmt}; animation cannot be rendered frame-exactly (use a still image)")
    return _IMAGE_FORMATS[fmt]


def _read_http(url: str, policy: NetPolicy, limit: int, timeout: float, settings: Settings,
               cancelled: Callable[[], bool]) -> bytes:
    deadline = time.monotonic() + timeout

    def watch_settings() -> Settings:
        # The watch ends the read for a cancel or at the deadline, what is left of it once the
        # answer's headers came (the whole fetch is bounded, not only each read: a server dripping
        # its body keeps every read short); the error names ECG_ASSET_TIMEOUT_S, not the watch's.
        left = max(0.001, deadline - time.monotonic())
        return settings.model_copy(update={"fetch_deadline_s": left, "fetch_min_bytes_per_s": 0})

    try:
        with request(url, policy, timeout=timeout) as resp, \
                TransferWatch(resp.abort, watch_settings(), cancelled) as watch:
            if not 200 <= resp.status < 300:
                raise _Failed(f"HTTP {resp.status} {resp.reason}".strip())
            declared = resp.headers.get("Content-Length")
            if declared and declared.strip().isdigit() and int(declared) > limit:  # before reading a byte
                raise _Failed(f"is {int(declared)} bytes; the limit is {limit} (ECG_MAX_ASSET_BYTES)")
            chunks, got = [], 0
            while True:
                try:
                    chunk = resp.read1(64 * 1024)
                except RenderError:
                    _stopped(watch.reason, timeout)
                    raise
                _stopped(watch.reason, timeout)  # the abort ended the body early, as an end of file
                if time.monotonic() >= deadline:
                    raise _Failed(f"timed out after {timeout:g}s (ECG_ASSET_TIMEOUT_S)")
                if not chunk:
                    break
                got += len(chunk)
                if got > limit:  # no or a wrong Content-Length: count what arrives
                    raise _Failed(f"is more than {limit} bytes (ECG_MAX_ASSET_BYTES)")
                chunks.append(chunk)
            if declared and declared.strip().isdigit() and got < int(declared):
                raise _Failed(f"the download ended after {got} of {int(declared)} bytes")
            return b"".join(chunks)
    except RenderError as exc:
        if exc.code == "cancelled":
            raise
        if exc.code == "forbidden_url":
            raise _Failed(exc.message, "forbidden_url") from None
        if "timed out" in exc.message or time.monotonic() >= deadline:
            raise _Failed(f"timed out after {timeout:g}s (ECG_ASSET_TIMEOUT_S): {exc.message}") from None
        raise _Failed(exc.message) from None


def _stopped(reason: str, timeout: float) -> None:
    """Raise what the watch stopped the fetch for, if it did."""
    if reason == "cancelled":
        raise Cancelled("job cancelled while its define assets were fetched") from None
    if reason == "deadline":
        raise _Failed(f"timed out after {timeout:g}s (ECG_ASSET_TIMEOUT_S)") from None


def _read_s3(url: str, settings: Settings, limit: int, workdir: str | None, timeout: float,
             cancelled: Callable[[], bool]) -> bytes:
    # The endpoint is configured, not chosen by the scenario: no network policy (as for s3 inputs).

    fd, tmp = tempfile.mkstemp(prefix="asset-", dir=workdir or settings.tmp_dir)
    os.close(fd)
    try:
        try:
            # bounded as an http(s) asset is: the whole fetch within ECG_ASSET_TIMEOUT_S
            download_s3(url, tmp, settings.model_copy(update={"max_input_bytes": limit, "fetch_deadline_s": timeout}),
                        cancelled=cancelled)
        except RenderError as exc:
            if exc.code == "cancelled":
                raise
            if "ECG_FETCH_DEADLINE_S" in exc.message:
                raise _Failed(f"timed out after {timeout:g}s (ECG_ASSET_TIMEOUT_S)") from None
            if exc.code == "input_too_large":
                raise _Failed(exc.message.replace("input ", "", 1) + " (ECG_MAX_ASSET_BYTES)") from None
            raise _Failed(exc.message.replace("cannot download input ", "cannot download ", 1)) from None
        with open(tmp, "rb") as fh:
            return fh.read(limit + 1)
    finally:
        discard(tmp)


def _read_data_url(url: str, limit: int) -> bytes:
    meta, _, payload = url[5:].partition(",")
    try:
        if meta.lower().endswith(";base64"):
            body = base64.b64decode(urllib.parse.unquote(payload), validate=False)
        else:
            body = urllib.parse.unquote_to_bytes(payload)
    except ValueError as exc:
        raise _Failed(f"is not a valid data: URL ({exc})") from None
    if len(body) > limit:
        raise _Failed(f"is {len(body)} bytes; the limit is {limit} (ECG_MAX_ASSET_BYTES)")
    return body


def local_asset_path(url: str, settings: Settings, allow_local: bool, base_dir: str | None) -> str:
    """The file a path (or file:// URL) asset names, or _Failed (forbidden_url) when not allowed.

    ``allow_local`` (the command line, the Python API): relative to ``base_dir`` (the scenario
    file's directory), else the working directory. Otherwise (the service): the same rule as
    local video inputs, only inside ECG_LOCAL_INPUT_DIRS; a relative path needs ``base_dir``."""

    if _scheme(url) == "file":
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    else:
        path = url
    if not os.path.isabs(path):
        if base_dir is None and not allow_local:
            raise _Failed("a relative path needs a scenario file to be relative to; this service takes an "
                          "http(s) or s3 URL, or an absolute path inside ECG_LOCAL_INPUT_DIRS", "forbidden_url")
        path = os.path.join(base_dir if base_dir is not None else os.getcwd(), path)
    if not allow_local:
        try:
            return allowed_local_path(url, path, settings)
        except RenderError as exc:
            raise _Failed(exc.message.replace("local input ", "local path ", 1), exc.code) from None
    return os.path.abspath(path)


def _read_local(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            import stat

            if not stat.S_ISREG(st.st_mode):
                raise _Failed("is not a regular file")
            if st.st_size > limit:
                raise _Failed(f"is {st.st_size} bytes; the limit is {limit} (ECG_MAX_ASSET_BYTES)")
            body = fh.read(limit + 1)
    except FileNotFoundError:
        raise _Failed("no such file") from None
    except IsADirectoryError:
        raise _Failed("is a directory, not a file") from None
    except PermissionError:
        raise _Failed("cannot be read (permission denied)") from None
    except OSError as exc:
        raise _Failed(f"cannot be read: {exc.strerror or exc}") from None
    if len(body) > limit:
        raise _Failed(f"is more than {limit} bytes (ECG_MAX_ASSET_BYTES)")
    return body


def fetch_assets(sc: Scenario, settings: Settings, *, policy: NetPolicy | None = None, allow_local: bool = True,
                 base_dir: str | None = None, workdir: str | None = None,
                 cancelled: Callable[[], bool] | None = None, origin: str | None = None) -> Scenario:
    """Fetch the scenario's define fonts and images once, check them, and return the scenario with
    its define URLs rewritten to the page's made-up origin and the bytes in ``assets``.

    A scenario without define assets is returned as is. Raises RenderError (asset_failed or
    forbidden_url) naming the define key(s), the source and the problem."""
    entries = [(k, t, u) for k, t, u in asset_entries(sc.scenario) if t in LOADED_TYPES]
    if not entries:
        return sc
    origin = origin or PAGE_ORIGIN
    check_define_assets(sc.scenario)
    label = {key: asset_label(sc.scenario, key) for key, _, _ in entries}

    def named(users: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(label[k], t) for k, t in users]

    policy = policy or NetPolicy.from_settings(settings)
    limit, timeout = settings.max_asset_bytes, settings.asset_timeout_s

    # One fetch per distinct source (two keys naming the same file share it).
    sources: dict[str, list[tuple[str, str]]] = {}
    shown: dict[str, str] = {}  # each source as the messages name it
    for key, typ, url in entries:
        src = url.strip()
        if not _scheme(src) or _scheme(src) == "file":
            try:
                path = local_asset_path(src, settings, allow_local, base_dir)
            except _Failed as f:
                raise _error(f, named([(key, typ)]), _show(url)) from None
            src = "file:" + path
            shown.setdefault(src, _show(url) if url == path else f"{_show(url)} ({path})")
        shown.setdefault(src, _show(url))
        sources.setdefault(src, []).append((key, typ))
    if len(sources) > settings.max_assets:
        raise RenderError("asset_failed", f"define: {len(sources)} distinct assets (define entries and image nodes' own "
                                          f"URLs); at most {settings.max_assets} "
                                          "are allowed per job (ECG_MAX_ASSETS)")
    budget = _Budget(settings.max_assets_total_bytes)

    def fetch(src: str) -> bytes:
        if cancelled is not None and cancelled():
            raise Cancelled()
        scheme = _scheme(src)
        if scheme in ("http", "https"):
            body = _read_http(src, policy, limit, timeout, settings, cancelled or (lambda: False))
        elif scheme == "s3":
            body = _read_s3(src, settings, limit, workdir, timeout, cancelled or (lambda: False))
        elif scheme == "data":
            body = _read_data_url(src, limit)
        else:
            body = _read_local(src[len("file:"):], limit)
        budget.take(len(body), settings.max_assets_total_bytes)
        return body

    t0 = time.monotonic()
    bodies: dict[str, bytes] = {}
    with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(sources)), thread_name_prefix="asset") as pool:
        futures = {src: pool.submit(fetch, src) for src in sources}
        try:
            for src, fut in futures.items():  # in define order: the first failing key is the one named
                try:
                    bodies[src] = fut.result()
                except _Failed as f:
                    raise _error(f, named(sources[src]), shown[src]) from None
        finally:
            for fut in futures.values():
                fut.cancel()

    rewritten = copy.deepcopy(sc.scenario)
    served: dict[str, PageAsset] = {}
    for src, users in sources.items():
        body = bodies[src]
        digest = hashlib.sha256(body).hexdigest()[:32]
        for key, typ in users:
            try:
                ext, ctype = sniff(body, typ)
            except _Failed as f:
                raise _error(f, named([(key, typ)]), shown[src]) from None
            path = f"{PATH_PREFIX}{digest}.{ext}"
            asset = served.setdefault(path, PageAsset(keys=[], types=[], labels=[], source=shown[src],
                                                       content_type=ctype, body=body))
            asset.keys.append(key)
            asset.types.append(typ)
            asset.labels.append(label[key])
            rewritten["define"][key]["url"] = origin + path
            rewritten["define"][key].pop("ecgFrom", None)  # ours, for messages: not the page's
    log.info("define assets fetched", extra={"assets": len(served), "bytes": sum(len(b) for b in bodies.values()),
                                             "seconds": round(time.monotonic() - t0, 3)})
    return sc.model_copy(update={"scenario": rewritten, "assets": served})


def _show(url: str) -> str:
    """A source for messages: quoted, credentials redacted, a data: URL or a long one cut short."""
    url = url.strip()
    if _scheme(url) == "data":
        return repr(url[:40] + "...")
    shown = redact(url)
    return repr(shown if len(shown) <= 300 else shown[:300] + "...")


def _error(f: _Failed, users: list[tuple[str, str]], shown: str) -> RenderError:
    """users: (label, type) of each define asset (asset_label) that names the failed source."""
    keys = ", ".join(f"{k} ({t})" for k, t in users)
    return RenderError(f.code, f"{keys}: {shown}: {f.why}")


def page_check(expected: dict[str, PageAsset], loaded: dict[str, list[str]] | None, warnings: list[str]) -> None:
    """After the page loaded a scenario: every served asset must have been taken by the page
    (a font the browser's sanitizer refuses only logs a warning there). RenderError naming it."""
    got = {t: set(v) for t, v in (loaded or {}).items()}
    for asset in expected.values():
        for key, typ, name in zip(asset.keys, asset.types, asset.labels):
            if key not in got.get(typ + "s", set()):
                why = next((w for w in warnings if f'"{key}"' in w), "")
                raise RenderError("asset_failed", f"{name} ({typ}): {asset.source}: the browser could not load "
                                                  f"it as a {typ}" + (f" ({why[:300]})" if why else ""))


__all__ = ["asset_entries", "check_define_assets", "fetch_assets", "sniff", "page_check", "PATH_PREFIX"]
