"""Packs: deterministic export, a reader that refuses hostile zips, safe import, the CLI.

Every hostile pack is built here with ``zipfile``; no fixture files, no Qt, no model.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pack_builders import build_pack, build_zip, manifest_for, patch_central_sizes, ref_bytes, signature_for, write_ref

from lantern_studio import cli
from lantern_studio.core.errors import PackError
from lantern_studio.core.keys import KeyStore, raw_public_bytes
from lantern_studio.core.pack import (
    DEFAULT_LIMITS,
    canonical_json,
    export_pack,
    import_pack,
    read_pack,
    verify_pack,
)

pytestmark = pytest.mark.usefixtures("config_dir")  # keys and trust store in tmp_path


@pytest.fixture
def refs(tmp_path) -> Path:
    """test-a links to test-b (found by slug under another file name); test-c is unrelated."""
    d = tmp_path / "refs"
    d.mkdir()
    write_ref(d, "test-a", links=("test-b",))
    write_ref(d, "test-b", filename="second.md")
    write_ref(d, "test-c")
    return d


@pytest.fixture
def trace(tmp_path) -> Path:
    path = tmp_path / "Run 1.jsonl"
    path.write_text('{"kind": "start", "prompt": "hi"}\n{"kind": "token", "index": 0, "text": "Hello"}\n', "utf-8")
    return path


# ---------------------------------------------------------------------------
# Round trip and determinism


def test_round_trip_export_verify_import(refs, tmp_path, trace):
    out = export_pack(
        [refs / "test-a.md"], tmp_path / "a.lantern", description="Two kind references.", trace_paths=[trace]
    )
    pack = read_pack(out)
    assert pack.verdict == "unsigned" and pack.signer is None
    assert sorted(pack.references) == ["references/test-a.md", "references/test-b.md"]  # link followed, test-c not
    assert list(pack.traces) == ["traces/run-1.jsonl"]
    m = pack.manifest
    assert m["format"] == "lantern-pack" and m["format_version"] == 1
    assert (m["name"], m["slug"], m["version"], m["entry"]) == ("Test A", "test-a", "1.0.0", "references/test-a.md")
    assert m["author"] == "Ann <ann@example.org>" and m["description"] == "Two kind references."
    assert m["created"] is None
    assert m["loop"] == pack.entry.loop.to_dict()
    assert m["files"]["references/test-b.md"] == hashlib.sha256((refs / "second.md").read_bytes()).hexdigest()
    assert verify_pack(out).verdict == "unsigned"

    into = tmp_path / "imported"
    written = import_pack(out, into)
    assert sorted(p.relative_to(into).as_posix() for p in written) == ["test-a.md", "test-b.md", "traces/run-1.jsonl"]
    assert (into / "test-a.md").read_bytes() == (refs / "test-a.md").read_bytes()
    assert (into / "test-b.md").read_bytes() == (refs / "second.md").read_bytes()
    assert (into / "traces" / "run-1.jsonl").read_bytes() == trace.read_bytes()
    assert not [p for p in into.rglob("*.tmp")]


def test_import_never_overwrites_without_asking(refs, tmp_path):
    out = export_pack([refs / "test-a.md"], tmp_path / "a.lantern")
    into = tmp_path / "imported"
    into.mkdir()
    (into / "test-b.md").write_text("my own work", "utf-8")
    with pytest.raises(PackError, match=r"already exists \(use --overwrite"):
        import_pack(out, into)
    assert sorted(p.name for p in into.iterdir()) == ["test-b.md"]  # not even test-a.md was written
    assert (into / "test-b.md").read_text("utf-8") == "my own work"
    import_pack(out, into, overwrite=True)
    assert (into / "test-b.md").read_bytes() == (refs / "second.md").read_bytes()


def test_two_exports_are_byte_identical(refs, tmp_path, trace):
    key = Ed25519PrivateKey.generate()
    first = export_pack([refs / "test-a.md"], tmp_path / "1.lantern", signing_key=key, trace_paths=[trace])
    os.utime(refs / "test-a.md", (1e9, 1e9))  # mtimes are not content
    second = export_pack([refs / "test-a.md"], tmp_path / "2.lantern", signing_key=key, trace_paths=[trace])
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_created_comes_from_source_date_epoch(refs, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = export_pack([refs / "test-a.md"], tmp_path / "1.lantern")
    assert read_pack(first).manifest["created"] == "2023-11-14T22:13:20Z"
    second = export_pack([refs / "test-a.md"], tmp_path / "2.lantern")
    assert first.read_bytes() == second.read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(PackError, match="SOURCE_DATE_EPOCH must be a whole number"):
        export_pack([refs / "test-a.md"], tmp_path / "3.lantern")


def test_export_refuses_a_dangling_link_and_duplicate_slugs(tmp_path):
    d = tmp_path / "refs"
    d.mkdir()
    write_ref(d, "test-a", links=("nowhere",))
    with pytest.raises(PackError, match="links to 'nowhere', but no reference with that slug"):
        export_pack([d / "test-a.md"], tmp_path / "a.lantern")
    write_ref(d, "test-a", filename="copy.md")
    (d / "test-a.md").unlink()
    write_ref(d, "test-a", filename="other.md")
    with pytest.raises(PackError, match="Two references have the slug 'test-a'"):
        export_pack([d / "copy.md", d / "other.md"], tmp_path / "a.lantern")
    assert not list(tmp_path.glob("*.lantern")) and not list(tmp_path.glob(".*tmp"))


def test_export_writes_atomically_over_an_old_pack(refs, tmp_path):
    out = tmp_path / "a.lantern"
    out.write_bytes(b"old")
    export_pack([refs / "test-a.md"], out)
    assert read_pack(out).verdict == "unsigned"
    assert not list(tmp_path.glob(".a.lantern.*"))


# ---------------------------------------------------------------------------
# Signatures and trust


def test_signed_pack_verdicts_follow_the_trust_store(refs, tmp_path):
    store = KeyStore()
    mine = store.generate("me")  # generated keys are trusted at once
    out = export_pack([refs / "test-a.md"], tmp_path / "a.lantern", signing_key=store.load_private("me"))
    pack = read_pack(out, store)
    assert (pack.verdict, pack.signer, pack.signer_name) == ("trusted", mine.fingerprint, "me")
    assert pack.public_key == mine.public_key

    stranger = Ed25519PrivateKey.generate()
    out2 = export_pack([refs / "test-a.md"], tmp_path / "b.lantern", signing_key=stranger)
    pack2 = read_pack(out2, store)
    assert pack2.verdict == "valid-unknown" and pack2.signer_name is None  # not refused
    assert import_pack(out2, tmp_path / "in")  # an unknown signer is shown, not refused
    store.trust(raw_public_bytes(stranger), name="stranger")
    assert read_pack(out2, store).verdict == "trusted"
    assert verify_pack(out2, store).signer_name == "stranger"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not on PATH")
def test_signature_verifies_with_openssl(refs, tmp_path):
    key = Ed25519PrivateKey.generate()
    out = export_pack([refs / "test-a.md"], tmp_path / "a.lantern", signing_key=key)
    with zipfile.ZipFile(out) as zf:
        (tmp_path / "manifest.json").write_bytes(zf.read("manifest.json"))
        sig = json.loads(zf.read("signature.json"))
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(sig["signature"]))
    # docs/packs.md: the raw key behind the fixed DER prefix of an Ed25519 SubjectPublicKeyInfo.
    der = bytes.fromhex("302a300506032b6570032100") + base64.b64decode(sig["public_key"])
    (tmp_path / "signer.der").write_bytes(der)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["openssl", *args], cwd=tmp_path, capture_output=True, text=True, check=False)

    assert run("pkey", "-pubin", "-inform", "DER", "-in", "signer.der", "-out", "signer.pem").returncode == 0
    verify = (
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "signer.pem",
        "-rawin",
        "-in",
        "manifest.json",
        "-sigfile",
        "sig.bin",
    )
    ok = run(*verify)
    assert ok.returncode == 0, ok.stderr
    assert "Signature Verified Successfully" in ok.stdout
    (tmp_path / "manifest.json").write_bytes((tmp_path / "manifest.json").read_bytes().replace(b"Test A", b"Test B"))
    assert run(*verify).returncode != 0


DOCS = Path(__file__).resolve().parent.parent / "docs" / "packs.md"


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("openssl", "unzip", "base64", "bash")), reason="needs openssl, unzip, base64"
)
def test_the_documented_openssl_recipe_verifies_a_pack(refs, tmp_path):
    out = export_pack([refs / "test-a.md"], tmp_path / "a.lantern", signing_key=_key())
    text = DOCS.read_text("utf-8")
    block = text.split("<!-- openssl-recipe -->", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert block.startswith("PACK=example.lantern\n")
    script = f"set -euo pipefail\nPACK={out}\n" + block.split("\n", 1)[1]
    work = tmp_path / "check"
    work.mkdir()
    done = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "Signature Verified Successfully" in done.stdout


def test_export_options_loop_and_model_hint(refs, tmp_path):
    out = export_pack(
        [refs / "test-a.md"],
        tmp_path / "a.lantern",
        loop={"mode": "guide", "gamma": 2},
        model_hint={"family": "smollm2", "name": "SmolLM2-135M-Instruct", "sha256": "0" * 64},
        created="2025-01-01T00:00:00Z",
    )
    pack = read_pack(out)
    assert pack.loop.mode == "guide" and pack.manifest["loop"]["gamma"] == 2.0
    assert pack.manifest["model_hint"]["family"] == "smollm2"
    assert pack.manifest["created"] == "2025-01-01T00:00:00Z"
    with pytest.raises(PackError, match="loop settings cannot be packed"):
        export_pack([refs / "test-a.md"], tmp_path / "b.lantern", loop={"mode": "yolo"})
    with pytest.raises(PackError, match="model_hint"):
        export_pack([refs / "test-a.md"], tmp_path / "b.lantern", model_hint={"url": "http://x"})


# ---------------------------------------------------------------------------
# Hostile packs: each refused with the sentence naming its check; nothing imported.


def _key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _zip_slip(p):
    return build_pack(p, extra=[("../x", b"pwned")])


def _zip_slip_nested(p):
    return build_pack(p, extra=[("references/../../x.md", b"pwned")])


def _absolute(p):
    return build_pack(p, extra=[("/tmp/x.md", b"pwned")])


def _windows_absolute(p):
    return build_pack(p, extra=[("C:/x.md", b"pwned")])


def _symlink(p):
    info = zipfile.ZipInfo("references/test-a.md")
    info.external_attr = 0o120777 << 16
    return build_zip(
        p,
        [
            ("manifest.json", canonical_json(manifest_for({"references/test-a.md": b"/etc/passwd"}))),
            (info, b"/etc/passwd"),
        ],
    )


def _directory_entry(p):
    return build_pack(p, extra=[("references/", b"")])


def _bomb_ratio(p):
    bomb = b"# Intent\n" + b" " * 2_000_000
    return build_pack(p, {"references/test-a.md": bomb})


def _bomb_declared(p):
    build_pack(p)
    patch_central_sizes(p, "references/test-a.md", file_size=0xFFFFFFF0)
    return p


def _bomb_total(p):
    files = {f"traces/t{i}.jsonl": b"{}\n" for i in range(40)} | {"references/test-a.md": ref_bytes("test-a")}
    build_pack(p, files)
    for i in range(40):
        patch_central_sizes(p, f"traces/t{i}.jsonl", file_size=1_900_000, compress_size=1_900_000)
    return p


def _many_files(p):
    return build_zip(p, [(f"references/r{i}.md", b"x") for i in range(10_000)], zipfile.ZIP_STORED)


def _hash_mismatch(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    tampered = {"references/test-a.md": ref_bytes("test-a").replace(b"Be kind.", b"Be cruel.")}
    return build_pack(p, tampered, manifest=manifest_for(files))


def _edited_manifest_old_signature(p):
    key = _key()
    files = {"references/test-a.md": ref_bytes("test-a")}
    signed = canonical_json(manifest_for(files))
    edited = canonical_json(manifest_for(files, name="Not what was signed"))
    return build_zip(p, [("manifest.json", edited), *files.items(), ("signature.json", signature_for(key, signed))])


def _signature_garbage(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    sig = canonical_json(
        {
            "algorithm": "ed25519",
            "public_key": base64.b64encode(raw_public_bytes(_key())).decode(),
            "signature": base64.b64encode(os.urandom(64)).decode(),
        }
    )
    return build_pack(p, files, extra=[("signature.json", sig)])


def _signature_wrong_key(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    manifest_bytes = canonical_json(manifest_for(files))
    sig = json.loads(signature_for(_key(), manifest_bytes))
    sig["public_key"] = base64.b64encode(raw_public_bytes(_key())).decode()
    return build_pack(p, files, extra=[("signature.json", canonical_json(sig))])


def _signature_malformed(p):
    return build_pack(p, extra=[("signature.json", b'{"algorithm": "ed25519"}')])


def _signature_rsa(p):
    sig = canonical_json({"algorithm": "rsa", "public_key": "", "signature": ""})
    return build_pack(p, extra=[("signature.json", sig)])


def _future_version(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    return build_pack(p, files, manifest=manifest_for(files, format_version=2))


def _not_a_lantern_manifest(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    return build_pack(p, files, manifest=manifest_for(files, format="other"))


def _non_utf8_reference(p):
    return build_pack(p, {"references/test-a.md": b"---\nslug: test-a\n---\n# Intent\n\xff\xfe caf\xe9\n"})


def _duplicate_names(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    return build_pack(p, files, extra=[("references/test-a.md", ref_bytes("test-a"))])


def _not_allowed(p):
    return build_pack(p, extra=[("install.sh", b"rm -rf ~")])


def _windows_device(p):
    files = {"references/test-a.md": ref_bytes("test-a"), "references/con.md": ref_bytes("con")}
    return build_pack(p, files)


def _listed_but_missing(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    manifest = manifest_for(files | {"references/test-b.md": b"gone"})
    return build_pack(p, files, manifest=manifest)


def _present_but_unlisted(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    return build_pack(p, files, extra=[("references/test-b.md", ref_bytes("test-b"))])


def _non_canonical_manifest(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    return build_pack(p, files, manifest=json.dumps(manifest_for(files), indent=2).encode())


def _manifest_not_json(p):
    return build_pack(p, manifest=b"{not json")


def _manifest_deep_nesting(p):
    return build_pack(p, manifest=b"[" * 30_000 + b"]" * 30_000)


def _no_manifest(p):
    return build_zip(p, [("references/test-a.md", ref_bytes("test-a"))])


def _no_entry_field(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    manifest = manifest_for(files)
    del manifest["entry"]
    return build_pack(p, files, manifest=manifest)


def _entry_not_in_pack(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    return build_pack(p, files, manifest=manifest_for(files, entry="references/elsewhere.md"))


def _unknown_field(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    return build_pack(p, files, manifest=manifest_for(files, run_on_open="rm -rf ~"))


def _bad_loop(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    return build_pack(p, files, manifest=manifest_for(files, loop={"mode": "yolo"}))


def _bad_digest(p):
    files = {"references/test-a.md": ref_bytes("test-a")}
    manifest = manifest_for(files)
    manifest["files"]["references/test-a.md"] = "ABC"
    return build_pack(p, files, manifest=manifest)


def _slug_mismatch(p):
    return build_pack(p, {"references/test-a.md": ref_bytes("test-z")})


def _duplicate_slugs(p):
    files = {"references/test-a.md": ref_bytes("test-a"), "references/test-b.md": ref_bytes("test-a")}
    return build_pack(p, files)


def _unparsable_reference(p):
    return build_pack(p, {"references/test-a.md": b"---\nslug: [unclosed\n---\n# Intent\n"})


def _bad_trace(p):
    files = {"references/test-a.md": ref_bytes("test-a"), "traces/run.jsonl": b'{"kind": "token"}\nnot json\n'}
    return build_pack(p, files)


def _encrypted_flag(p):
    build_pack(p)
    patch_central_sizes(p, "references/test-a.md", flag_bits=0x1)
    return p


def _size_lie(p):
    build_pack(p)
    patch_central_sizes(p, "references/test-a.md", file_size=20)
    return p


def _not_a_zip(p):
    p.write_bytes(b"This is not a zip file at all.\n")
    return p


def _empty_file(p):
    p.write_bytes(b"")
    return p


HOSTILE = {
    "zip-slip": (_zip_slip, r"'\.\.' component"),
    "zip-slip-nested": (_zip_slip_nested, r"'\.\.' component"),
    "absolute-path": (_absolute, "absolute path"),
    "windows-absolute-path": (_windows_absolute, "absolute path"),
    "symlink-entry": (_symlink, "is a symbolic link"),
    "directory-entry": (_directory_entry, "not a regular file|is not allowed"),
    "zip-bomb-ratio": (_bomb_ratio, r"compression ratio above 100:1"),
    "zip-bomb-declared-size": (_bomb_declared, r"declares 4294967280 bytes, more than its limit"),
    "zip-bomb-total-size": (_bomb_total, r"declares \d+ bytes in total, more than the limit"),
    "ten-thousand-files": (_many_files, "has 10000 entries, more than the limit of 1000"),
    "hash-mismatch": (_hash_mismatch, "does not match its sha256"),
    "edited-manifest-old-signature": (_edited_manifest_old_signature, "signature does not verify"),
    "invalid-signature": (_signature_garbage, "signature does not verify"),
    "signature-other-key": (_signature_wrong_key, "signature does not verify"),
    "signature-malformed": (_signature_malformed, "must hold exactly algorithm, public_key and signature"),
    "signature-rsa": (_signature_rsa, r"algorithm 'rsa' is not supported"),
    "unknown-format-version": (_future_version, "format version 2, which this Lantern Studio does not read"),
    "not-a-lantern-manifest": (_not_a_lantern_manifest, "format is 'other'"),
    "non-utf8-reference": (_non_utf8_reference, "is not valid UTF-8"),
    "duplicate-names": (_duplicate_names, "appears more than once"),
    "entry-not-allowed": (_not_allowed, "'install.sh' is not allowed"),
    "windows-device-name": (_windows_device, "reserved for devices on Windows"),
    "listed-but-missing": (_listed_but_missing, "lists 'references/test-b.md', which is not in the pack"),
    "present-but-unlisted": (_present_but_unlisted, "which the manifest does not list"),
    "non-canonical-manifest": (_non_canonical_manifest, "not in canonical form"),
    "manifest-not-json": (_manifest_not_json, "not valid UTF-8 JSON"),
    "manifest-deep-nesting": (_manifest_deep_nesting, "not valid UTF-8 JSON"),
    "no-manifest": (_no_manifest, "has no manifest.json"),
    "no-entry-field": (_no_entry_field, "has no 'entry' field"),
    "entry-not-in-pack": (_entry_not_in_pack, "entry 'references/elsewhere.md' is not one of the pack's references"),
    "unknown-manifest-field": (_unknown_field, "unknown field 'run_on_open'"),
    "bad-loop-settings": (_bad_loop, "loop settings are invalid"),
    "bad-digest": (_bad_digest, "is not 64 lowercase hex digits"),
    "slug-mismatch": (_slug_mismatch, "has slug 'test-z', which does not match its file name"),
    "duplicate-slugs": (
        _duplicate_slugs,
        "Two references in the pack have the slug 'test-a'|does not match its file name",
    ),
    "unparsable-reference": (_unparsable_reference, "does not parse"),
    "bad-trace": (_bad_trace, r"is not JSON lines \(line 2\)"),
    "encrypted-entry": (_encrypted_flag, "is encrypted"),
    "declared-size-lie": (_size_lie, "corrupt|holds|declares"),
    "not-a-zip": (_not_a_zip, "not a readable zip archive"),
    "empty-file": (_empty_file, "not a readable zip archive"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_pack_is_refused_and_nothing_is_written(case, tmp_path):
    build, message = HOSTILE[case]
    pack = build(tmp_path / "hostile.lantern")
    with pytest.raises(PackError, match=message) as caught:
        read_pack(pack)
    sentence = str(caught.value)
    assert sentence.endswith(".") and "\n" not in sentence
    assert verify_pack(pack).verdict == "invalid"
    into = tmp_path / "into"
    with pytest.raises(PackError, match=message):
        import_pack(pack, into)
    assert not into.exists()
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_duplicate_slug_check_reached_through_parsing(tmp_path):
    """Two files whose slugs collide are caught even though names differ (file-name check first)."""
    pack = _duplicate_slugs(tmp_path / "d.lantern")
    with pytest.raises(PackError):
        read_pack(pack)


def test_limits_enforced_while_reading_not_just_declared(tmp_path):
    """Data beyond the declared size is never returned: a crafted lie is refused on read."""
    pack = build_pack(tmp_path / "a.lantern")
    patch_central_sizes(pack, "references/test-a.md", file_size=20)
    with pytest.raises(PackError, match="corrupt|holds|declares"):
        read_pack(pack)


# ---------------------------------------------------------------------------
# Fuzzing: the reader raises PackError and nothing else


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def valid_pack_bytes(refs, tmp_path, trace) -> bytes:
    out = export_pack([refs / "test-a.md"], tmp_path / "valid.lantern", signing_key=_key(), trace_paths=[trace])
    return out.read_bytes()


def _read_only_pack_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        read_pack(path)
    except PackError:
        pass


@FUZZ
@given(data=st.binary(max_size=4096))
def test_fuzz_random_bytes(tmp_path, data):
    _read_only_pack_error(tmp_path / "fuzz.lantern", data)


@FUZZ
@given(tail=st.binary(max_size=2048))
def test_fuzz_zip_magic_then_random_bytes(tmp_path, tail):
    _read_only_pack_error(tmp_path / "fuzz.lantern", b"PK\x03\x04" + tail)
    _read_only_pack_error(tmp_path / "fuzz.lantern", tail + b"PK\x05\x06" + tail[:18])


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), min_size=1, max_size=8)
)
def test_fuzz_flipped_bytes_of_a_valid_pack(tmp_path, valid_pack_bytes, flips):
    data = bytearray(valid_pack_bytes)
    for index, xor in flips:
        data[index % len(data)] ^= xor
    _read_only_pack_error(tmp_path / "fuzz.lantern", bytes(data))


@FUZZ
@given(cut=st.integers(min_value=0), chunk=st.binary(max_size=64))
def test_fuzz_truncated_or_spliced_valid_pack(tmp_path, valid_pack_bytes, cut, chunk):
    cut %= len(valid_pack_bytes)
    _read_only_pack_error(tmp_path / "fuzz.lantern", valid_pack_bytes[:cut])
    _read_only_pack_error(tmp_path / "fuzz.lantern", valid_pack_bytes[:cut] + chunk + valid_pack_bytes[cut:])


def test_limits_are_the_documented_ones():
    assert DEFAULT_LIMITS.max_entries == 1000
    assert DEFAULT_LIMITS.max_reference_bytes == 2 * 1024 * 1024
    assert DEFAULT_LIMITS.max_trace_bytes == 20 * 1024 * 1024
    assert DEFAULT_LIMITS.max_total_bytes == 64 * 1024 * 1024
    assert DEFAULT_LIMITS.max_ratio == 100


# ---------------------------------------------------------------------------
# The command line


@pytest.fixture
def lantern(monkeypatch, capsys):
    """Run ``lantern`` through the real main(), with only the pack and keys groups registered."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("pack", "keys"))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_export_sign_inspect_verify_import(lantern, refs, tmp_path, trace):
    out = tmp_path / "a.lantern"
    assert lantern("keys", "generate", "--name", "ann")[0] == 0
    code, stdout, _ = lantern(
        "pack", "export", refs / "test-a.md", "-o", out, "--sign", "ann", "--include-traces", trace,
        "--name", "Kindness", "--version", "2.0.0", "--description", "Be kind.",
    )  # fmt: skip
    assert code == 0 and "2 references, 1 trace, signed by ann" in stdout

    code, stdout, _ = lantern("pack", "verify", out)
    assert code == 0 and stdout.startswith("trusted (ann, ")

    code, stdout, _ = lantern("pack", "inspect", out, "--json")
    info = json.loads(stdout)
    assert code == 0
    assert (info["name"], info["version"], info["description"]) == ("Kindness", "2.0.0", "Be kind.")
    assert (info["verdict"], info["signer"]["name"], info["status"]) == ("trusted", "ann", "draft")
    assert [f["path"] for f in info["files"]] == ["references/test-a.md", "references/test-b.md", "traces/run-1.jsonl"]
    assert info["references"][0]["links"] == ["test-b"] and info["manifest"]["format_version"] == 1

    code, stdout, _ = lantern("pack", "inspect", out)
    assert code == 0 and "signature:   trusted" in stdout and "Ann <ann@example.org>" in stdout

    into = tmp_path / "in"
    code, stdout, _ = lantern("pack", "import", out, "--into", into)
    assert code == 0 and (into / "test-a.md").is_file() and str(into / "test-b.md") in stdout
    code, _, err = lantern("pack", "import", out, "--into", into)
    assert code == 1 and err.startswith("lantern: Import refused: ") and "--overwrite" in err
    assert lantern("pack", "import", out, "--into", into, "--overwrite")[0] == 0


