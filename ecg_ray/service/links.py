"""Download links that a job id alone does not open (the local store's, like S3's presigned URLs).

A link is the download route with ``expires`` (unix seconds) and ``sig``: the hex HMAC-SHA256,
under the service's link secret, of the job id, the file's name and the expiry. Job ids are
chosen by clients (``test-001``, the platform's own ids): knowing or guessing one must not be
enough. The secret is ECG_LINK_SECRET where set, else made once and kept in the job table (a
file in ECG_STATE_DIR, or Redis), so links outlive restarts and every instance checks them alike.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode


class LinkSigner:
    def __init__(self, secret: bytes, expiry_s: int) -> None:
        self._secret = secret
        self.expiry_s = expiry_s

    def _mac(self, job_id: str, file_name: str, expires: int) -> str:
        msg = f"{job_id}\n{file_name}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def sign(self, url: str, job_id: str, file_name: str, now: float | None = None) -> str:
        """``url`` with the query that opens it until ECG_LINK_EXPIRY_S from ``now``."""
        expires = int((time.time() if now is None else now) + self.expiry_s)
        query = urlencode({"expires": expires, "sig": self._mac(job_id, file_name, expires)})
        return f"{url}{'&' if '?' in url else '?'}{query}"

    def check(self, job_id: str, file_name: str, expires: str | None, sig: str | None,
              now: float | None = None) -> str:
        """Why the link does not open the file ("" when it does)."""
        if not expires or not sig:
            return "a download link needs its signature (expires, sig): the job id alone does not open it"
        try:
            at = int(expires)
        except ValueError:
            return "the download link's expiry is not a number"
        good = hmac.compare_digest(self._mac(job_id, file_name, at).encode(), sig.encode("utf-8", "replace"))
        if not good:
            return "the download link's signature does not match"
        if at < (time.time() if now is None else now):
            return "the download link has expired (ECG_LINK_EXPIRY_S)"
        return ""
