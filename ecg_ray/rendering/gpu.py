"""What GPUs this process's machine has, through NVML (pynvml / nvidia-ml-py)."""

from __future__ import annotations

from typing import Any


def gpu_info() -> list[dict[str, Any]]:
    """Name, memory and utilization of each GPU; [] where there is no driver or no GPU."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound etc.: no GPU here
        return []
    out = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            util = pynvml.nvmlDeviceGetUtilizationRates(h)
            try:
                enc_util = pynvml.nvmlDeviceGetEncoderUtilization(h)[0]
            except Exception:  # noqa: BLE001 - GPUs without NVENC (H100) refuse this query
                enc_util = None
            out.append({
                "index": i,
                "name": name.decode() if isinstance(name, bytes) else name,
                "memory_total_mb": mem.total // 2**20,
                "memory_used_mb": mem.used // 2**20,
                "utilization_pct": util.gpu,
                "encoder_utilization_pct": enc_util,
            })
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass
    return out
