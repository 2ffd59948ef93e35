#!/usr/bin/env bash
# Installs the Debian libraries Qt needs, only those missing:
#   * what the offscreen platform (tests) and any Qt widget load;
#   * every library the installed PySide6's xcb platform plugin (a real X display) links to
#     that the dynamic linker cannot find: `ldd` on libqxcb.so and libQt6XcbQpa.so, each
#     "not found" mapped to its Debian package;
#   * with --test: Xvfb and xdotool, so the test suite can run the studio on a real X server.
# Usage: ensure-system-deps.sh [--test] [PYTHON]   (PYTHON: the venv's python, to find PySide6)
set -euo pipefail

with_test=0
python=""
for arg in "$@"; do
  case "$arg" in
    --test) with_test=1 ;;
    *) python="$arg" ;;
  esac
done
python="${python:-.venv/bin/python}"

# Missing library (soname) -> Debian package that ships it.
declare -A PACKAGE_OF=(
  [libxcb-icccm.so.4]=libxcb-icccm4 [libxcb-keysyms.so.1]=libxcb-keysyms1
  [libxcb-image.so.0]=libxcb-image0 [libxcb-render-util.so.0]=libxcb-render-util0
  [libxcb-randr.so.0]=libxcb-randr0 [libxcb-shape.so.0]=libxcb-shape0
  [libxcb-xinerama.so.0]=libxcb-xinerama0 [libxcb-xkb.so.1]=libxcb-xkb1
  [libxkbcommon-x11.so.0]=libxkbcommon-x11-0 [libxcb-cursor.so.0]=libxcb-cursor0
  [libxcb-shm.so.0]=libxcb-shm0 [libxcb-sync.so.1]=libxcb-sync1 [libxcb-xfixes.so.0]=libxcb-xfixes0
  [libxcb-render.so.0]=libxcb-render0 [libxcb-glx.so.0]=libxcb-glx0 [libxcb-xinput.so.0]=libxcb-xinput0
  [libxcb-util.so.1]=libxcb-util1 [libxcb.so.1]=libxcb1 [libX11-xcb.so.1]=libx11-xcb1 [libX11.so.6]=libx11-6
  [libxkbcommon.so.0]=libxkbcommon0 [libSM.so.6]=libsm6 [libICE.so.6]=libice6
  [libfontconfig.so.1]=libfontconfig1 [libfreetype.so.6]=libfreetype6 [libdbus-1.so.3]=libdbus-1-3
  [libglib-2.0.so.0]=libglib2.0-0 [libgthread-2.0.so.0]=libglib2.0-0 [libEGL.so.1]=libegl1
  [libGL.so.1]=libgl1 [libOpenGL.so.0]=libopengl0 [libGLX.so.0]=libglx0 [libwayland-client.so.0]=libwayland-client0
  [libwayland-cursor.so.0]=libwayland-cursor0 [libwayland-egl.so.1]=libwayland-egl1 [libxcb-ewmh.so.2]=libxcb-ewmh2
)

needed=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0 fonts-dejavu-core)
[ "$with_test" -eq 1 ] && needed+=(xvfb xdotool)

# The xcb plugin's real dependencies, from the PySide6 that is installed.
qt_dir=""
if [ -x "$python" ]; then
  qt_dir="$("$python" -c 'import os, PySide6; print(os.path.join(os.path.dirname(PySide6.__file__), "Qt"))' 2>/dev/null || true)"
fi
unknown=()
if [ -n "$qt_dir" ] && [ -d "$qt_dir" ] && command -v ldd >/dev/null; then
  libs=("$qt_dir"/plugins/platforms/libqxcb.so "$qt_dir"/lib/libQt6XcbQpa.so*)
  for lib in "${libs[@]}"; do
    [ -e "$lib" ] || continue
    while read -r soname; do
      pkg="${PACKAGE_OF[$soname]:-}"
      if [ -n "$pkg" ]; then needed+=("$pkg"); else unknown+=("$soname"); fi
    done < <(LD_LIBRARY_PATH="$qt_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$lib" 2>/dev/null \
             | awk '/not found/ {print $1}')
  done
else
  # PySide6 is not installed yet (or no ldd): the packages its xcb plugin is known to need.
  needed+=(libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-randr0 libxcb-shape0
           libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0)
fi

missing=()
for pkg in $(printf '%s\n' "${needed[@]}" | sort -u); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#unknown[@]} -gt 0 ]; then
  echo "Qt's xcb plugin also needs $(printf '%s ' "${unknown[@]}" | sort -u | xargs), which this script cannot map to a Debian package." >&2
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "Qt needs these Debian packages and apt-get is not available here: ${missing[*]}." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "Qt needs these Debian packages, please install them as root: ${missing[*]}." >&2
    exit 1
  fi
fi
echo "Installing the system libraries Qt needs: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
