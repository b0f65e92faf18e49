"""Print the Chromium flags of the cheapest GPU variant in a capture_cost.py result, if it composites
on the GPU, draws like software (mean RGBA difference under 1) and costs at least 20% less CPU
per capture than the first (software) variant; print nothing otherwise."""

import json
import sys

res = json.load(open(sys.argv[1]))["variants"]
names = list(res)
base = res[names[0]].get("cpu_ms_per_capture_total")
best = None
for name in names[1:]:
    v = res[name]
    if "error" in v or v.get("gpu", {}).get("gpu_compositing") != "enabled":
        continue
    if v.get("vs_first", {}).get("mean_abs_diff", 99) >= 1 or not base:
        continue
    if v["cpu_ms_per_capture_total"] <= 0.8 * base and (best is None or v["cpu_ms_per_capture_total"] < best[0]):
        best = (v["cpu_ms_per_capture_total"], v["flags"])
print(best[1] if best else "")
