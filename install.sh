#!/usr/bin/env bash
# Installs the gateway into ./.venv (and socat, used by --simulate's virtual
# serial links). Safe to run again. Usage: ./install.sh [--test]
set -euo pipefail
cd "$(dirname "$0")"

want_pkgs=(socat)
# Tests also need a broker, the openssl CLI (test certificates, testing/tls.py) and a real RTSP camera
# (Debian's GStreamer RTSP server, run by the system python3).
# The web page is tested in Debian's Chromium, driven by Playwright's Python package (no browser download),
# in Chinese: fonts-wqy-zenhei so the screenshots show characters, not boxes.
# faketime: libfaketime steps a gateway process's wall clock (tests/gateway/test_clock_steps.py), never the machine's.
[ "${1:-}" = "--test" ] && want_pkgs+=(mosquitto openssl postgresql gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly chromium fonts-wqy-zenhei faketime)
missing=()
for pkg in "${want_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
extra=""; [ "${1:-}" = "--test" ] && extra="[test]"
.venv/bin/python -m pip install -q -e ".${extra}" 2>&1 | grep -v -i warning || true
# face-recognition declares `dlib` (a 7-minute source build); dlib-bin, a prebuilt wheel of the same
# library, is installed above as a dependency, so face-recognition goes in without its own.
.venv/bin/python -m pip install -q --no-deps "face-recognition==1.3.0" 2>&1 | grep -v -i warning || true
if [ "${1:-}" = "--test" ]; then
  # ipycam: a virtual ONVIF camera for tests; it asks for the GUI OpenCV, the headless one suffices.
  .venv/bin/python -m pip install -q --no-deps "ipycam==1.3.0" 2>&1 | grep -v -i warning || true
fi
# Fail loudly here, not at the first face: face_recognition exits 0 when its models are missing.
.venv/bin/python -c "import face_recognition_models, face_recognition, dlib, cv2" \
  || { echo "face recognition libraries did not install" >&2; exit 1; }
.venv/bin/accessgw --version
