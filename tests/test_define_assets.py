"""Define assets (fonts, images): fetched once per job on the driver, served to the page from
memory, drawn where the scenario puts them; every failure names its define key (or the image
node whose src named the asset itself).

Real Chromium, FFmpeg and Ray; assets come from a real HTTP server on loopback (loopback is
allowed by the default URL policy), from files next to a scenario file (the command line), or
are refused (link-local, metadata, wrong type, too large, too slow).
"""

from __future__ import annotations

import collections
import http.server
import io
import json
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from ecg_ray import RenderError, RenderOptions
from ecg_ray.config import Settings
from ecg_ray.scenario.assets import fetch_assets, sniff
from ecg_ray.scenario.normalize import normalize

from .conftest import leftover_processes

DATA = Path(__file__).parent / "data"
FONT = (DATA / "block.ttf").read_bytes()   # every ASCII glyph a solid block (tests/data/make_test_assets.py)
MAGENTA = (255, 0, 255)
W, H, FPS, FRAMES = 320, 240, 25, 100


def png(width: int, height: int, rgb=MAGENTA) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), rgb).save(buf, "PNG")
    return buf.getvalue()


LOGO = png(16, 16)


class _Server:
    """A loopback HTTP server with fixed routes; counts the GETs of each path."""

    def __init__(self) -> None:
        self.hits: collections.Counter[str] = collections.Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # noqa: D401 - quiet
                pass

            def do_GET(self):  # noqa: N802
                server.hits[self.path] += 1
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                route(self)

        self.routes = {
            "/block.ttf": lambda h: self._send(h, FONT, "font/ttf"),
            "/logo.png": lambda h: self._send(h, LOGO, "image/png"),
            "/big.ttf": lambda h: self._send(h, FONT + b"\0" * 50_000, "font/ttf"),
            "/big-unsized.ttf": lambda h: self._send(h, FONT + b"\0" * 50_000, "font/ttf", length=False),
            "/page.html": lambda h: self._send(h, b"<!doctype html><html><body>Not found, sorry</body></html>",
                                               "font/ttf"),
            "/slow.ttf": self._slow_headers,
            "/drip.ttf": self._drip,
            "/to-metadata": lambda h: self._redirect(h, "http://169.254.169.254/latest/meta-data/"),
            "/broken.ttf": lambda h: self._send(h, b"\x00\x01\x00\x00" + b"\xff" * 200, "font/ttf"),
        }
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def _send(h, body: bytes, ctype: str, length: bool = True) -> None:
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        if length:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    @staticmethod
    def _redirect(h, to: str) -> None:
        h.send_response(302)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()

    @staticmethod
    def _slow_headers(h) -> None:
        time.sleep(4)
        try:
            _Server._send(h, FONT, "font/ttf")
        except OSError:  # the client gave up long ago, as it should
            pass

    @staticmethod
    def _drip(h) -> None:
        # Headers at once, then the body a few bytes at a time: every read answers quickly, the
        # whole download does not.
        body = FONT
        h.send_response(200)
        h.send_header("Content-Type", "font/ttf")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            for i in range(0, len(body), 64):
                h.wfile.write(body[i:i + 64])
                h.wfile.flush()
                time.sleep(0.25)
        except OSError:  # the client gave up, as it should
            pass

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture(scope="module")
def gray_video(media_dir) -> Path:
    """4 s of flat dark gray, 320x240 @ 25 fps: whatever is bright or magenta is an overlay."""
    from ecg_ray.media import ffmpeg

    p = media_dir / "gray.mp4"
    if not p.exists():
        proc = ffmpeg.popen(["-loglevel", "error", "-f", "lavfi", "-i", f"color=c=0x404040:s={W}x{H}:r={FPS}:d=4",
                             "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", str(p)])
        assert proc.wait(timeout=60) == 0
    return p


