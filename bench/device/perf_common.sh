# Sourced by perf_h100.sh and perf_h200x2.sh: the carried bundle's environment, where results
# go ($OUT, brought back by the device call), the day's tag for result names, a work directory
# (inputs are kept there between runs of one call), and keep NAME: copy a result out at once,
# so a call cut short by its time limit still brings back what finished.
source bench/device/env.sh
out=${OUT:-/tmp/ecg-perf}
mkdir -p "$out"
tag=${NAME_TAG:-$(date -u +%F)}
work=/tmp/ecg-perf-work
mkdir -p "$work"
keep() { cp "bench/results/$1" "$out/" 2>/dev/null; echo "== $1 done at ${SECONDS}s"; }
