"""The jobs page (``GET /jobs``): the queue, recent jobs and the cluster's capacity in a browser,
like Celery's Flower for this service (the Ray dashboard shows actors, not render jobs).

Three fixed files and the vendored hls.js (the live preview's player), no build step, nothing fetched from elsewhere (no CDN, no web fonts): the page
polls the API every second with the key the viewer gives, kept in sessionStorage. The files
hold no job data, so they load without a key (api._Auth lets exactly these paths through);
everything the page shows comes from the API, written into the page as text, never as HTML.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi.responses import JSONResponse, Response

_DIR = Path(__file__).parent

# URL path -> (file, media type)
_FILES = {
    "/jobs": ("index.html", "text/html; charset=utf-8"),
    "/jobs/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/jobs/page.css": ("page.css", "text/css; charset=utf-8"),
    # hls.js, for the live preview: npm's dist file, copied here by scripts/setup.sh (vendor/)
    "/jobs/hls.min.js": ("vendor/hls.min.js", "text/javascript; charset=utf-8"),
}
PAGE_FILES = frozenset(_FILES)

# Only the page's own script and style run, and it talks only to this service: an injection
# that slipped past the page's text-only writes could still neither run nor send anything out.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; media-src 'self' blob:; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",   # download links carry their signature in the query
    "Cache-Control": "no-cache",        # a new version of the service brings its page along
}


@functools.cache
def _read(name: str) -> bytes:
    return (_DIR / name).read_bytes()


def page_response(path: str) -> Response:
    """One of the page's files by its URL path; 404 (with an error_code, like every error) otherwise."""
    found = _FILES.get(path)
    if found is None:
        return JSONResponse({"error_code": "not_found", "detail": f"no page file {path!r}"}, status_code=404)
    name, media_type = found
    try:
        body = _read(name)
    except FileNotFoundError:  # hls.js not vendored (setup not run): the page works without the preview
        return JSONResponse({"error_code": "not_found", "detail": f"{name} is not installed (scripts/setup.sh)"},
                            status_code=404)
    return Response(body, media_type=media_type, headers=_HEADERS)
