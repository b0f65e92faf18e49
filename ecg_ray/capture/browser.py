"""A long-lived headless Chromium holding the MotionText caption page.

The page is served from memory on a made-up origin; every other request the page makes is
refused, so caption text or a scenario can never reach the network or the disk.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecg_ray.config import Settings, load_settings
from ecg_ray.errors import RenderError
from ecg_ray.scenario.assets import page_check
from ecg_ray.scenario.model import PAGE_ORIGIN
from ecg_ray.scenario.plugins import plugin_index_js

log = logging.getLogger(__name__)

ORIGIN = PAGE_ORIGIN

# One call into the page (load a scenario, seek a batch of frames, capture one PNG, a pre-roll
# chunk) takes milliseconds to about a second, even at 4K on a busy 2-core machine. A call that
# has not answered in 30 s is a browser that hangs (stopped, deadlocked, swapping to death):
# waiting longer only holds the segment. It is well inside overlay.py's 60 s guard, so the
# hang is noticed here, where the browser can be killed and the segment retried.
PAGE_CALL_TIMEOUT_S = 30.0
# After a call timed out: does the browser itself (not the page) still answer within this?
_BROWSER_PROBE_S = 5.0
# Pre-roll seeks per call (one call stays far below PAGE_CALL_TIMEOUT_S).
PREROLL_CHUNK = 500
# The tallest sheet of stacked lane rectangles captured at once (the viewport's height then).
SHEET_MAX_ROWS = 2048
WEB_DIR = Path(__file__).with_name("web")

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'none'; "
    "media-src 'none'; object-src 'none'; frame-src 'none'; worker-src 'none'; "
    "base-uri 'none'; form-action 'none'"
)

_CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-quic",
    "--mute-audio",
    "--hide-scrollbars",
    "--font-render-hinting=none",
    "--force-color-profile=srgb",
    "--disable-lcd-text",
    "--disable-gpu",
]


def chromium_args(extra: str = "") -> list[str]:
    """The launch flags: ours, then the operator's (ECG_CHROMIUM_ARGS). Asking for the GPU with
    --enable-gpu drops our --disable-gpu (software raster and compositing, the safe default)."""
    added = extra.split()
    args = [a for a in _CHROMIUM_ARGS if not (a == "--disable-gpu" and "--enable-gpu" in added)]
    args += [a for a in added if a != "--enable-gpu"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


def vendor_dir(settings: Settings) -> Path:
    """Where gsap.min.js and motiontext-renderer.js live (copied there by setup)."""
    return Path(settings.web_vendor_dir) if settings.web_vendor_dir else WEB_DIR / "vendor"


def _asset_table(settings: Settings) -> dict[str, tuple[bytes, str]]:
    vend = vendor_dir(settings)
    files = {
        "/vendor/gsap.min.js": vend / "gsap.min.js",
        "/vendor/motiontext-renderer.js": vend / "motiontext-renderer.js",
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise RenderError(
            "setup_incomplete",
            f"MotionText page assets are missing ({', '.join(missing)}); run scripts/setup.sh",
        )
    table: dict[str, tuple[bytes, str]] = {
        "/": ((WEB_DIR / "page.html").read_bytes(), "text/html; charset=utf-8"),
        "/bootstrap.js": ((WEB_DIR / "bootstrap.js").read_bytes(), "text/javascript"),
        "/plugins/index.js": (plugin_index_js().encode(), "text/javascript"),
    }
    for url, path in files.items():
        table[url] = (path.read_bytes(), "text/javascript")
    for js in sorted((WEB_DIR / "plugins").glob("*.js")):
        table[f"/plugins/{js.name}"] = (js.read_bytes(), "text/javascript")
    return table


def chromium_executable(settings: Settings) -> str | None:
    """Chromium to launch: ECG_CHROMIUM, else Playwright's own if installed, else the system's.

    None means "let Playwright use its bundled browser".
    """
    if settings.chromium:
        return settings.chromium
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache/ms-playwright"))
    if any(cache.glob("chromium*/chrome-linux*/chrome")) or any(
        cache.glob("chromium_headless_shell*/chrome-*/chrome-headless-shell")
    ):
        return None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserHung(RenderError):
    """Chromium stopped answering mid-call and was killed; the segment actor retries the segment
    on a new browser (like a browser that crashed)."""

    def __init__(self, message: str) -> None:
        super().__init__("browser_unavailable", message)

    def __reduce__(self):
        return (BrowserHung, (self.message,))


def main_browser_processes() -> list[Any]:
    """Main Chromium processes under this process (children of Playwright's driver)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            parent = child.parent()
            if "chrom" in child.name() and not (parent and "chrom" in parent.name()):
                found.append(child)
        except psutil.Error:
            continue
    return found


@dataclass
class PageStats:
    blocked_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


class CaptionPage:
    """One Chromium process and one caption page, reused across segments and jobs."""

    def __init__(self, settings: Settings | None = None) -> None:
        # The actor's settings, read once in its process (tests and tools may leave them out).
        self.settings = settings or load_settings()
        self._pw: Any = None
        self._browser: Any = None
        self._page: Any = None
        self._cdp: Any = None
        self._assets: dict[str, tuple[bytes, str]] = {}
        # The loaded scenario's define assets (fonts, images) by path: served like the page's own
        # files, replaced at every load (so a page holds one job's assets at a time).
        self._define_assets: dict[str, tuple[bytes, str]] = {}
        self.stats = PageStats()
        self._loaded_key: str | None = None
        self._proc: Any = None  # psutil.Process of the main Chromium process (to kill a hung one)
        # Start, restart and close one at a time: two concurrent starts (a health probe while a
        # job begins) would each launch a Chromium and orphan one.
        self._lifecycle = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    async def start(self) -> None:
        """Launch Chromium and load the caption page, unless that is already done."""
        async with self._lifecycle:
            if not self.alive:
                await self._start()

    async def _start(self) -> None:
        from playwright.async_api import async_playwright

        self._assets = _asset_table(self.settings)
        self._pw = await async_playwright().start()
        exe = chromium_executable(self.settings)
        args = chromium_args(self.settings.chromium_args)
        before = {p.pid for p in main_browser_processes()}
        try:
            self._browser = await self._pw.chromium.launch(
                executable_path=exe, args=args, headless=True, handle_sigint=False,
                handle_sigterm=False, handle_sighup=False,
            )
        except Exception as exc:
            await self._pw.stop()
            self._pw = None
            raise RenderError(
                "browser_unavailable",
                f"cannot start Chromium ({exe or 'playwright bundled'}): {str(exc).splitlines()[0]}",
            ) from exc
        # Playwright does not say which process it started; it is the new one under us.
        try:
            new = [p for p in main_browser_processes() if p.pid not in before]
        except Exception:  # noqa: BLE001 - only needed to kill a hung browser
            new = []
        self._proc = new[0] if len(new) == 1 else None
        if self._proc is None:
            log.warning("cannot tell which process is the new Chromium", extra={"candidates": len(new)})
        await self._new_page()

    async def _new_page(self) -> None:
        ctx = await self._browser.new_context(
            viewport={"width": 640, "height": 360},
            device_scale_factor=1,
            service_workers="block",
            java_script_enabled=True,
            accept_downloads=False,
        )
        await ctx.route("**/*", self._route)
        page = await ctx.new_page()
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.stats.console_errors.append(str(exc)[:500]))
        await page.goto(ORIGIN + "/", wait_until="load")
        await page.wait_for_function("window.__ecg && window.__ecg.ready === true", timeout=30_000)
        cdp = await ctx.new_cdp_session(page)
        await cdp.send(
            "Emulation.setDefaultBackgroundColorOverride", {"color": {"r": 0, "g": 0, "b": 0, "a": 0}}
        )
        self._page, self._cdp = page, cdp
        self._loaded_key = None

    def _on_console(self, msg: Any) -> None:
        if msg.type == "error":
            self.stats.console_errors.append(msg.text[:500])

    async def _route(self, route: Any) -> None:
        url: str = route.request.url
        if url.startswith(ORIGIN + "/"):
            path = url[len(ORIGIN):].split("?", 1)[0].split("#", 1)[0]
            asset = self._assets.get(path)
            if asset is not None:
                body, ctype = asset
                headers = {"Content-Security-Policy": _CSP, "Cache-Control": "no-store"}
                await route.fulfill(status=200, body=body, content_type=ctype, headers=headers)
                return
            asset = self._define_assets.get(path)
            if asset is not None:
                body, ctype = asset
                # Content-addressed: the path names these exact bytes, so they may be kept.
                headers = {"Cache-Control": "public, max-age=31536000, immutable",
                           "X-Content-Type-Options": "nosniff"}
                await route.fulfill(status=200, body=body, content_type=ctype, headers=headers)
                return
        self.stats.blocked_requests.append(url[:300])
        log.warning("blocked page request", extra={"url": url[:300]})
        await route.abort("blockedbyclient")

    async def ensure_alive(self) -> None:
        """Restart Chromium if it died (crash, OOM, killed): a killed browser may not have been
        noticed yet, so the page is asked for a trivial answer first."""
        async with self._lifecycle:
            if self.alive and self._page is not None and not self._page.is_closed():
                try:
                    await asyncio.wait_for(
                        self._cdp.send("Runtime.evaluate", {"expression": "1", "returnByValue": True}), timeout=10)
                    return
                except Exception:  # noqa: BLE001 - any failure here means: start a new browser
                    pass
            log.warning("chromium not alive; restarting")
            self._kill()  # dead, or alive but not answering (stopped, hung): it must not linger
            await self._close()
            await self._start()

    async def gpu_status(self) -> dict[str, str]:
        """Chromium's own account of what runs on the GPU (SystemInfo featureStatus: raster,
        gpu_compositing, ...: "enabled" or why not), for operators and the benchmarks."""
        session = await self._browser.new_browser_cdp_session()
        try:
            info = await session.send("SystemInfo.getInfo")
        finally:
            await session.detach()
        gpu = info.get("gpu", {})
        status = dict(gpu.get("featureStatus", {}))
        devices = gpu.get("devices", [])
        if devices:
            status["device"] = f"{devices[0].get('vendorString', '')} {devices[0].get('deviceString', '')}".strip()
        return status

    @property
    def pid(self) -> int | None:
        """The main Chromium process's pid (None when none is running or it is not known)."""
        return self._proc.pid if self._proc is not None else None

    async def _call(self, aw: Any, what: str) -> Any:
        """Await one call into the page; a browser that does not answer in PAGE_CALL_TIMEOUT_S is
        killed (SIGKILL: a stopped or hung process ignores a polite close) and BrowserHung raised."""
        try:
            return await asyncio.wait_for(aw, timeout=PAGE_CALL_TIMEOUT_S)
        except asyncio.TimeoutError:
            pass
        page_only = await self._browser_answers()
        log.error("caption page call timed out; killing Chromium",
                  extra={"what": what, "timeout_s": PAGE_CALL_TIMEOUT_S, "browser_answers": page_only,
                         "pid": self.pid})
        await self.kill()
        if page_only:
            # The browser answers but the page does not: a script that never returns (the same
            # again on a retry). The browser is restarted for the next segment all the same.
            raise RenderError("scenario_error", f"caption page did not answer within {PAGE_CALL_TIMEOUT_S:.0f}s "
                                                f"({what}); the browser was restarted")
        raise BrowserHung(f"Chromium stopped answering for {PAGE_CALL_TIMEOUT_S:.0f}s ({what}); it was killed")

    async def _browser_answers(self) -> bool:
        """True if the browser process (as opposed to the page) answers a trivial CDP call."""
        browser = self._browser
        if browser is None or not browser.is_connected():
            return False
        try:
            import psutil

            if self._proc is not None and self._proc.status() == psutil.STATUS_STOPPED:
                return False  # stopped (SIGSTOP, a debugger): it cannot answer, no need to ask
        except Exception:  # noqa: BLE001 - gone or unknown: ask it
            pass

        async def probe() -> None:
            session = await browser.new_browser_cdp_session()
            await session.send("Browser.getVersion")
            await session.detach()

        try:
            await asyncio.wait_for(probe(), timeout=_BROWSER_PROBE_S)
            return True
        except Exception:  # noqa: BLE001 - a timeout or a dead connection: not answering
            return False

    async def kill(self) -> None:
        """Kill Chromium at once (no polite close: it may be stopped or hung) and forget it;
        the next ``ensure_alive`` starts a new one."""
        async with self._lifecycle:
            self._kill()
            await self._close()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        import psutil

        try:
            # is_running also guards against the pid having been reused by another process
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                return
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return
        try:
            # Playwright starts Chromium as a process group leader: its helpers go with it.
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        for p in procs:  # and any helper in another group
            try:
                p.kill()  # psutil checks the process is still the one it was (no pid reuse)
            except psutil.Error:
                pass
        log.warning("chromium killed", extra={"pid": proc.pid, "processes": len(procs)})

    async def load(self, scenario: dict, width: int, height: int, fps: float,
                   assets: dict[str, Any] | None = None, lanes: int = 1) -> list[str]:
        """Load a (normalized v2.0) scenario at the output size. Returns renderer warnings.

        ``lanes``: how many renderers the page holds, each seeked on its own run of frames
        (``advance_lanes``) and captured together in one sheet (``arrange``, ``capture``).

        ``assets`` (``Scenario.assets``: path -> PageAsset) are the scenario's fetched define
        fonts and images, answered from memory while this scenario is loaded; the page has them
        all loaded (fonts ready, images decoded) before this returns, else RenderError
        ("asset_failed") names the one it could not take."""
        key = json.dumps([scenario, width, height, fps, lanes], sort_keys=True)
        self._define_assets = {path: (a.body, a.content_type) for path, a in (assets or {}).items()}
        # A sheet of several lanes' boxes may be taller than the frame: the viewport holds it
        # (the stages keep the frame's size, so the captions' layout does not change).
        view_h = height if lanes <= 1 else max(height, SHEET_MAX_ROWS)
        await self._call(self._page.set_viewport_size({"width": width, "height": view_h}), "set viewport")
        opts = {"width": width, "height": height, "fps": fps, "lanes": lanes}
        res = await self._eval(
            f"window.__ecg.load({json.dumps(scenario)}, {json.dumps(opts)})",
            await_promise=True, what="load scenario",
        )
        warnings = list(res.get("warnings", [])) if isinstance(res, dict) else []
        if assets:
            page_check(assets, res.get("assets") if isinstance(res, dict) else None, warnings)
        self._loaded_key = key
        return warnings

    async def _eval(self, expression: str, await_promise: bool = False, what: str = "evaluate") -> Any:
        res = await self._call(self._cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        ), what)
        if "exceptionDetails" in res:
            det = res["exceptionDetails"]
            text = det.get("exception", {}).get("description") or det.get("text", "error")
            raise RenderError("scenario_error", f"caption page error: {str(text).splitlines()[0][:300]}")
        return res.get("result", {}).get("value")

    async def seek(self, t: float) -> tuple[str, tuple[float, float, float, float] | None, bool]:
        """Seek to ``t``: (DOM hash, drawn box or None, unchanged since the previous seek).

        When unchanged, the box is not measured (None) and the previous frame's answer holds.
        """
        # (a promise when a picture shows for the first time: answered once it is painted)
        h, box, unchanged = await self._eval(f"window.__ecg.seek({t!r})", await_promise=True, what=f"seek {t:.3f}s")
        return h, (tuple(box) if box else None), bool(unchanged)

    async def advance(self, times: list[float], force_first: bool = False) -> tuple[int, tuple | None]:
        """Seek through ``times`` until the drawing changes: (index of that frame, its box)."""
        what = f"advance {times[0]:.3f}-{times[-1]:.3f}s" if times else "advance"
        i, box = await self._eval(f"window.__ecg.advance({json.dumps(times)}, {json.dumps(force_first)})",
                                  await_promise=True, what=what)
        return int(i), (tuple(box) if box else None)

    async def advance_lanes(self, specs: list[tuple[int, list[float], bool]]) -> list[tuple[int, tuple | None]]:
        """``advance`` for several lanes in one round trip: [(lane, times, force_first), ...] ->
        [(index of the changed frame or len(times), its box), ...] in the same order."""
        got = await self._eval(f"window.__ecg.advanceLanes({json.dumps(specs)})", await_promise=True,
                               what=f"advance {len(specs)} lanes")
        return [(int(i), (tuple(box) if box else None)) for i, box in got]

    async def arrange(self, places: list[tuple[int, int, int, int, int, int]]) -> None:
        """Stack lanes' rectangles for one capture: [(lane, x, y, w, h, top), ...] shows rect
        (x, y, w, h) of that lane's stage at page (0, top); the other lanes are hidden."""
        await self._eval(f"window.__ecg.arrange({json.dumps(places)})", what="arrange lanes")

    async def preroll(self, times: list[float], lane: int = 0) -> None:
        # Chunked so one evaluate never carries an unbounded list (nor runs near PAGE_CALL_TIMEOUT_S).
        for i in range(0, len(times), PREROLL_CHUNK):
            await self._eval(f"window.__ecg.preroll({json.dumps(times[i:i + PREROLL_CHUNK])}, {lane})",
                             what="pre-roll")

    async def capture(self, clip: tuple[int, int, int, int]) -> bytes:
        x, y, w, h = clip
        res = await self._call(self._cdp.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "optimizeForSpeed": True,
                "fromSurface": True,
                "captureBeyondViewport": False,
                "clip": {"x": x, "y": y, "width": w, "height": h, "scale": 1},
            },
        ), f"capture {w}x{h}")
        return base64.b64decode(res["data"])

    async def close(self) -> None:
        async with self._lifecycle:
            await self._close()

    async def _close(self) -> None:
        proc = self._proc
        for closer in (
            lambda: self._browser.close() if self._browser else None,
            lambda: self._pw.stop() if self._pw else None,
        ):
            try:
                coro = closer()
                if coro is not None:
                    await asyncio.wait_for(coro, timeout=10)
            except Exception:  # noqa: BLE001 - best effort teardown of a possibly dead browser
                pass
        # A browser that did not close politely (stopped, hung) is killed rather than left behind.
        self._proc = proc
        self._kill()
        self._browser = self._pw = self._page = self._cdp = None
