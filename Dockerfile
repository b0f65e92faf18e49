# Development image (the CUDA/NVENC production image comes with the operations issue).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
      chromium fonts-noto-cjk fonts-noto-color-emoji nodejs npm make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
ENV ECG_CHROMIUM=/usr/bin/chromium
RUN bash scripts/setup.sh
ENTRYPOINT [".venv/bin/ecg-render"]
