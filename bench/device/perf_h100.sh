#!/usr/bin/env bash
# The performance runs on one GPU machine, after the bundle is unpacked (setup_part.sh x N):
#
#   bash bench/device/perf_h100.sh short   # 60 s 1080p30: e2e (8 and 16 actors, nice), karaoke, overhead
#   bash bench/device/perf_h100.sh long    # a 10-minute 1080p30 input, e2e
#   bash bench/device/perf_h100.sh final   # the 60 s e2e and karaoke again (3 warm runs), with 4 x264 threads too
#   bash bench/device/perf_h100.sh more    # 16 segments on 8 actors; the 10-minute input with the defaults
#   bash bench/device/perf_h100.sh band    # the 60 s e2e with and without the overlay band (ECG_OVERLAY_BAND), karaoke
#   bash bench/device/perf_h100.sh lanes   # capture lanes (ECG_CAPTURE_LANES): capture cost at 1, 8 and 16 lanes;
#                                          # the 60 s e2e at 8 (the default), 4 and 1 lanes; karaoke at 8 and 1
#   bash bench/device/perf_h100.sh lanes-long  # the 10-minute input with lanes
#   bash bench/device/perf_h100.sh lanes-ab    # the 60 s e2e, 8 lanes and 1 lane alternated twice (3 warm runs each)
#   bash bench/device/perf_h100.sh threads     # x264 threads per segment (ECG_ENCODER_THREADS) 2, 4, 1 at 8 actors,
#                                          # each with 3 alternated bare/renderer pairs
#   bash bench/device/perf_h100.sh current     # issue 6's figures at the current commit: the 60 s e2e with the original
#                                          # way (450 frames) and 3 alternated pairs, karaoke with 2 pairs
#   bash bench/device/perf_h100.sh current-long  # the 10-minute input, the same defaults
#   bash bench/device/perf_h100.sh nvdec       # the 60 s e2e decoded on the CPU and with NVDEC (ECG_HWDEC), alternated
#   bash bench/device/perf_h100.sh fthreads    # decoder and filter threads of the segment FFmpeg (ffmpeg_threads.py):
#                                          # 8 and 16 at once at 1080p30, 2 at once at 720p25 on 2 cores (taskset)
#   (threads and cores2 pass ECG_DECODER_THREADS / ECG_FILTER_THREADS on; NAME_TAG tells the runs apart)
#   bash bench/device/perf_h100.sh cores2      # the 2-core goal (720p25, 12 cues) on 2 of the host's cores (taskset),
#                                          # x264 threads 4 and 1, 3 alternated pairs each
#   bash bench/device/perf_h100.sh steady      # a steady queue (scale_out.py steady, 6 jobs in flight) on the whole
#                                          # machine, ECG_BUSY_SEGMENT_SECONDS 0 and 8 alternated, 2 rounds
#   bash bench/device/perf_h100.sh memory      # peak PSS of a segment actor with its Chromium and FFmpeg (memory.py),
#                                          # 8 actors at 1080p30: 60 s and 10 min, then karaoke
#   bash bench/device/perf_h100.sh memory-jobs # the same, 8 jobs of 60 s in a row on the same warm actors
#   bash bench/device/perf_h100.sh dthreads-mem  # memory with the decoder capped at 4 threads (the default) and
#                                          # with FFmpeg's choice (ECG_DECODER_THREADS=0)
#   bash bench/device/perf_h100.sh dthreads    # the 60 s e2e, ECG_DECODER_THREADS 0 and 4 alternated, 2 rounds
#   bash bench/device/perf_h100.sh gpu     # capture cost with Chromium on the GPU (ANGLE: Vulkan, EGL) against
#                                          # software; then the 60 s e2e with the best GPU flags, if any helps
#
# Results go to bench/results/ and are copied to $OUT after each run (a call cut short by its
# time limit still brings back what finished). NAME_TAG distinguishes runs of one day.
set -uo pipefail
source bench/device/perf_common.sh
e2e() {  # name, then run_bench arguments
  local name=$1; shift
  python3 bench/run_bench.py --height 1080 --fps 30 --workdir "$work" --name "$name" "$@" 2>&1 \
    | grep -v -E '"level": "(info|debug)"|WARNING' | tail -4
  keep "$name"
}

