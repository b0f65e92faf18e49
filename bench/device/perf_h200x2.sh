#!/usr/bin/env bash
# Scale-out runs on the 2-GPU machine (nvidia-h200-x2), after the bundle is unpacked:
#
#   bash bench/device/perf_h200x2.sh one          # a 10-minute 1080p30 job across two Ray nodes
#   bash bench/device/perf_h200x2.sh throughput   # a queue of 60 s jobs: one node (16 cores) vs two
#   PIN=1 bash bench/device/perf_h200x2.sh throughput2   # the two-node run only; PIN: each node on its own cores
#   bash bench/device/perf_h200x2.sh contention   # one node on cores 0-15 while bare transcodes keep 16-31 busy,
#                                                 # and one Ray node with all 32 cores and both GPUs
#   ROUNDS=2 BUSY="8 0" bash bench/device/perf_h200x2.sh steady   # a queue that never runs dry, one node
#                                                 # against two, alternated, for each ECG_BUSY_SEGMENT_SECONDS;
#                                                 # IN_FLIGHT1 / IN_FLIGHT2: jobs in flight on one / two nodes (6)
#   ROUNDS=1 bash bench/device/perf_h200x2.sh nvdec   # the steady queue, one node against two, decoding on the
#                                                 # CPU and with NVDEC (ECG_HWDEC=none / cuda), alternated
#   ROUNDS=1 bash bench/device/perf_h200x2.sh steady-actors   # the steady queue, one node against two, with
#                                                 # 8 actors a node and 4 x264 threads each (the defaults), then
#                                                 # 4 actors a node with 8 threads each (half the frames in flight);
#                                                 # VARIANTS="GPU_SHARE:THREADS ..." picks others
#   ROUND=1 bash bench/device/perf_h200x2.sh dthreads   # the steady queue, one node against two, with the segment
#                                                 # decoders capped at 4 threads (the default) and uncapped
#                                                 # (ECG_DECODER_THREADS=0: 33 threads each on this host), alternated;
#                                                 # one round a call (about 6 minutes), ROUND names it
#   bash bench/device/perf_h200x2.sh topology    # which cores share a physical core, and how one core's x264
#                                                 # slows as more of the host works (cpu_topology.py, ~2 minutes)
#   ROUNDS=2 bash bench/device/perf_h200x2.sh ceiling   # the host's own ceiling beside the renderer's ratio: bare
#                                                 # transcodes as the actors run them (8 at once, 4 x264 and 4 decoder
#                                                 # threads each) on cores 0-15 and 16 at once on all 32 (bare_queue.py),
#                                                 # then the steady queue on one node and two; about 4 minutes a round
#   bash bench/device/perf_h200x2.sh steal     # the kernel's CPU accounting (proc_stat.py: idle, iowait, steal...)
#                                                 # around bare transcodes on all 32 cores and the steady queue on one
#                                                 # node and two; about 4 minutes
#
# 8 segment actors per node (ECG_SEGMENT_NUM_GPUS=0.125: the best count on one 16-core node).
set -uo pipefail
source bench/device/perf_common.sh
export ECG_SEGMENT_NUM_GPUS=${GPU_SHARE:-0.125}
quiet() { grep -v -E '"level": "(info|debug)"|WARNING|INFO' | tail -6; }
case ${1:-one} in
  one)
    n="scale-one-2node-h200x2-1080p30-600s-burn-$tag.json"
    python3 bench/scale_out.py one --nodes 2 --cpus-per-node 16 --duration 600 --workdir "$work" --name "$n" 2>&1 | quiet
    keep "$n"
    ;;
  throughput|throughput2)  # throughput2: the two-node run only
    t=${ECG_ENCODER_THREADS:+-t$ECG_ENCODER_THREADS}
    if [[ $1 == throughput ]]; then
      n="scale-throughput-1node-h200x2-burn$t-$tag.json"
      taskset -c 0-15 python3 bench/scale_out.py throughput --nodes 1 --cpus-per-node 16 --jobs 6 --workdir "$work" \
        --name "$n" 2>&1 | quiet
      keep "$n"
    fi
    n="scale-throughput-2node-h200x2-burn$t${PIN:+-pinned}-$tag.json"
    python3 bench/scale_out.py throughput --nodes 2 --cpus-per-node 16 --jobs 6 --workdir "$work" --name "$n" \
      ${PIN:+--pin} 2>&1 | quiet
    keep "$n"
    ;;
  steady-actors)  # fewer, wider segment encoders a node: less memory traffic from frames in flight?
    for round in $(seq 1 "${ROUNDS:-1}"); do
      for v in ${VARIANTS:-0.125:4 0.25:8}; do
        share=${v%:*} threads=${v#*:} a=$(python3 -c "print(round(1/$share))")
        for nodes in 1 2; do
          n="scale-steady-${nodes}node-h200x2-${a}a-t$threads-r$round-$tag.json"
          aff=(); [[ $nodes == 1 ]] && aff=(taskset -c 0-15)
          ECG_SEGMENT_NUM_GPUS=$share ECG_ENCODER_THREADS=$threads "${aff[@]}" python3 bench/scale_out.py steady \
            --nodes "$nodes" --cpus-per-node 16 --in-flight 6 --workdir "$work" --name "$n" 2>&1 | quiet
          keep "$n"
        done
      done
    done
    ;;
  topology)
    n="cpu-topology-h200x2-$tag.json"
    python3 bench/cpu_topology.py --name "$n" 2>&1 | tail -8
    keep "$n"
    ;;
  ceiling)
    for round in $(seq 1 "${ROUNDS:-1}"); do
      n="bare-queue-half-h200x2-r$round-$tag.json"
      taskset -c 0-15 python3 bench/bare_queue.py --copies 8 --workdir "$work" --name "$n" 2>&1 | tail -2
      keep "$n"
      n="bare-queue-whole-h200x2-r$round-$tag.json"
      python3 bench/bare_queue.py --copies 16 --workdir "$work" --name "$n" 2>&1 | tail -2
      keep "$n"
      for nodes in 1 2; do
        n="scale-steady-${nodes}node-h200x2-ceiling-r$round-$tag.json"
        aff=(); [[ $nodes == 1 ]] && aff=(taskset -c 0-15)
        "${aff[@]}" python3 bench/scale_out.py steady --nodes "$nodes" --cpus-per-node 16 --in-flight 6 \
          --workdir "$work" --name "$n" 2>&1 | quiet
        keep "$n"
      done
    done
    ;;
  steal)
    n="proc-stat-bare-whole-h200x2-$tag.json"
    python3 bench/proc_stat.py --name "$n" -- python3 bench/bare_queue.py --copies 16 --workdir "$work" \
      --name "bare-queue-whole-h200x2-steal-$tag.json" 2>&1 | tail -3
    keep "$n"; keep "bare-queue-whole-h200x2-steal-$tag.json"
    for nodes in 1 2; do
      s="scale-steady-${nodes}node-h200x2-steal-$tag.json" n="proc-stat-steady-${nodes}node-h200x2-$tag.json"
      aff=(); [[ $nodes == 1 ]] && aff=(taskset -c 0-15)
      python3 bench/proc_stat.py --name "$n" -- "${aff[@]}" python3 bench/scale_out.py steady --nodes "$nodes" \
        --cpus-per-node 16 --in-flight 6 --workdir "$work" --name "$s" 2>&1 | quiet
      keep "$n"; keep "$s"
    done
    ;;
  dthreads)
    r=${ROUND:-1}
    for t in 4 0; do
      for nodes in 1 2; do
        n="scale-steady-${nodes}node-h200x2-dec$t-r$r-$tag.json"
        aff=(); [[ $nodes == 1 ]] && aff=(taskset -c 0-15)
        ECG_DECODER_THREADS=$t "${aff[@]}" python3 bench/scale_out.py steady --nodes "$nodes" --cpus-per-node 16 \
          --in-flight 6 --workdir "$work" --name "$n" 2>&1 | quiet
        keep "$n"
      done
    done
    ;;
  steady)  # one node (cores 0-15) and two, alternated, a steady queue each, per ECG_BUSY_SEGMENT_SECONDS
    for round in $(seq 1 "${ROUNDS:-2}"); do
      for b in ${BUSY:-8 0}; do
        f1=${IN_FLIGHT1:-6} f2=${IN_FLIGHT2:-6}
        n="scale-steady-1node-h200x2-busy$b${IN_FLIGHT1:+-if$f1}-r$round-$tag.json"
        ECG_BUSY_SEGMENT_SECONDS=$b taskset -c 0-15 python3 bench/scale_out.py steady --nodes 1 --cpus-per-node 16 \
          --in-flight "$f1" --workdir "$work" --name "$n" 2>&1 | quiet
        keep "$n"
        n="scale-steady-2node-h200x2-busy$b${IN_FLIGHT2:+-if$f2}-r$round-$tag.json"
        ECG_BUSY_SEGMENT_SECONDS=$b python3 bench/scale_out.py steady --nodes 2 --cpus-per-node 16 \
          --in-flight "$f2" --workdir "$work" --name "$n" 2>&1 | quiet
        keep "$n"
      done
    done
    ;;
  nvdec)  # does decoding on the GPUs (each node its own) change what a second GPU adds?
    for round in $(seq 1 "${ROUNDS:-1}"); do
      for h in none cuda; do
        for nodes in 1 2; do
          n="scale-steady-${nodes}node-h200x2-hwdec$h-r$round-$tag.json"
          pin=""; [[ $nodes == 1 ]] && pin="taskset -c 0-15"
          ECG_HWDEC=$h $pin python3 bench/scale_out.py steady --nodes $nodes --cpus-per-node 16 \
            --in-flight "${IN_FLIGHT:-6}" --workdir "$work" --name "$n" 2>&1 | quiet
          keep "$n"
        done
      done
    done
    ;;
  contention)  # is the host the limit? the one-node queue again, with the other half of the cores busy
    src="$work/input_1080p30_60s.mp4"
    [[ -f $src ]] || python3 -c "import sys; sys.path.insert(0, 'bench'); from pathlib import Path; \
from common import make_input; make_input(Path('$src'), 60, 1080, '30')"
    ( while :; do taskset -c 16-31 ffmpeg -loglevel error -i "$src" -c:v libx264 -preset veryfast -crf 22 -threads 16 \
        -an -f null - ; done ) &
    burner=$!
    n="scale-throughput-1node-h200x2-contended-$tag.json"
    taskset -c 0-15 python3 bench/scale_out.py throughput --nodes 1 --cpus-per-node 16 --jobs 6 --workdir "$work" \
      --name "$n" 2>&1 | quiet
    kill $burner; pkill -f "preset veryfast -crf 22 -threads 16"; wait
    keep "$n"
    n="scale-throughput-1node32-h200x2-$tag.json"
    python3 bench/scale_out.py throughput --nodes 1 --cpus-per-node 32 --gpus-per-node 2 --jobs 6 --workdir "$work" \
      --name "$n" 2>&1 | quiet
    keep "$n"
    ;;
esac
