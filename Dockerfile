# ecg_ray production image: Debian 12 with Debian's FFmpeg 5.1 (NVENC/NVDEC), Debian's Chromium
# (headless shell), Noto CJK and colour emoji fonts, and Ray 2.60 + the render service in a venv,
# for the Ray head and GPU workers of every deployment in docs/operations.md (docker-compose.yaml,
# cluster.yaml, deploy/kuberay/rayservice.yaml):
#
#   docker build -t ecg-ray:latest .
#   docker run --init --gpus all --shm-size=8g --cap-add=SYS_ADMIN -p 8090:8090 ecg-ray:latest
#
# Built and tested on this project's CI with podman (tests/test_image.py, `make image-test`).
# Stages: web (npm page assets) and python (venv) feed the runtime stage, which has no compiler,
# no node/npm and no curl: only what runs. BASE is any Debian 12 image (the test builds its own
# with debootstrap where no registry is reachable).
ARG BASE=debian:bookworm-slim

############################ 1. MotionText page assets (as scripts/setup.sh) #####################
FROM ${BASE} AS web
ARG DEBIAN_FRONTEND=noninteractive
# Debian's package versions are not pinned: the archive drops superseded ones (security updates).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# Pinned by package-lock.json; only two dist files reach the page. The optional build secret
# build_ca is a CA bundle for npm and pip where TLS is intercepted (scripts/build_image.sh passes
# the host's): a secret mount, so nothing of it stays in any layer.
RUN --mount=type=secret,id=build_ca \
    ca=/run/secrets/build_ca; [ -s "$ca" ] || ca=""; \
    npm ci ${ca:+--cafile="$ca"} --ignore-scripts --no-audit --no-fund --loglevel=error \
 && mkdir -p ecg_ray/capture/web/vendor \
 && cp node_modules/motiontext-renderer/dist/index.js ecg_ray/capture/web/vendor/motiontext-renderer.js \
 && cp node_modules/gsap/dist/gsap.min.js ecg_ray/capture/web/vendor/gsap.min.js \
 && mkdir -p ecg_ray/service/page/vendor \
 && cp node_modules/hls.js/dist/hls.min.js ecg_ray/service/page/vendor/hls.min.js

############################ 2. The venv with the package #########################################
# Debian's Python 3.11 (the runtime stage has the same interpreter at the same path, so the venv
# moves over as it is). No compiler here either: every dependency must come as a wheel.
FROM ${BASE} AS python
ARG DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
# Dependencies first, pinned (docker/constraints.txt): this layer stays cached while only the
# package's own code changes.
COPY docker/constraints.txt /tmp/constraints.txt
RUN --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export PIP_CERT=/run/secrets/build_ca; fi; \
    /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/constraints.txt
WORKDIR /src
COPY pyproject.toml README.md serve_app.py ./
COPY ecg_ray/ ecg_ray/
COPY --from=web /src/ecg_ray/capture/web/vendor/ ecg_ray/capture/web/vendor/
COPY --from=web /src/ecg_ray/service/page/vendor/ ecg_ray/service/page/vendor/
# `pip install .`: a regular, non-editable install; the vendor files are package data. PIP_CERT (not
# --cert) reaches the pip that build isolation starts to fetch setuptools.
# imageio-ffmpeg's bundled static FFmpeg (~80 MB; its NVENC needs driver 610+, newer than most GPU
# clusters run) is dropped: ECG_FFMPEG names Debian's (the oldest driver its NVENC opens on was not
# measured: no GPU with NVENC was lent).
RUN --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export PIP_CERT=/run/secrets/build_ca; fi; \
    /opt/venv/bin/pip install --no-cache-dir --prefer-binary --constraint /tmp/constraints.txt . \
 && find /opt/venv/lib/python3.11/site-packages/imageio_ffmpeg/binaries -name 'ffmpeg-*' -delete \
 && rm -rf /src/build

############################ 3. Runtime ##########################################################
# No CUDA base image: Debian's FFmpeg loads libcuda, libnvidia-encode and libnvcuvid from the host
# driver at run time, which the NVIDIA container toolkit mounts when NVIDIA_DRIVER_CAPABILITIES has
# "video". Without a GPU (or without NVENC, as on H100) the app's one-frame test encode fails and
# it encodes with libx264.
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# ffmpeg: Debian's 5.1 (h264_nvenc, hevc_nvenc, -hwaccel cuda, libx264). chromium-headless-shell:
# the browser Playwright drives headless (no GTK; 67 MB less than `chromium`). Fonts for Korean text
# and emoji. libatomic1 for Playwright's node driver (it exits at once without it). rsync and ssh
# for Ray's cluster launcher (file mounts into the container).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates python3 ffmpeg chromium-headless-shell fontconfig fonts-noto-cjk \
      fonts-noto-color-emoji libatomic1 openssh-client rsync \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
 && fc-cache -f
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    ECG_FFMPEG=/usr/bin/ffmpeg \
    IMAGEIO_FFMPEG_EXE=/usr/bin/ffmpeg \
    ECG_CHROMIUM=/usr/bin/chromium-headless-shell \
    ECG_STATE_DIR=/var/lib/ecg/state \
    ECG_OUTPUT_DIR=/var/lib/ecg/output \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
    RAY_SERVE_PROXY_USE_GRPC=1 \
    RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0
COPY --from=python /opt/venv /opt/venv
COPY --from=python /src/serve_app.py /app/serve_app.py
# uid 1000 matches the "ubuntu" user of the EC2 host, so host directories made by it (cluster.yaml
# mounts ~/ecg_state) are writable here. HOME matters: Ray's launcher puts its files in ~.
# The checks fail the build if the image lacks what it promises: FFmpeg's NVENC/NVDEC and libx264,
# the browser and Playwright's driver, the page assets in the installed package, and no compiler
# or node/npm on PATH.
RUN useradd --create-home --uid 1000 --shell /bin/bash ecg \
 && mkdir -p /var/lib/ecg/state /var/lib/ecg/output \
 && chown -R ecg:ecg /var/lib/ecg \
 && ffmpeg -hide_banner -encoders > /tmp/encoders \
 && grep -q h264_nvenc /tmp/encoders && grep -q hevc_nvenc /tmp/encoders && grep -q libx264 /tmp/encoders \
 && ffmpeg -hide_banner -hwaccels | grep -qx cuda && rm /tmp/encoders \
 && "$ECG_CHROMIUM" --version && python -m playwright --version \
 && python -c "import importlib.resources as r, ray, playwright, av; v = r.files('ecg_ray') / 'capture' / 'web' / 'vendor'; assert (v / 'motiontext-renderer.js').is_file() and (v / 'gsap.min.js').is_file()" \
 && for tool in gcc cc c++ make node nodejs npm curl wget; do ! command -v "$tool" >/dev/null || { echo "$tool in the image"; exit 1; }; done
ENV HOME=/home/ecg
USER 1000:1000
WORKDIR /app
EXPOSE 8090 8265
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8090/health', timeout=4)"]
CMD ["python", "serve_app.py", "--host", "0.0.0.0", "--port", "8090"]
