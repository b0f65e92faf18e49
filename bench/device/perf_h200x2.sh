#!/usr/bin/env bash
# Scale-out runs on the 2-GPU machine (nvidia-h200-x2), after the bundle is unpacked:
#
#   bash bench/device/perf_h200x2.sh one          # a 10-minute 1080p30 job across two Ray nodes
#   bash bench/device/perf_h200x2.sh throughput   # a queue of 60 s jobs: one node (16 cores) vs two
#   PIN=1 bash bench/device/perf_h200x2.sh throughput2   # the two-node run only; PIN: each node on its own cores
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
esac
