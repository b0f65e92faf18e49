"""Run commands inside the production image without `podman run` (which fails on hosts whose
cgroups are in hybrid mode): a podman container is created but never started, its root file
system mounted (`podman mount`, writable like a running container's), and each command runs
with that file system as its root (pivot_root) as the image's user, with the image's environment
and working directory, in a private mount namespace (`unshare --mount`), so /proc, /sys and /dev
mounted for it disappear with its last process. The network is the host's: a service inside
listens on host loopback.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "scripts" / "build_image.sh"


def podman(*args: str, timeout: float = 120) -> str:
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True, timeout=timeout).stdout


class ImageRoot:
    """A mounted, writable container file system of ``image``; ``close`` removes it all."""

    def __init__(self, image: str) -> None:
        info = json.loads(podman("image", "inspect", image))[0]
        cfg = info["Config"]
        self.env: dict[str, str] = dict(e.split("=", 1) for e in cfg.get("Env") or [])
        self.user: str = cfg.get("User") or "0:0"
        self.workdir: str = cfg.get("WorkingDir") or "/"
        # podman reports the (docker-format) HEALTHCHECK beside Config, not in it
        self.healthcheck: dict = info.get("Healthcheck") or cfg.get("Healthcheck") or {}
        self.cmd: list[str] = cfg.get("Cmd") or []
        self.name = f"ecg-image-test-{uuid.uuid4().hex[:8]}"
        podman("create", "--name", self.name, image, "true")
        try:
            self.path = Path(podman("mount", self.name).strip())
        except Exception:
            podman("rm", "-f", self.name)
            raise

    def argv(self, cmd: list[str], env: dict[str, str] | None = None, user: str | None = None) -> list[str]:
        """The host command line that runs ``cmd`` inside, as `podman run` would.

        The file system becomes the root of a private mount namespace with pivot_root, not
        chroot: the kernel refuses new user namespaces to a chrooted process, and Chromium's
        sandbox (the image's user is not root) needs them."""
        r = shlex.quote(str(self.path))
        merged = {**self.env, **(env or {})}
        uid, _, gid = (user or self.user).partition(":")
        assert uid.isdigit() and (gid or "0").isdigit(), f"numeric USER expected, not {self.user!r}"
        inner = ["/bin/sh", "-c", 'umount -l /.oldroot && rmdir /.oldroot && exec "$@"', "sh",
                 "setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups",
                 "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in merged.items()],
                 "/bin/sh", "-c", 'cd "$0" && exec "$@"', self.workdir, *cmd]
        setup = " && ".join([
            f"mount --bind {r} {r}",  # pivot_root needs the new root to be a mount point
            f"mount -t proc proc {r}/proc",
            f"mount --rbind /sys {r}/sys",
            f"mount --rbind /dev {r}/dev",
            # Ray's object store and Chromium use /dev/shm: a fresh tmpfs, as a container has.
            f"mount -t tmpfs -o size=4g,mode=1777 shm {r}/dev/shm",
            f"mount --bind /etc/hosts {r}/etc/hosts" if (self.path / "etc/hosts").exists() else "true",
            f"mount --bind /etc/resolv.conf {r}/etc/resolv.conf" if (self.path / "etc/resolv.conf").exists() else "true",
            f"mkdir -p {r}/.oldroot",
            f"cd {r}",
            "pivot_root . .oldroot",
        ])
        return ["unshare", "--mount", "--propagation", "private", "--fork", "/bin/sh", "-c",
                f"{setup} && exec {shlex.join(inner)}"]

    def run(self, cmd: list[str], timeout: float = 600, env: dict[str, str] | None = None,
            user: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(cmd, env, user), capture_output=True, text=True, timeout=timeout)

    def popen(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        out = open(log, "wb")
        try:
            return subprocess.Popen(self.argv(cmd, env), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            out.close()

    def processes(self) -> list[int]:
        """Processes whose root is this file system (what still runs inside): their root
        directory is this one (the same device and inode; a path would not tell, since each
        runs in a mount namespace of its own)."""
        want = os.stat(self.path)
        pids = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    st = os.stat(p / "root")
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    pids.append(int(p.name))
        return pids

    def kill_all(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 20
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)

    def close(self) -> None:
        self.kill_all()
        podman("umount", self.name)
        podman("rm", "-f", self.name)


def image_size(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).strip())
