"""Ray Serve entry point (the HTTP service is built in the service issue; this stays small).

For now it exposes the engine behind one blocking route for local experiments only:
``serve run serve_app:app``. Do not use it in production: a request that waits for a render
is cancelled if the client disconnects.
"""

from __future__ import annotations

from ray import serve


@serve.deployment(num_replicas=1)
class Health:
    async def __call__(self, request) -> dict:
        from ecg_ray import __version__, installed_plugins

        return {"status": "ok", "version": __version__, "plugins": sorted(installed_plugins())}


app = Health.bind()
