#!/usr/bin/env bash
# The FFmpeg-only half of bench/hdr_tonemap.py, for a GPU machine without the bundle (no Ray,
# Chromium or pydantic there): bare transcodes of a 10-bit HLG source with no tone mapping, with
# the renderer's tone mapping (zscale + tonemap, CPU), and with libplacebo's on Vulkan, in
# alternated rounds. The filters and x264 arguments are the renderer's at 1080p30, quality 70
# (decode.source_filters, encode.encoder_args, as hdr_tonemap.py prints them); keep them in step.
#
#   FF=/path/to/ffmpeg OUT=/tmp/out bash bench/device/hdr_tonemap_ffmpeg.sh [seconds] [height] [rounds]
#
# Needs the Vulkan loader for libplacebo (libvulkan1, unpacked by the caller); writes
# $OUT/hdr-tonemap-ffmpeg.json lines and prints them.
set -euo pipefail
cd "$(dirname "$0")/../.."
FF=${FF:?set FF to an ffmpeg with zscale, tonemap, libplacebo, libx264, libx265}
OUT=${OUT:-/tmp/hdr-bench}
secs=${1:-60}; height=${2:-1080}; rounds=${3:-3}
width=$((height * 16 / 9 / 2 * 2))
W=$(mktemp -d /tmp/ecg-hdr-XXXX)
mkdir -p "$OUT"
res="$OUT/hdr-tonemap-ffmpeg.json"
: >"$res"

log() { echo "$*" | tee -a "$res"; }

# The demo clip looped, scaled, 30 fps (bench/common.make_input), then HLG as the tests make it.
"$FF" -loglevel error -stream_loop $((secs / 5 + 1)) -i ecg_ray/demo/bbb_720p25_5s.mp4 -t "$secs" \
  -vf "scale=$width:$height:flags=bicubic,fps=30" -c:v libx264 -preset veryfast -crf 18 -g 60 \
  -c:a aac -b:a 160k -y "$W/sdr.mp4"
"$FF" -loglevel error -i "$W/sdr.mp4" -map 0:v:0 -map 0:a:0? \
  -vf "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv,zscale=t=linear:npl=203,format=gbrpf32le,zscale=p=2020:t=arib-std-b67:m=2020_ncl:r=tv:npl=203,format=yuv420p10le" \
  -c:v libx265 -preset ultrafast -x265-params log-level=error:crf=16 -pix_fmt yuv420p10le \
  -color_primaries bt2020 -color_trc arib-std-b67 -colorspace bt2020nc -c:a copy -y "$W/hlg.mp4"

TM="zscale=t=linear:npl=203,format=gbrpf32le,zscale=p=709,tonemap=tonemap=mobius:param=0.5:peak=4.926,zscale=p=709:t=709:m=709:r=tv:d=ordered,format=yuv420p,format=yuv420p,setparams=colorspace=bt709:range=tv:color_primaries=bt709:color_trc=bt709"
ENC=(-c:v libx264 -preset veryfast -crf 22 -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p -profile:v high
     -colorspace bt709 -color_primaries bt709 -color_trc bt709 -color_range tv -c:a copy -movflags +faststart -y)
IN=(-i "$W/hlg.mp4" -map 0:v:0 -map 0:a:0?)
PL_SW="libplacebo=tonemapping=mobius:colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv:format=yuv420p"
PL_HW="hwupload,$PL_SW,hwdownload,format=yuv420p"
VK=(-init_hw_device vulkan=vk -filter_hw_device vk)

pl=""
for vf in "$PL_SW" "$PL_HW"; do
  if "$FF" -loglevel error "${VK[@]}" "${IN[@]}" -vf "$vf" -frames:v 5 "${ENC[@]}" "$W/check.mp4" 2>"$W/pl.err"; then
    pl=$vf; break
  fi
done
log "{\"libplacebo\": \"$( [[ -n $pl ]] && echo "$pl" || tail -c 300 "$W/pl.err" | tr -d '"\n\\')\"}"

t() {  # seconds of one ffmpeg run
  local s e; s=$(date +%s.%N); "$FF" -loglevel error "$@"; e=$(date +%s.%N); python3 -c "print(round($e - $s, 2))"
}
for r in $(seq 1 "$rounds"); do
  a=$(t "${IN[@]}" -vf format=yuv420p "${ENC[@]}" "$W/plain.mp4")
  b=$(t "${IN[@]}" -vf "$TM" "${ENC[@]}" "$W/tm.mp4")
  c=null
  [[ -n $pl ]] && c=$(t "${VK[@]}" "${IN[@]}" -vf "$pl" "${ENC[@]}" "$W/pl.mp4")
  log "{\"round\": $r, \"size\": \"${width}x${height}\", \"seconds\": $secs, \"bare_plain_s\": $a, \"bare_tonemap_s\": $b, \"bare_libplacebo_s\": $c}"
done
nproc | xargs -I{} echo '{"cores": {}}' | tee -a "$res"
(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true) | sed 's/.*/{"gpu": "&"}/' | tee -a "$res"
"$FF" -hide_banner -loglevel error "${IN[@]}" -frames:v 1 -f null - && echo ok
rm -rf "$W"
