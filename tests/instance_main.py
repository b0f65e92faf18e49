"""One whole service instance in a process of its own (its own local Ray cluster, Serve on a
loopback port), for tests that run several instances on one Redis and kill one of them:

    python -m tests.instance_main PORT '{"REDIS_URL": ..., "ECG_INSTANCE": "a", ...}'

Prints "ready" once the app is deployed, then serves until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    port, env = int(sys.argv[1]), json.loads(sys.argv[2])
    os.environ.update(env)
    import ray
    from ray import serve

    from ecg_ray.config import SERVE_LOGGING, apply_serve_env
    from ecg_ray.service.api import build_app

    apply_serve_env()
    ray.init(address="local", num_cpus=int(env.get("TEST_NUM_CPUS", "2")), include_dashboard=False,
             log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=SERVE_LOGGING)
    serve.run(build_app(env), name="ecg_ray", route_prefix="/")
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
