#!/usr/bin/env bash
# Unpack one part of the device bundle into $ECG_BUNDLE_ROOT (default /tmp/ecg), idempotently.
#
#   bash bench/device/setup_part.sh .dev/bundle/partK     # then: source bench/device/env.sh
#
# The bundle (made by bench/device/build_bundle.sh) is a few xz-compressed tar archives cut into
# chunks of at most 58 MiB, spread over .dev/bundle/part1..N so that each device call carries one
# part (a call carries at most 64 MiB). Every part holds the same MANIFEST (lines "archive nchunks
# dest": a .txz is a tar unpacked into $root/dest, a .xz one file written to $root/dest). A part's chunks are copied to $root/chunks; an archive is unpacked into $root once all
# its chunks are there (so parts may come in any order, one call each, while the machine is warm),
# then its chunks are deleted and $root/done/<archive> is written. Running a part again is a no-op.
#
# Layout once every archive is unpacked: site/ (Python packages, PYTHONPATH), bin/ffmpeg,
# bin/chromium (a wrapper: sets LD_LIBRARY_PATH for Chromium only), deb/usr/lib/chromium/
# (Debian bookworm's chromium-headless-shell and the data files it reads), chrome/lib/ (the shared
# libraries it needs that a bare image lacks), fonts/ (Noto Sans CJK KR subset, fonts.conf),
# vendor/ (the npm page assets ecg_ray/capture/browser.py serves; git-ignored, so carried here).
set -euo pipefail
part=${1:?usage: setup_part.sh .dev/bundle/partK}
root=${ECG_BUNDLE_ROOT:-/tmp/ecg}
[[ -f "$part/MANIFEST" ]] || { echo "setup_part: no MANIFEST in $part" >&2; exit 1; }
mkdir -p "$root/chunks" "$root/done"

for f in "$part"/*.part[0-9][0-9]; do
  [[ -e "$f" ]] || continue
  name=$(basename "$f")
  [[ -f "$root/done/${name%.part*}" ]] || cp "$f" "$root/chunks/$name"
done

unpack() {  # stdin: an xz stream; $1: a .txz (tar: unpack into $root/$2) or .xz (one file: $root/$2)
  local dc="xz -dc -T0"
  command -v xz >/dev/null || dc="python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer, 1<<20)'"
  if [[ "$1" == *.txz ]]; then
    mkdir -p "$root/$2" && eval "$dc" | tar -x -C "$root/$2"
  else
    mkdir -p "$(dirname "$root/$2")" && eval "$dc" > "$root/$2.tmp" && chmod 755 "$root/$2.tmp" && mv "$root/$2.tmp" "$root/$2"
  fi
}

while read -r archive n dest <&3; do
  [[ -z "$archive" || "$archive" == \#* || -f "$root/done/$archive" ]] && continue
  chunks=()
  for ((i = 0; i < n; i++)); do chunks+=("$root/chunks/$archive.part$(printf %02d "$i")"); done
  missing=0
  for c in "${chunks[@]}"; do [[ -f "$c" ]] || missing=$((missing + 1)); done
  if ((missing)); then echo "setup_part: $archive waits for $missing of $n chunks"; continue; fi
  t0=$SECONDS
  cat "${chunks[@]}" | unpack "$archive" "$dest"
  rm -f "${chunks[@]}"
  touch "$root/done/$archive"
  echo "setup_part: unpacked $archive ($((SECONDS - t0)) s)"
done 3< "$part/MANIFEST"

# Files that name $root: written every time (cheap), so the bundle can live anywhere.
if [[ -x "$root/deb/usr/lib/chromium/chromium-headless-shell" ]]; then
  mkdir -p "$root/bin" "$root/fontcache"
  cat > "$root/bin/chromium" <<EOF
#!/bin/sh
# Chromium with its own shared libraries; the rest of the process tree keeps the system's.
export LD_LIBRARY_PATH="$root/chrome/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export FONTCONFIG_FILE="\${FONTCONFIG_FILE:-$root/fonts/fonts.conf}"
exec "$root/deb/usr/lib/chromium/chromium-headless-shell" "\$@"
EOF
  chmod +x "$root/bin/chromium"
fi
mkdir -p "$root/fonts"
sed "s#@ROOT@#$root#g" "$(dirname "$0")/fonts.conf.in" > "$root/fonts/fonts.conf"

all_n=0 done_n=0
while read -r archive _; do
  all_n=$((all_n + 1)); [[ -f "$root/done/$archive" ]] && done_n=$((done_n + 1))
done < "$part/MANIFEST"
echo "setup_part: $done_n of $all_n archives unpacked in $root$( ((done_n == all_n)) && echo ': complete')"
