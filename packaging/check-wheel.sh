#!/usr/bin/env bash
# Build the sdist and the wheel (python -m build: the wheel is built from the sdist), install the
# wheel into a fresh venv, and check the installed commands work outside the checkout, with the
# shipped references and resources found as package data (lantern_studio/_shipped/).
#
#   bash packaging/check-wheel.sh          # PYTHON=…, WHEEL_VENV=… (default /tmp/wheelvenv)
#
# Needs the `build` module (pip install -e '.[dist]') and the default model for `lantern probe`
# (user data dir or LANTERN_MODELS_DIR).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
VENV="${WHEEL_VENV:-/tmp/wheelvenv}"
OUT="$(mktemp -d /tmp/lantern-wheel.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT

VERSION="$("$PYTHON" -c 'import lantern_studio; print(lantern_studio.__version__)')"
echo "== python -m build (sdist + wheel) -> dist/"
"$PYTHON" -m build --outdir "$OUT" . >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
WHEEL="$(ls "$OUT"/lantern_studio-"$VERSION"-*.whl)"
mkdir -p dist && cp "$WHEEL" "$OUT"/lantern_studio-"$VERSION".tar.gz dist/
WHEEL="dist/$(basename "$WHEEL")"
"$PYTHON" - "$WHEEL" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["lantern_studio/_shipped/references/otc-analgesics.md",
        "lantern_studio/_shipped/resources/icons/lantern-studio.svg",
        "lantern_studio/_shipped/resources/themes/light.qss"]
missing = [n for n in need if n not in names]
if missing:
    sys.exit(f"check-wheel: the wheel lacks {missing}")
print(f"{sys.argv[1]}: {len(names)} files, shipped folders present")
PY

echo "== fresh venv: $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$WHEEL"

cd /tmp   # away from the checkout, so nothing can come from it
echo "== lantern --version";     "$VENV/bin/lantern" --version
test "$("$VENV/bin/lantern" --version)" = "lantern $VERSION"
echo "== lantern-studio --version"; "$VENV/bin/lantern-studio" --version
test "$("$VENV/bin/lantern-studio" --version)" = "lantern-studio $VERSION"
echo "== lantern models list";   "$VENV/bin/lantern" models list

REFS="$("$VENV/bin/python" -c 'from lantern_studio.paths import references_dir as r, resources_dir as s; print(r()); assert (s() / "icons" / "lantern-studio.svg").is_file()')"
echo "references_dir() = $REFS"
case "$REFS" in "$VENV"/*/lantern_studio/_shipped/references) ;; *) echo "check-wheel: references_dir() is not the wheel's package data" >&2; exit 1;; esac

echo "== lantern probe (shipped reference)"
"$VENV/bin/lantern" probe "$REFS/otc-analgesics.md" --modes none,observe --max-tokens 24
echo "== The wheel works: $WHEEL ($(du -h "$ROOT/$WHEEL" | cut -f1))"