case ${1:-short} in
  short)
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-burn-8a-$tag.json" --cues 20 --original-frames 450
    ECG_SEGMENT_NUM_GPUS=0.125 ECG_ENCODER_NICE=10 e2e "e2e-h100-1080p30-60s-burn-8a-nice10-$tag.json" \
      --cues 20 --skip-original
    ECG_SEGMENT_NUM_GPUS=0.0625 e2e "e2e-h100-1080p30-60s-burn-16a-$tag.json" --cues 20 --skip-original
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-burn-karaoke-8a-$tag.json" --cues 20 --karaoke \
      --skip-original
    python3 bench/overhead.py --height 1080 --fps 30 --frames 900 --workdir "$work/oh" \
      --name "overhead-h100-1080p-900f-burn-$tag.json" 2>&1 | grep -v -E '"level"|WARNING' | tail -8
    keep "overhead-h100-1080p-900f-burn-$tag.json"
    ;;
  final)  # the 60 s runs again after a change, with and without 4 x264 threads per segment
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-final-8a-$tag.json" --cues 20 --skip-original --runs 3
    ECG_SEGMENT_NUM_GPUS=0.125 ECG_ENCODER_THREADS=4 e2e "e2e-h100-1080p30-60s-final-8a-t4-$tag.json" --cues 20 \
      --skip-original --runs 3
    ECG_SEGMENT_NUM_GPUS=0.125 ECG_ENCODER_THREADS=4 e2e "e2e-h100-1080p30-60s-final-karaoke-8a-t4-$tag.json" \
      --cues 20 --karaoke --skip-original
    ;;
  more)  # 16 segments on 8 actors (the tail shared out), then the 10-minute input with the defaults
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-final-8a-16seg-$tag.json" --cues 20 --segments 16 \
      --skip-original --runs 2
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-600s-final-8a-$tag.json" --duration 600 --cues 200 \
      --skip-original --runs 1 --bare-runs 1
    ;;
  band)  # the same loan, the overlay band on (the default) and off, 3 warm runs each
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-band-8a-$tag.json" --cues 20 --skip-original --runs 3
    ECG_SEGMENT_NUM_GPUS=0.125 ECG_OVERLAY_BAND=0 e2e "e2e-h100-1080p30-60s-noband-8a-$tag.json" --cues 20 \
      --skip-original --runs 3
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-band-karaoke-8a-$tag.json" --cues 20 --karaoke \
      --skip-original --runs 2
    ;;
  lanes)  # one loan: lanes on (8, the default), 4, off (1)
    n="capture-h100-1080p-lanes-$tag.json"
    python3 bench/capture_cost.py --height 1080 --fps 30 --frames 900 --name "$n" --lanes 1 --lanes 8 --lanes 16 \
      2>&1 | grep -v -E '"level"|WARNING|gpu:'
    keep "$n"
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-lanes8-8a-$tag.json" --cues 20 --skip-original --runs 3
    ECG_SEGMENT_NUM_GPUS=0.125 ECG_CAPTURE_LANES=1 e2e "e2e-h100-1080p30-60s-lanes1-8a-$tag.json" --cues 20 \
      --skip-original --runs 3
    ECG_SEGMENT_NUM_GPUS=0.125 ECG_CAPTURE_LANES=4 e2e "e2e-h100-1080p30-60s-lanes4-8a-$tag.json" --cues 20 \
      --skip-original --runs 2
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-lanes8-karaoke-8a-$tag.json" --cues 20 --karaoke \
      --skip-original --runs 2
    ECG_SEGMENT_NUM_GPUS=0.125 ECG_CAPTURE_LANES=1 e2e "e2e-h100-1080p30-60s-lanes1-karaoke-8a-$tag.json" --cues 20 \
      --karaoke --skip-original --runs 2
    ;;
  lanes-ab)  # alternated, so a loan's drift falls on both
    for round in a b; do
      ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-lanes8-8a-ab$round-$tag.json" --cues 20 --skip-original \
        --runs 3 --bare-runs 1
      ECG_SEGMENT_NUM_GPUS=0.125 ECG_CAPTURE_LANES=1 e2e "e2e-h100-1080p30-60s-lanes1-8a-ab$round-$tag.json" \
        --cues 20 --skip-original --runs 3 --bare-runs 1
    done
    ;;
  threads)
    for t in ${THREADS:-2 4 1}; do
      ECG_SEGMENT_NUM_GPUS=0.125 ECG_ENCODER_THREADS=$t e2e "e2e-h100-1080p30-60s-t$t-8a-$tag.json" --cues 20 \
        --skip-original --runs 1 --bare-runs 1 --pairs 3
    done
    ;;
  current)
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-current-8a-$tag.json" --cues 20 --original-frames 450 \
      --runs 2 --pairs 3
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-current-karaoke-8a-$tag.json" --cues 20 --karaoke \
      --skip-original --runs 2 --pairs 2
    ;;
  nvdec)  # one 60 s job on the whole machine, decoded on the CPU and with NVDEC (ECG_HWDEC), 2 pairs each, twice
    for round in 1 2; do
      for h in none cuda; do
        ECG_SEGMENT_NUM_GPUS=0.125 ECG_HWDEC=$h e2e "e2e-h100-1080p30-60s-hwdec$h-r$round-8a-$tag.json" --cues 20 \
          --skip-original --runs 1 --bare-runs 1 --pairs 2
      done
    done
    ;;
  memory)  # issue 6's 1 GB a segment actor, on the GPU machine's 16 cores (FFmpeg sizes its threads by them)
    ECG_SEGMENT_NUM_GPUS=0.125 python3 bench/memory.py --durations 60,600 --height 1080 --fps 30 --segments 8 \
      --workdir "$work/mem" --name "memory-h100-1080p30-8a-$tag.json" 2>&1 | grep -v -E '"level"|WARNING' | tail -4
    keep "memory-h100-1080p30-8a-$tag.json"
    ECG_SEGMENT_NUM_GPUS=0.125 python3 bench/memory.py --durations 60 --height 1080 --fps 30 --segments 8 --karaoke \
      --workdir "$work/mem" --name "memory-h100-1080p30-8a-karaoke-$tag.json" 2>&1 | grep -v -E '"level"|WARNING' | tail -4
    keep "memory-h100-1080p30-8a-karaoke-$tag.json"
    ;;
  dthreads-mem)
    for t in 4 0; do
      ECG_DECODER_THREADS=$t ECG_SEGMENT_NUM_GPUS=0.125 python3 bench/memory.py --durations 60,600 --height 1080 \
        --fps 30 --segments 8 --workdir "$work/mem" --name "memory-h100-1080p30-8a-dec$t-$tag.json" 2>&1 \
        | grep -v -E '"level"|WARNING' | cut -c1-160 | tail -3
      keep "memory-h100-1080p30-8a-dec$t-$tag.json"
    done
    ;;
  dthreads)
    for round in 1 2; do
      for t in 0 4; do
        ECG_SEGMENT_NUM_GPUS=0.125 ECG_DECODER_THREADS=$t e2e "e2e-h100-1080p30-60s-dec$t-r$round-8a-$tag.json" \
          --cues 20 --skip-original --runs 1 --bare-runs 1 --pairs 2
      done
    done
    ;;
  memory-jobs)  # the same warm actors over 8 jobs in a row: does idle memory creep from job to job?
    ECG_SEGMENT_NUM_GPUS=0.125 python3 bench/memory.py --durations 60 --repeat 8 --height 1080 --fps 30 --segments 8 \
      --workdir "$work/mem" --name "memory-h100-1080p30-8a-jobs-$tag.json" 2>&1 | grep -v -E '"level"|WARNING' | tail -9
    keep "memory-h100-1080p30-8a-jobs-$tag.json"
    ;;
  current-long)
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-600s-current-8a-$tag.json" --duration 600 --cues 200 \
      --skip-original --runs 1 --bare-runs 1
    ;;
  fthreads)
    v="--variant 0:0 --variant 1:1 --variant 2:1 --variant 2:0 --variant 0:1"
    for p in 8 16; do
      n="ffmpeg-threads-h100-1080p30-${p}x-$tag.json"
      python3 bench/ffmpeg_threads.py --height 1080 --fps 30 --parallel $p --workdir "$work" --name "$n" $v 2>&1 \
        | grep -v WARNING | tail -6
      keep "$n"
    done
    n="ffmpeg-threads-h100host-2core-720p-2x-$tag.json"
    taskset -c 0,1 python3 bench/ffmpeg_threads.py --height 720 --fps 25 --parallel 2 --workdir "$work/c2" \
      --name "$n" --variant 0:0 --variant 2:1 --variant 1:1 2>&1 | grep -v WARNING | tail -4
    keep "$n"
    ;;
  steady)  # one node, 8 actors, the queue never runs dry; the busy rule off and on, alternated
    for round in 1 2; do
      order="0 8"; [[ $round == 2 ]] && order="8 0"
      for b in $order; do
        n="scale-steady-1node-h100-busy$b-r$round-$tag.json"
        ECG_SEGMENT_NUM_GPUS=0.125 ECG_BUSY_SEGMENT_SECONDS=$b python3 bench/scale_out.py steady --nodes 1 \
          --cpus-per-node 16 --workdir "$work" --name "$n" 2>&1 | grep -E '^steady|^saved'
        keep "$n"
      done
    done
    ;;
  cores2)  # Ray, Chromium and FFmpeg all confined to cores 0-1 (the local Ray counts 2 CPUs)
    for t in ${THREADS:-4 1}; do
      n="e2e-h100host-2core-720p-60s-t$t-$tag.json"
      ECG_ENCODER_THREADS=$t taskset -c 0,1 python3 bench/run_bench.py --height 720 --fps 25 --cues 12 \
        --workdir "$work/c2" --name "$n" --skip-original --runs 1 --bare-runs 1 --pairs ${PAIRS:-3} 2>&1 \
        | grep -v -E '"level": "(info|debug)"|WARNING' | tail -5
      keep "$n"
    done
    ;;
  lanes-long)
    ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-600s-lanes8-8a-$tag.json" --duration 600 --cues 200 \
      --skip-original --runs 1 --bare-runs 1
    ;;
  gpu)  # needs the GL/Vulkan loaders where the image lacks them (.gl/*.deb unpacked into / first)
    vk="--enable-gpu --use-angle=vulkan --enable-features=Vulkan --ignore-gpu-blocklist --disable-vulkan-surface"
    egl="--enable-gpu --use-gl=angle --use-angle=gl-egl --ignore-gpu-blocklist"
    n="capture-h100-1080p-$tag.json"
    python3 bench/capture_cost.py --height 1080 --fps 30 --frames 450 --name "$n" --variant software= \
      --variant vulkan="$vk" --variant vulkan-gpuraster="$vk --enable-gpu-rasterization" --variant egl="$egl" \
      2>&1 | grep -v -E '"level"|WARNING'
    keep "$n"
    best=$(python3 bench/device/pick_gpu_flags.py "bench/results/$n")
    echo "best GPU flags: ${best:-none}"
    if [[ -n "$best" ]]; then
      ECG_SEGMENT_NUM_GPUS=0.125 e2e "e2e-h100-1080p30-60s-sw-8a-$tag.json" --cues 20 --skip-original --runs 3
      ECG_SEGMENT_NUM_GPUS=0.125 ECG_CHROMIUM_ARGS="$best" e2e "e2e-h100-1080p30-60s-gpuchrome-8a-$tag.json" \
        --cues 20 --skip-original --runs 3
      ECG_SEGMENT_NUM_GPUS=0.125 ECG_CHROMIUM_ARGS="$best" e2e "e2e-h100-1080p30-60s-gpuchrome-karaoke-8a-$tag.json" \
        --cues 20 --karaoke --skip-original --runs 2
    fi
    ;;
  long)
    ECG_SEGMENT_NUM_GPUS=0.125 ECG_HWDEC=cuda e2e "e2e-h100-1080p30-60s-burn-8a-nvdec-$tag.json" --cues 20 \
      --skip-original
    ECG_SEGMENT_NUM_GPUS=${GPU_SHARE:-0.125} e2e "e2e-h100-1080p30-600s-burn-$tag.json" --duration 600 --cues 200 \
      --skip-original --runs 1 --bare-runs 1
    ;;
esac