def test_cli_verify_verdicts_and_failures(lantern, refs, tmp_path):
    unsigned = export_pack([refs / "test-a.md"], tmp_path / "u.lantern")
    assert lantern("pack", "verify", unsigned)[:2] == (0, "unsigned\n")
    stranger = export_pack([refs / "test-a.md"], tmp_path / "s.lantern", signing_key=_key())
    code, stdout, _ = lantern("pack", "verify", stranger)
    assert code == 0 and stdout.startswith("valid — unknown signer (")

    bad = _edited_manifest_old_signature(tmp_path / "bad.lantern")
    code, stdout, err = lantern("pack", "verify", bad)
    assert (code, stdout) == (1, "")
    assert err == "lantern: The pack's signature does not verify against its manifest.json.\n"
    code, stdout, _ = lantern("pack", "verify", bad, "--json")
    assert code == 1
    assert json.loads(stdout) == {
        "pack": str(bad), "verdict": "invalid", "valid": False, "signer": None, "signer_name": None,
        "error": "The pack's signature does not verify against its manifest.json.",
    }  # fmt: skip
    code, stdout, _ = lantern("pack", "inspect", bad, "--json")
    assert code == 1 and json.loads(stdout)["verdict"] == "invalid"
    code, _, err = lantern("pack", "inspect", tmp_path / "missing.lantern")
    assert code == 1 and err.startswith("lantern: The pack ") and "cannot be read" in err


def test_cli_export_errors_are_one_sentence(lantern, tmp_path):
    d = tmp_path / "refs"
    d.mkdir()
    write_ref(d, "test-a", links=("nowhere",))
    code, _, err = lantern("pack", "export", d / "test-a.md", "-o", tmp_path / "a.lantern")
    assert code == 1 and err.startswith("lantern: Reference 'test-a' links to 'nowhere'") and err.count("\n") == 1
    code, _, err = lantern("pack", "export", d / "test-a.md", "-o", tmp_path / "a.lantern", "--sign", "nobody")
    assert code == 1 and "There is no key named 'nobody'" in err


def test_cli_sign_with_a_pem_file(lantern, refs, tmp_path):
    key = _key()
    pem = tmp_path / "signer.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pem.chmod(0o600)
    out = tmp_path / "a.lantern"
    code, stdout, _ = lantern("pack", "export", refs / "test-a.md", "-o", out, "--sign", pem, "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["verdict"] == "valid-unknown" and result["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert result["files"] == ["references/test-a.md", "references/test-b.md"]
