"""Start the ecg_ray render service on Ray Serve.

    python serve_app.py [--host 0.0.0.0] [--port 8090] [--address auto]
    serve run serve_app:app            # the Ray way, with the same settings from the environment
    serve deploy serve_config.yaml     # on a running cluster (see docs/operations.md)

Settings come from the environment (README "Configuration").
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from ecg_ray.service.api import build_app

app = build_app()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in containers)")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--address", default=None,
                    help="Ray cluster to join (e.g. auto); default: RAY_ADDRESS, else a new local Ray")
    args = ap.parse_args(argv)

    import ray
    from ray import serve

    from ecg_ray.config import SERVE_LOGGING, apply_serve_env, public_base_url_for
    from ecg_ray.logs import setup_logging
    from ecg_ray.rendering.cluster import ensure_ray

    setup_logging()
    apply_serve_env()  # before Ray starts: its proxy reads them (a joined cluster has its own)
    if args.address or os.environ.get("RAY_ADDRESS"):
        ensure_ray(args.address)  # joining a cluster: its head already runs the dashboard
    else:
        ensure_ray(None, include_dashboard=True)  # a new local Ray, dashboard on :8265
    env = None
    if not os.environ.get("ECG_PUBLIC_BASE_URL"):
        # Download links name the address this service listens on (not a fixed :8090), unless
        # the operator says where it is reached from (a load balancer, a public name).
        env = {"ECG_PUBLIC_BASE_URL": public_base_url_for(args.host, args.port)}
    serve.start(http_options={"host": args.host, "port": args.port}, logging_config=SERVE_LOGGING)
    serve.run(build_app(env) if env else app, name="ecg_ray", route_prefix="/")
    print(f"ecg_ray serving on http://{args.host}:{args.port} (OpenAPI at /docs); Ctrl-C to stop", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    serve.shutdown()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
