#!/usr/bin/env bash
# Install Lantern Studio's desktop integration for the current user (no root needed):
# the launcher (.desktop), the AppStream metainfo, the icons, and the application/x-lantern-pack
# MIME type, so that the studio shows up in the menu and double-clicking a .lantern pack opens it.
#
#   bash packaging/install-desktop.sh              # from a checkout (lantern-studio on PATH, e.g. pip install)
#   dist/lantern-studio/install-desktop.sh         # from the bundle: also links ~/.local/bin/lantern{,-studio}
#   bash packaging/install-desktop.sh --uninstall
#
# Files go to ${XDG_DATA_HOME:-~/.local/share}; the caches (desktop database, MIME database, icon
# cache) are refreshed with whichever of xdg-mime / update-desktop-database / update-mime-database /
# gtk-update-icon-cache are installed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
BIN="${XDG_BIN_HOME:-$HOME/.local/bin}"
APP_ID=io.github.lantern_studio.LanternStudio
MIME=application/x-lantern-pack
SIZES="16 24 32 48 64 128 256 512"

if [[ -d "$HERE/_internal/resources" ]]; then      # inside dist/lantern-studio/
    RES="$HERE/_internal/resources"; BUNDLE="$HERE"
elif [[ -d "$HERE/../resources" ]]; then           # packaging/ of a checkout
    RES="$(cd "$HERE/../resources" && pwd)"; BUNDLE=""
else
    echo "install-desktop: cannot find the resources folder next to $HERE" >&2; exit 1
fi

have() { command -v "$1" >/dev/null 2>&1; }

refresh() {
    if have update-desktop-database; then update-desktop-database -q "$DATA/applications" || true; fi
    if have update-mime-database; then update-mime-database "$DATA/mime" >/dev/null 2>&1 || true; fi
    if have gtk-update-icon-cache && [[ -f "$DATA/icons/hicolor/index.theme" ]]; then
        gtk-update-icon-cache -q -f -t "$DATA/icons/hicolor" || true
    fi
}

if [[ "${1:-}" == "--uninstall" ]]; then
    rm -f "$DATA/applications/lantern-studio.desktop" "$DATA/metainfo/$APP_ID.metainfo.xml" \
          "$DATA/mime/packages/lantern-studio-mime.xml" "$DATA/icons/hicolor/scalable/apps/lantern-studio.svg" \
          "$DATA/icons/hicolor/scalable/mimetypes/application-x-lantern-pack.svg"
    for s in $SIZES; do
        rm -f "$DATA/icons/hicolor/${s}x${s}/apps/lantern-studio.png" \
              "$DATA/icons/hicolor/${s}x${s}/mimetypes/application-x-lantern-pack.png"
    done
    for link in "$BIN/lantern-studio" "$BIN/lantern"; do
        # only our own links into a bundle
        if [[ -L "$link" && "$(readlink "$link")" == */lantern-studio/lantern-studio ]]; then rm -f "$link"; fi
    done
    refresh
    echo "Lantern Studio's desktop integration is removed."
    exit 0
fi

# The executable: the bundle's (linked into ~/.local/bin) or whatever `lantern-studio` is on PATH.
if [[ -n "$BUNDLE" ]]; then
    mkdir -p "$BIN"
    ln -sfn "$BUNDLE/lantern-studio" "$BIN/lantern-studio"
    ln -sfn "$BUNDLE/lantern-studio" "$BIN/lantern"   # the same executable is the CLI under this name
    case ":$PATH:" in *":$BIN:"*) ;; *) echo "Note: add $BIN to your PATH for the lantern commands." ;; esac
elif ! have lantern-studio; then
    echo "Note: lantern-studio is not on PATH yet (pip install the wheel, or use the bundle's installer)." >&2
fi

install -D -m 644 "$RES/lantern-studio.desktop" "$DATA/applications/lantern-studio.desktop"
if [[ -n "$BUNDLE" ]]; then
    # Menu launchers do not always see ~/.local/bin on PATH: point TryExec at the bundle itself.
    sed -i "s|^TryExec=.*|TryExec=$BUNDLE/lantern-studio|; s|exec lantern-studio |exec '$BUNDLE/lantern-studio' |" \
        "$DATA/applications/lantern-studio.desktop"
fi
install -D -m 644 "$RES/$APP_ID.metainfo.xml" "$DATA/metainfo/$APP_ID.metainfo.xml"

install -D -m 644 "$RES/icons/lantern-studio.svg" "$DATA/icons/hicolor/scalable/apps/lantern-studio.svg"
install -D -m 644 "$RES/icons/lantern-studio.svg" "$DATA/icons/hicolor/scalable/mimetypes/application-x-lantern-pack.svg"
for s in $SIZES; do
    install -D -m 644 "$RES/icons/lantern-studio-$s.png" "$DATA/icons/hicolor/${s}x${s}/apps/lantern-studio.png"
    install -D -m 644 "$RES/icons/lantern-studio-$s.png" "$DATA/icons/hicolor/${s}x${s}/mimetypes/application-x-lantern-pack.png"
done
if [[ ! -f "$DATA/icons/hicolor/index.theme" && -f /usr/share/icons/hicolor/index.theme ]]; then
    cp /usr/share/icons/hicolor/index.theme "$DATA/icons/hicolor/index.theme"
fi

if have xdg-mime; then
    xdg-mime install --mode user --novendor "$RES/lantern-studio-mime.xml" || \
        install -D -m 644 "$RES/lantern-studio-mime.xml" "$DATA/mime/packages/lantern-studio-mime.xml"
    xdg-mime default lantern-studio.desktop "$MIME" || true
else
    install -D -m 644 "$RES/lantern-studio-mime.xml" "$DATA/mime/packages/lantern-studio-mime.xml"
    # Make the studio the default for packs (what `xdg-mime default` would write).
    mkdir -p "${XDG_CONFIG_HOME:-$HOME/.config}"
    LIST="${XDG_CONFIG_HOME:-$HOME/.config}/mimeapps.list"
    touch "$LIST"
    if ! grep -q "^$MIME=" "$LIST"; then
        if grep -q '^\[Default Applications\]' "$LIST"; then
            sed -i "/^\[Default Applications\]/a $MIME=lantern-studio.desktop" "$LIST"
        else
            printf '[Default Applications]\n%s=lantern-studio.desktop\n' "$MIME" >> "$LIST"
        fi
    fi
fi
refresh
echo "Lantern Studio is installed in the menu; .lantern packs open in the studio (files under $DATA)."
