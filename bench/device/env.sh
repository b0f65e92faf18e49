# Source after every part is unpacked (bench/device/setup_part.sh), from the repo root:
#   source bench/device/env.sh
# Points the project at the carried Python packages, FFmpeg, Chromium, fonts and page assets.
# Only Chromium gets the carried shared libraries (through the $ECG_BUNDLE_ROOT/bin/chromium
# wrapper), so Ray, PyAV, FFmpeg and PyTorch keep the system's.
_ecg_root=${ECG_BUNDLE_ROOT:-/tmp/ecg}
export PYTHONPATH="$_ecg_root/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$_ecg_root/bin:$PATH"
export ECG_CHROMIUM="$_ecg_root/bin/chromium"
export ECG_FFMPEG="$_ecg_root/bin/ffmpeg"
export IMAGEIO_FFMPEG_EXE="$_ecg_root/bin/ffmpeg"
export ECG_WEB_VENDOR_DIR="$_ecg_root/vendor"
export FONTCONFIG_FILE="$_ecg_root/fonts/fonts.conf"
# Playwright: use the carried node driver; never look for or download its own browsers.
export PLAYWRIGHT_BROWSERS_PATH="$_ecg_root/ms-playwright"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# Ray: no usage stats upload (no network there), Python output unbuffered for the call's log.
export RAY_USAGE_STATS_ENABLED=0
export PYTHONUNBUFFERED=1
# Playwright's node needs libatomic.so.1: the carried one only where the system has none.
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libatomic\.so\.1 '; then
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$_ecg_root/lib-extra"
fi
unset _ecg_root
