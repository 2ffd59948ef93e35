#!/usr/bin/env bash
# Build the one-folder desktop bundle dist/lantern-studio/ with PyInstaller, then smoke-test it.
#
#   make dist                       # installs '.[dist]' into .venv, then runs this script
#   bash packaging/build-dist.sh    # PYTHON=/path/to/python to use another environment
#
# The result: dist/lantern-studio/lantern-studio (the studio; a `lantern` link beside it is the
# CLI), install-desktop.sh, and a tarball dist/lantern-studio-<version>-linux-<arch>.tar.gz.
# Models are not bundled: the smoke test needs the default model in the user data dir or in
# LANTERN_MODELS_DIR (`make model` / `lantern models pull smollm2`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
APP=dist/lantern-studio
SHOT="${LANTERN_DIST_SCREENSHOT:-/tmp/dist-shot.png}"

if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "build-dist: PyInstaller is missing; installing the 'dist' extra." >&2
    "$PYTHON" -m pip install --quiet -e '.[dist]'
fi
VERSION="$("$PYTHON" -c 'import lantern_studio; print(lantern_studio.__version__)')"

echo "== PyInstaller: $APP (lantern-studio $VERSION)"
rm -rf "$APP" build/pyinstaller
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/lantern-studio.spec
ln -sfn lantern-studio "$APP/lantern"              # same executable; the name selects the CLI
install -m 755 packaging/install-desktop.sh "$APP/install-desktop.sh"

echo "== Smoke test"
fail() { echo "build-dist: smoke test failed: $*" >&2; exit 1; }
out="$("$APP/lantern-studio" --version)" || fail "lantern-studio --version exited $?"
echo "$out"
[[ "$out" == "lantern-studio $VERSION" ]] || fail "lantern-studio --version printed '$out'"
out="$("$APP/lantern" --version)" || fail "lantern --version exited $?"
echo "$out"
[[ "$out" == "lantern $VERSION" ]] || fail "lantern --version printed '$out'"

rm -f "$SHOT"
QT_QPA_PLATFORM=offscreen "$APP/lantern-studio" --reference references/otc-analgesics.md \
    --prompt "How much paracetamol can I take?" --mode observe --max-tokens 20 --screenshot "$SHOT" \
    || fail "the screenshot run exited $? (is the default model installed? try: $APP/lantern models pull smollm2)"
[[ -s "$SHOT" && "$(head -c 8 "$SHOT" | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] \
    || fail "$SHOT is not a PNG"
echo "screenshot: $SHOT ($(wc -c < "$SHOT") bytes)"

ARCH="$(uname -m)"
TARBALL="dist/lantern-studio-$VERSION-linux-$ARCH.tar.gz"
tar -C dist -czf "$TARBALL" lantern-studio
echo "== Done: $APP ($(du -sh "$APP" | cut -f1)), $TARBALL ($(du -sh "$TARBALL" | cut -f1))"
