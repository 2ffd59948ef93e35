"""Packaging: desktop entry, AppStream metainfo, icons, MIME type, versions, PyInstaller spec, wheel.

All fast (no build) except ``test_wheel_ships_resources_and_references`` (slow: builds a wheel).
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import shlex
import struct
import subprocess
import sys
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import lantern_studio
from lantern_studio.cli import COMMAND_MODULES

REPO = Path(__file__).resolve().parents[1]
RESOURCES = REPO / "resources"
ICONS = RESOURCES / "icons"
APP_ID = "io.github.lantern_studio.LanternStudio"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
BIN = Path(sys.executable).parent
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(RESOURCES / "lantern-studio.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


def exec_argv(exec_line: str, files: list[str]) -> list[str]:
    """Expand an Exec= value as the Desktop Entry spec says (string escapes, then quoting, then %f)."""
    unescaped, i = [], 0
    while i < len(exec_line):
        c = exec_line[i]
        if c == "\\" and i + 1 < len(exec_line):
            nxt = exec_line[i + 1]
            mapping = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
            assert nxt in mapping, f"invalid string escape \\{nxt} in Exec"
            unescaped.append(mapping[nxt])
            i += 2
            continue
        unescaped.append(c)
        i += 1
    argv, current, quoted, in_arg, i = [], [], False, False, 0
    text = "".join(unescaped)
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\" and text[i + 1] in '"`$\\':
                current.append(text[i + 1])
                i += 1
            elif c == '"':
                quoted = False
            else:
                current.append(c)
        elif c == '"':
            quoted = in_arg = True
        elif c == " ":
            if in_arg:
                argv.append("".join(current))
            current, in_arg = [], False
        else:
            current.append(c)
            in_arg = True
        i += 1
    assert not quoted, "unterminated quote in Exec"
    if in_arg:
        argv.append("".join(current))
    expanded = []
    for arg in argv:
        if arg in ("%f", "%u"):
            expanded.extend(files[:1])
        elif arg in ("%F", "%U"):
            expanded.extend(files)
        else:
            expanded.append(arg)
    return expanded


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# --- desktop entry ----------------------------------------------------------------------------

def test_desktop_entry_has_the_required_keys():
    entry = desktop_entry()
    for key in ("Type", "Name", "Exec", "Icon", "Categories", "MimeType", "Comment"):
        assert entry.get(key), f"{key} is missing"
    assert entry["Type"] == "Application"
    assert entry["Icon"] == "lantern-studio"
    assert entry["Terminal"] == "false"
    assert "application/x-lantern-pack" in entry["MimeType"].split(";")
    assert entry["Categories"].endswith(";") and entry["MimeType"].endswith(";")
    assert "%f" in entry["Exec"] or "%F" in entry["Exec"]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX sh")
@pytest.mark.parametrize("files", [[], ["/tmp/some dir/my pack.lantern"]])
def test_desktop_exec_opens_the_studio_with_and_without_a_pack(tmp_path, files):
    # A stand-in lantern-studio on PATH records the arguments it was given.
    fake = tmp_path / "lantern-studio"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    argv = exec_argv(desktop_entry()["Exec"], files)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=True).stdout
    expected = ["--pack", files[0]] if files else []
    assert out.splitlines() == expected, shlex.join(argv)


# --- AppStream, MIME ----------------------------------------------------------------------------

def test_metainfo_is_well_formed_with_id_name_summary_launchable():
    path = RESOURCES / f"{APP_ID}.metainfo.xml"
    root = ET.parse(path).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.findtext("name") == "Lantern Studio"
    assert root.findtext("summary")
    launchable = root.find("launchable")
    assert launchable is not None and launchable.get("type") == "desktop-id"
    assert launchable.text == "lantern-studio.desktop"
    assert root.findtext("metadata_license") and root.findtext("project_license")
    versions = [r.get("version") for r in root.iter("release")]
    assert lantern_studio.__version__ in versions


def test_mime_type_xml_is_well_formed():
    root = ET.parse(RESOURCES / "lantern-studio-mime.xml").getroot()
    assert root.tag == f"{MIME_NS}mime-info"
    (mime,) = root.findall(f"{MIME_NS}mime-type")
    assert mime.get("type") == "application/x-lantern-pack"
    assert [g.get("pattern") for g in mime.findall(f"{MIME_NS}glob")] == ["*.lantern"]
    assert mime.findtext(f"{MIME_NS}comment")


# --- icons --------------------------------------------------------------------------------------

def test_svg_icon_is_well_formed():
    root = ET.parse(ICONS / "lantern-studio.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 128 128"


@pytest.mark.parametrize("size", ICON_SIZES)
def test_png_icon_sizes(size):
    path = ICONS / f"lantern-studio-{size}.png"
    assert path.is_file(), f"{path.name} is missing (run packaging/render_icons.py)"
    assert png_size(path) == (size, size)


# --- versions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["lantern", "lantern-studio"])
def test_scripts_print_the_package_version(script):
    exe = BIN / script
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (pip install -e .)")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{script} {lantern_studio.__version__}"


def test_changelog_mentions_the_version():
    assert f"## {lantern_studio.__version__}" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")


# --- PyInstaller spec ---------------------------------------------------------------------------

def test_spec_declares_the_cli_command_modules_as_hidden_imports():
    spec = (REPO / "packaging" / "lantern-studio.spec").read_text(encoding="utf-8")
    for name in COMMAND_MODULES:
        assert f'"lantern_studio.cli.{name}"' in spec, f"lantern_studio.cli.{name} is not a hidden import"
    for needed in ('"resources"', '"references"', "llama_cpp/lib", "packaging\" / \"entry.py"):
        assert needed in spec


# --- wheel --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_wheel_ships_resources_and_references(tmp_path):
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' module is not installed (pip install -e '.[dist]')")
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(REPO)],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = tmp_path.glob("lantern_studio-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lantern_studio/_shipped/references/otc-analgesics.md" in names
    assert "lantern_studio/_shipped/resources/icons/lantern-studio.svg" in names
    assert "lantern_studio/_shipped/resources/themes/light.qss" in names
    assert "lantern_studio/paths.py" in names