def scenario(font_url: str, logo_url: str | None = None) -> dict:
    """A block-font line at the bottom all the time, and the logo (when given) filling a box at
    x 40-120, y 42-102 (of 320x240) from 0.4 s to 3 s (frames 10-74)."""
    children = [{"id": "txt", "eType": "text", "text": "IIII", "displayTime": [0, 4],
                 "style": {"fontFamily": "blk", "fontSizeRel": 0.15, "color": "#ffffff"},
                 "layout": {"position": {"x": 0.5, "y": 0.75}, "anchor": "cc"}}]
    define: dict = {"blk": {"type": "font", "url": font_url}}
    if logo_url is not None:
        define["logo"] = {"type": "image", "url": logo_url}
        children.insert(0, {"id": "img", "eType": "image", "src": "define.logo", "displayTime": [0.4, 3.0],
                            "layout": {"position": {"x": 0.25, "y": 0.3}, "anchor": "cc",
                                       "size": {"width": 0.25, "height": 0.25}}})
    return {"version": "2.0", "timebase": {"unit": "seconds"}, "stage": {"baseAspect": "auto"}, "define": define,
            "tracks": [{"id": "t", "type": "free", "layer": 1}],
            "cues": [{"id": "c", "track": "t", "root": {"id": "g", "eType": "group", "displayTime": [0, 4],
                                                      "children": children}}]}


