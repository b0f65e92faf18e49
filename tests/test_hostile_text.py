"""Caption text is only ever text: HTML/script is drawn literally, nothing runs, no request
leaves the caption page."""

from __future__ import annotations

import asyncio
import http.server
import threading

import pytest

from ecg_ray.capture.browser import CaptionPage
from ecg_ray.scenario.normalize import normalize

from .frames import caption_mask


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def trap_server():
    _Recorder.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", _Recorder.hits
    srv.shutdown()


def hostile_texts(base: str) -> list[str]:
    return [
        f'<img src="{base}/img" onerror="fetch(\'{base}/onerror\')">',
        f"<script>fetch('{base}/script');document.title='pwned'</script>",
        f'<style>body{{background:url({base}/css)}}</style><b>bold?</b>',
        f'<iframe src="{base}/frame"></iframe> & &amp; &lt;',
    ]


def test_html_in_captions_is_drawn_as_text(trap_server):
    base, hits = trap_server
    texts = hostile_texts(base)
    sc = normalize({"version": "1.3", "cues": [{"start": i, "end": i + 1, "text": t} for i, t in enumerate(texts)]},
                   16 / 9)

    async def run():
        page = CaptionPage()
        await page.start()
        try:
            await page.load(sc.scenario, 1280, 720, 25)
            seen = []
            for i in range(len(texts)):
                h, box, _ = await page.seek(i + 0.5)
                assert h and box is not None
                seen.append(await page._eval(
                    "Array.from(document.querySelectorAll('#stage [data-effects-root]')).map(e => e.textContent).join(' ')"))
                elements = await page._eval(
                    "document.querySelectorAll('#stage img, #stage script, #stage style, #stage iframe, #stage b').length")
                assert elements == 0
            title = await page._eval("document.title")
            await asyncio.sleep(0.5)
            return seen, title, list(page.stats.blocked_requests)
        finally:
            await page.close()

    seen, title, blocked = asyncio.run(run())
    # (long lines are wrapped onto several text nodes: compare without the breaks)
    assert ["".join(s.split()) for s in seen] == ["".join(t.split()) for t in texts]
    assert title != "pwned"
    assert blocked == []       # nothing even tried to load
    assert hits == []


def test_page_requests_other_than_its_own_are_blocked(trap_server):
    """Defence in depth: even script running in the page gets no network (CSP + routing)."""
    base, hits = trap_server
    sc = normalize({"version": "1.3", "cues": [{"start": 0, "end": 2, "text": "net"}]})

    async def run():
        page = CaptionPage()
        await page.start()
        try:
            await page.load(sc.scenario, 640, 360, 25)
            await page._eval(f"""(() => {{
                const img = new Image(); img.src = "{base}/img"; document.body.appendChild(img);
                fetch("{base}/fetch").catch(() => {{}});
                try {{ const x = new XMLHttpRequest(); x.open("GET", "{base}/xhr"); x.send(); }} catch (e) {{}}
                try {{ new WebSocket("{base.replace('http', 'ws')}/ws"); }} catch (e) {{}}
                const own = new Image(); own.src = "/not-an-asset.png"; document.body.appendChild(own);
                return 1; }})()""")
            await asyncio.sleep(1.5)
            return list(page.stats.blocked_requests)
        finally:
            await page.close()

    blocked = asyncio.run(run())
    assert hits == []
    # A same-origin request for something that is not a page asset reaches the router and is refused.
    assert any(u.endswith("/not-an-asset.png") for u in blocked), blocked


def test_hostile_text_renders_end_to_end(renderer, numbered, trap_server, tmp_path):
    base, hits = trap_server
    texts = hostile_texts(base)
    sc = {"version": "1.3", "cues": [{"start": 0.4 + 0.8 * i, "end": 0.4 + 0.8 * (i + 1), "text": t}
                                     for i, t in enumerate(texts)]}
    out = tmp_path / "hostile.mp4"
    renderer.render(str(numbered), sc, str(out))
    mask = caption_mask(out, numbered)
    missing = [n for n in range(10, 90) if not mask[n]]
    assert missing == []  # the text itself is drawn on every cue frame
    assert hits == []