def rgb_frames(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def magenta(frame: np.ndarray) -> np.ndarray:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return (r > 180) & (b > 180) & (g < 90)


def text_fill(frame: np.ndarray) -> float:
    """Share of bright pixels inside the bounding box of the bright pixels of the text band: a
    row of solid blocks fills most of its box, letters of any ordinary font a third at most."""
    band = frame[150:230].astype(int).min(axis=2) > 200
    ys, xs = np.nonzero(band)
    if len(xs) == 0:
        return 0.0
    box = band[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return float(box.mean())


@pytest.fixture
def tight(renderer, monkeypatch, tmp_path):
    """The renderer with small asset limits and its own temp directory (checked empty after)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    s = renderer.settings.model_copy(update=dict(max_asset_bytes=20_000, asset_timeout_s=1.0, tmp_dir=str(tmp)))
    monkeypatch.setattr(renderer, "settings", s)
    yield renderer
    assert list(tmp.iterdir()) == [], "temp files left"
    assert leftover_processes(allowed_browsers=len(renderer.actors)) == []


# -- end to end ---------------------------------------------------------------------------------

def render_fetching_once(renderer, server, video, sc: dict, out: Path, segments: int) -> list[np.ndarray]:
    """Render ``sc`` in ``segments`` segments; the font and the logo must have been fetched once
    for the job (not once per segment or actor). The output's frames."""
    server.hits.clear()
    res = renderer.render(str(video), sc, str(out), RenderOptions(segments=segments))
    assert res.segments == segments and res.frames == FRAMES
    assert server.hits == {"/block.ttf": 1, "/logo.png": 1}
    frames = rgb_frames(out)
    assert len(frames) == FRAMES
    return frames


def test_font_and_image_from_http_drawn_in_every_segment(renderer, server, gray_video, out_dir):
    sc = scenario(server.base + "/block.ttf", server.base + "/logo.png")
    frames = render_fetching_once(renderer, server, gray_video, sc, out_dir / "assets.mp4", 3)
    for n, f in enumerate(frames):
        m = magenta(f)
        if 10 <= n < 75:
            # the logo fills its box (x 40-120, y 42-102), and nothing magenta is elsewhere
            assert m[50:95, 48:112].mean() > 0.98, n
            assert m[:, 130:].sum() == 0 and m[110:].sum() == 0, n
        else:
            assert m.sum() == 0, n
        # The block font from the first frame of every segment on (frames 0, 33 and 66 start
        # segments): a font that loaded late would show the fallback font's thin letters there.
        assert text_fill(f) > 0.75, (n, text_fill(f))
    ref = frames[0][150:230].astype(int)
    for n, f in enumerate(frames):
        assert np.abs(f[150:230].astype(int) - ref).mean() < 3, n  # the same drawing in every segment
    assert leftover_processes(allowed_browsers=len(renderer.actors)) == []


def test_cli_takes_asset_paths_relative_to_the_scenario_file(renderer, gray_video, tmp_path, monkeypatch, capsys):
    """``ecg-render render`` with define assets next to the scenario file, run from elsewhere."""
    from ecg_ray import cli
    from ecg_ray.rendering import renderer as renderer_module

    proj = tmp_path / "project"
    (proj / "fonts").mkdir(parents=True)
    (proj / "images").mkdir()
    (proj / "fonts" / "block.ttf").write_bytes(FONT)
    (proj / "images" / "logo.png").write_bytes(LOGO)
    sc_file = proj / "captions.json"
    sc_file.write_text(json.dumps(scenario("fonts/block.ttf", "images/logo.png")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    class Shared:
        """The test's warm renderer in place of a new pool (the CLI closes what it made)."""

        def __init__(self, *a, **kw):
            self.settings = renderer.settings

        def slots(self):
            return renderer.slots()

        def render(self, *a, **kw):
            return renderer.render(*a, **kw)

        def close(self):
            pass

    monkeypatch.setattr(renderer_module, "Renderer", Shared)
    out = tmp_path / "cli.mp4"
    assert cli.main(["render", str(gray_video), str(sc_file), "-o", str(out), "--segments", "1", "-q"]) == 0
    frames = rgb_frames(out)
    assert magenta(frames[40])[50:95, 48:112].mean() > 0.98
    assert text_fill(frames[5]) > 0.75

    # a missing file: exit code 2 and one line naming the key and the path
    sc_file.write_text(json.dumps(scenario("fonts/block.ttf", "images/nope.png")))
    capsys.readouterr()
    assert cli.main(["render", str(gray_video), str(sc_file), "-o", str(tmp_path / "x.mp4"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "error: asset_failed: define.logo (image): 'images/nope.png'" in err
    assert str(proj / "images" / "nope.png") in err and "no such file" in err


@pytest.mark.parametrize("path,code,words", [
    ("/missing.ttf", "asset_failed", ["HTTP 404"]),
    ("/big.ttf", "asset_failed", ["is 54224 bytes; the limit is 20000", "ECG_MAX_ASSET_BYTES"]),
    ("/big-unsized.ttf", "asset_failed", ["more than 20000 bytes"]),
    ("/page.html", "asset_failed", ["is not a font", "an HTML page"]),
    ("/slow.ttf", "asset_failed", ["timed out after 1s", "ECG_ASSET_TIMEOUT_S"]),
    ("/drip.ttf", "asset_failed", ["timed out after 1s"]),
    ("/to-metadata", "forbidden_url", ["169.254.169.254", "refused network"]),
    ("http://169.254.169.254/latest/meta-data/", "forbidden_url", ["169.254.0.0/16"]),
    ("http://2852039166/", "forbidden_url", ["169.254.169.254"]),   # the metadata address in decimal
    ("http://[fd00:ec2::254]/", "forbidden_url", ["fd00:ec2::254"]),
])
def test_a_bad_asset_fails_the_job_naming_its_key(tight, server, gray_video, out_dir, path, code, words):
    url = path if path.startswith("http") else server.base + path
    t0 = time.monotonic()
    with pytest.raises(RenderError) as ei:
        tight.render(str(gray_video), scenario(url, server.base + "/logo.png"), str(out_dir / "x.mp4"))
    took = time.monotonic() - t0
    e = ei.value
    assert e.code == code, e
    assert e.message.startswith(f"define.blk (font): {url!r}: "), e.message
    for w in words:
        assert w in e.message, e.message
    assert took < 10, took  # ECG_ASSET_TIMEOUT_S=1 bounds the slow ones (plus probing the input)
    assert not (out_dir / "x.mp4").exists()


def test_a_font_the_browser_refuses_fails_the_job(tight, server, gray_video, out_dir):
    """TrueType magic with garbage after it passes the sniffing; Chromium's font sanitizer refuses
    it when the page loads the scenario: the segment fails with the key, not a silent fallback."""
    with pytest.raises(RenderError) as ei:
        tight.render(str(gray_video), scenario(server.base + "/broken.ttf"), str(out_dir / "x.mp4"),
                     RenderOptions(segments=1))
    assert ei.value.code == "asset_failed"
    assert ei.value.message.startswith(f"define.blk (font): {server.base + '/broken.ttf'!r}: the browser could "
                                       "not load it as a font"), ei.value.message


def _own_src_scenario(base: str, first: str) -> dict:
    """scenario() with the logo named by the image node's own src (``first``), and a second logo
    at x 200-280 named through a define string (not an asset entry) holding the same URL."""
    sc = scenario(base + "/block.ttf", base + "/logo.png")
    del sc["define"]["logo"]
    sc["define"]["logoUrl"] = base + "/logo.png"
    children = sc["cues"][0]["root"]["children"]
    children[0]["src"] = first
    second = json.loads(json.dumps(children[0]))
    second.update(id="img2", src="define.logoUrl")
    second["layout"]["position"]["x"] = 0.75
    children.insert(1, second)
    return sc


def test_an_image_nodes_own_url_is_fetched_like_a_define_image(renderer, server, gray_video, out_dir):
    """The page reaches no network, so an image node whose src is a URL of its own (directly or
    through a define string) would draw nothing: it is fetched with the job's define assets,
    once per URL, and drawn in every segment."""
    sc = _own_src_scenario(server.base, server.base + "/logo.png")
    frames = render_fetching_once(renderer, server, gray_video, sc, out_dir / "own-src.mp4", 2)
    for n, f in enumerate(frames):
        m = magenta(f)
        if 10 <= n < 75:
            assert m[50:95, 48:112].mean() > 0.98, n     # the node's own URL
            assert m[50:95, 208:272].mean() > 0.98, n    # the define string
            assert m[:, 130:190].sum() == 0 and m[110:].sum() == 0, n
        else:
            assert m.sum() == 0, n
    assert leftover_processes(allowed_browsers=len(renderer.actors)) == []


def test_an_image_nodes_own_url_that_fails_names_the_node(tight, server, gray_video, out_dir):
    with pytest.raises(RenderError) as ei:
        tight.render(str(gray_video), _own_src_scenario(server.base, server.base + "/nope.png"), str(out_dir / "x.mp4"))
    e = ei.value
    assert e.code == "asset_failed", e
    assert e.message.startswith(f"cues[0].root.children[0].src (image): {server.base + '/nope.png'!r}: HTTP 404"), \
        e.message
    page = _refused(fetch_assets, normalize(_own_src_scenario(server.base, server.base + "/page.html")), Settings())
    assert page.message.startswith("cues[0].root.children[0].src (image): ") and "is not a PNG, JPEG, GIF or WebP image" in page.message
    assert not (out_dir / "x.mp4").exists()
    # its shape is checked at submission, like a define entry's
    e = _refused(normalize, _own_src_scenario(server.base, "gopher://host/a.png"))
    assert e.code == "invalid_scenario", e
    assert e.message.startswith("cues[0].root.children[0].src: URL scheme 'gopher' is not allowed"), e.message
    # normalized again (as a scenario passed on is): the same assets, none added
    once = normalize(_own_src_scenario(server.base, server.base + "/logo.png")).scenario
    assert normalize(once).scenario["define"] == once["define"]
    assert [k for k in once["define"] if k.startswith("ecg-src-")] == ["ecg-src-0", "ecg-src-1"]  # one a node
    # a path is the command line's (next to the scenario file); the service refuses it by name
    e = _refused(fetch_assets, normalize(_own_src_scenario(server.base, "/etc/passwd")), Settings(), allow_local=False)
    assert e.message.startswith("cues[0].root.children[0].src (image): '/etc/passwd'"), e.message


def test_the_page_still_refuses_everything_else(server):
    """Only the job's fetched assets are served: an image node pointing at a URL of its own that
    was not fetched (put there after fetch_assets) is refused inside the page."""
    import asyncio

    from ecg_ray.capture.browser import CaptionPage

    sc = scenario(server.base + "/block.ttf", server.base + "/logo.png")
    ready = fetch_assets(normalize(sc), Settings())
    ready.scenario["cues"][0]["root"]["children"][0]["src"] = server.base + "/logo.png?direct"
    server.hits.clear()

    async def run():
        page = CaptionPage()
        await page.start()
        try:
            await page.load(ready.scenario, W, H, FPS, ready.assets)
            await page.seek(1.0)
            await asyncio.sleep(0.5)
            return list(page.stats.blocked_requests), list(page.stats.console_errors)
        finally:
            await page.close()

    blocked, errors = asyncio.run(run())
    direct = server.base + "/logo.png?direct"
    # refused by the page's CSP (img-src 'self') or, failing that, by its request router
    assert any(direct in e for e in blocked + errors), (blocked, errors)
    assert server.hits == {}  # the page itself never reached the server


# -- fetching rules, without a render -----------------------------------------------------------

def _refused(fn, *a, **kw) -> RenderError:
    with pytest.raises(RenderError) as ei:
        fn(*a, **kw)
    return ei.value


def test_submission_checks_only_the_shape():
    ok = scenario("https://fonts.example.invalid/a.woff2", "s3://bucket/logo.png")
    normalize(ok)  # no DNS, no fetch: an unresolvable host is fine until the job runs
    for url, words in [("ftp://host/a.ttf", "scheme 'ftp' is not allowed"), ("", "not empty"),
                       ("http:///a.ttf", "not a valid http URL"), ("s3://bucket", "s3://bucket/key"),
                       ("define.other.url", "literal")]:
        sc = scenario(url)
        sc["define"]["other"] = {"url": "fonts/a.ttf"}
        e = _refused(normalize, sc)
        assert e.code == "invalid_scenario" and e.message.startswith("define.blk.url: "), e.message
        assert words in e.message, e.message


def test_service_rule_for_local_paths(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "block.ttf").write_bytes(FONT)
    (tmp_path / "outside.ttf").write_bytes(FONT)
    s = Settings(local_input_dirs=str(allowed))
    got = fetch_assets(normalize(scenario(str(allowed / "block.ttf"))), s, allow_local=False)
    assert [a.body for a in got.assets.values()] == [FONT]
    got = fetch_assets(normalize(scenario("file://" + str(allowed / "block.ttf"))), s, allow_local=False)
    assert len(got.assets) == 1
    for url, words in [("block.ttf", "relative path needs a scenario file"),
                       (str(tmp_path / "outside.ttf"), "outside the allowed input directories"),
                       (str(allowed / ".." / "outside.ttf"), "outside the allowed input directories")]:
        e = _refused(fetch_assets, normalize(scenario(url)), s, allow_local=False)
        assert e.code == "forbidden_url" and e.message.startswith("define.blk (font): "), e.message
        assert words in e.message, e.message
    e = _refused(fetch_assets, normalize(scenario(str(allowed / "block.ttf"))), Settings(), allow_local=False)
    assert e.code == "forbidden_url" and "ECG_LOCAL_INPUT_DIRS is empty" in e.message


def test_limits_on_count_and_total(tmp_path):
    for i in range(3):
        (tmp_path / f"f{i}.ttf").write_bytes(FONT + bytes([i]))
    sc = scenario("f0.ttf")
    sc["define"].update({f"k{i}": {"type": "font", "url": f"f{i}.ttf"} for i in (1, 2)})
    sc["define"]["again"] = {"type": "font", "url": "f0.ttf"}  # the same file twice: fetched once
    got = fetch_assets(normalize(sc), Settings(), base_dir=str(tmp_path))
    assert len(got.assets) == 3
    assert sorted(k for a in got.assets.values() for k in a.keys) == ["again", "blk", "k1", "k2"]
    e = _refused(fetch_assets, normalize(sc), Settings(max_assets=2), base_dir=str(tmp_path))
    assert e.code == "asset_failed" and "3 distinct assets" in e.message and "at most 2 " in e.message
    e = _refused(fetch_assets, normalize(sc), Settings(max_assets_total_bytes=2 * len(FONT) + 10),
                 base_dir=str(tmp_path))
    assert e.code == "asset_failed" and "ECG_MAX_ASSETS_TOTAL_BYTES" in e.message


def test_data_urls_are_checked_and_served_like_the_others():
    import base64

    sc = scenario("data:font/ttf;base64," + base64.b64encode(FONT).decode(),
                  "data:image/png;base64," + base64.b64encode(LOGO).decode())
    got = fetch_assets(normalize(sc), Settings())
    assert sorted(a.content_type for a in got.assets.values()) == ["font/ttf", "image/png"]
    assert all(d["url"].startswith("https://captions.ecg-ray.invalid/define-assets/")
               for d in got.scenario["define"].values())
    e = _refused(fetch_assets, normalize(scenario("data:font/ttf;base64," + base64.b64encode(LOGO).decode())),
                 Settings())
    assert e.code == "asset_failed" and "is not a font" in e.message and "a PNG image" in e.message


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_sniffing():
    from PIL import Image

    from ecg_ray.scenario.assets import _Failed

    assert sniff(FONT, "font") == ("ttf", "font/ttf")
    assert sniff(b"wOF2" + b"\0" * 40, "font") == ("woff2", "font/woff2")
    assert sniff(b"OTTO" + b"\0" * 40, "font") == ("otf", "font/otf")
    assert sniff(LOGO, "image") == ("png", "image/png")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    gif = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(gif, "GIF", save_all=True, duration=100, loop=0,
                                               append_images=[Image.new("RGB", (4, 4), (0, 0, 255))])
    for body, typ, words in [
        (svg, "image", "SVG"),
        (gif.getvalue(), "image", "animated GIF"),
        (_png_header_only(5000, 5000), "image", "5000x5000 pixels"),
        (FONT, "image", "a TTF font"),
        (LOGO, "font", "a PNG image"),
        (b"", "font", "an empty file"),
        (b"BM" + b"\0" * 60, "image", "BMP"),
    ]:
        with pytest.raises(_Failed) as ei:
            sniff(body, typ)
        assert words in ei.value.why, (words, ei.value.why)


def test_no_define_assets_no_change():
    sc = normalize({"version": "1.3", "cues": [{"start": 0, "end": 1, "text": "hi"}]})
    assert fetch_assets(sc, Settings()) is sc


def test_s3_assets_come_through_storage(s3_server, monkeypatch, tmp_path):
    from .s3util import aws_env

    aws_env(monkeypatch)
    bucket = s3_server.create_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="brand/block.ttf", Body=FONT)
    s3_server.client().put_object(Bucket=bucket, Key="brand/big.png", Body=png(300, 300) + b"\0" * 30_000)
    s = Settings(s3_endpoint_url=s3_server.endpoint_url, tmp_dir=str(tmp_path))
    got = fetch_assets(normalize(scenario(f"s3://{bucket}/brand/block.ttf")), s, allow_local=False)
    assert [a.body for a in got.assets.values()] == [FONT]
    e = _refused(fetch_assets, normalize(scenario(f"s3://{bucket}/brand/none.ttf")), s)
    assert e.code == "asset_failed" and e.message.startswith(f"define.blk (font): 's3://{bucket}/brand/none.ttf': ")
    assert "no such object" in e.message, e.message
    e = _refused(fetch_assets, normalize(scenario(f"s3://{bucket}/brand/block.ttf", f"s3://{bucket}/brand/big.png")),
                 s.model_copy(update=dict(max_asset_bytes=20_000)))
    assert e.code == "asset_failed" and e.message.startswith("define.logo (image): ") and "limit is 20000" in e.message
    assert os.listdir(tmp_path) == []  # no download left behind


def test_a_cancel_ends_a_define_asset_fetch_within_two_seconds():
    """A font URL whose server drips its body (each byte inside the read timeout, the whole far
    inside ECG_ASSET_TIMEOUT_S): a cancel of the job ends the fetch at once."""
    from ecg_ray.errors import Cancelled
    from ecg_ray.sources.urls import NetPolicy

    from .dripserver import dripping_server

    with dripping_server() as drip:
        t_cancel = time.monotonic() + 1.0
        t0 = time.monotonic()
        with pytest.raises(RenderError) as ei:
            fetch_assets(normalize(scenario(f"{drip}/drip/1/0.2/nolength")), Settings(asset_timeout_s=60.0),
                         policy=NetPolicy(allow=["127.0.0.1/32"]), cancelled=lambda: time.monotonic() > t_cancel)
        took = time.monotonic() - t0
    assert isinstance(ei.value, Cancelled) and ei.value.code == "cancelled", ei.value
    assert took < 3.0, took  # the cancel came after 1 s
