"""Issue 12, keys: weak Ed25519 points, trust-store names, key files that are not files, atomic generate."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pack_builders import build_zip, manifest_for, ref_bytes, signature_for, write_ref

from lantern_studio.core.errors import KeyStoreError, PackError
from lantern_studio.core.keys import KeyStore, fingerprint, parse_public_key, raw_public_bytes
from lantern_studio.core.pack import canonical_json, export_pack, read_pack, verify_pack

REPO = Path(__file__).resolve().parents[1]

# The eight points of small order, canonically encoded (the list libsodium refuses, with both
# signs of x where x is not zero): order 1, 2, 4, 4, 8, 8, 8, 8.
SMALL_ORDER = [bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
)]  # fmt: skip
P = 2**255 - 19
# y >= p (19 values, either sign) and "negative zero" x: encodings no encoder produces.
NON_CANONICAL = [((P + k) | (s << 255)).to_bytes(32, "little") for k in range(19) for s in (0, 1)] + [
    (1 | 1 << 255).to_bytes(32, "little"),
    ((P - 1) | 1 << 255).to_bytes(32, "little"),
]


pytestmark = pytest.mark.usefixtures("config_dir")  # keys and trust store in tmp_path



def forged_pack(path: Path, public_key: bytes) -> Path:
    """A pack "signed" by ``public_key`` with R = identity, S = 0: valid for any manifest if the key has small order."""
    files = {"references/test-a.md": ref_bytes("test-a")}
    manifest = canonical_json(manifest_for(files))
    sig = canonical_json({"algorithm": "ed25519", "public_key": base64.b64encode(public_key).decode(),
                          "signature": base64.b64encode(SMALL_ORDER[0] + bytes(32)).decode()})  # fmt: skip
    return build_zip(path, [("manifest.json", manifest), *files.items(), ("signature.json", sig)])


# ---------------------------------------------------------------------------
# Item 7: small-order and non-canonical public keys


def test_cryptography_really_accepts_the_forgery_we_refuse():
    """The premise: the identity key verifies the all-identity signature over any message."""
    Ed25519PublicKey.from_public_bytes(SMALL_ORDER[0]).verify(SMALL_ORDER[0] + bytes(32), b"any manifest at all")


def test_a_pack_forged_with_the_identity_key_is_refused(tmp_path):
    pack = forged_pack(tmp_path / "forged.lantern", SMALL_ORDER[0])
    with pytest.raises(PackError, match="signing key is a point of small order"):
        read_pack(pack)
    assert verify_pack(pack).verdict == "invalid"


@pytest.mark.parametrize("raw", SMALL_ORDER + NON_CANONICAL, ids=lambda r: r.hex()[:8] + r.hex()[-2:])
def test_weak_public_keys_are_refused_when_trusting(lantern, raw):
    with pytest.raises(KeyStoreError, match="not a usable Ed25519 key|neither PEM"):
        parse_public_key(base64.b64encode(raw).decode())
    with pytest.raises(KeyStoreError):
        KeyStore().trust(raw, name="weak")
    code, _, err = lantern("keys", "trust", base64.b64encode(raw).decode(), "--name", "weak")
    assert code == 1 and err.count("\n") == 1
    assert KeyStore().trusted() == []


@pytest.mark.parametrize("raw", SMALL_ORDER[:1] + NON_CANONICAL[:1])
def test_a_weak_key_planted_in_the_trust_store_is_refused(raw):
    store = KeyStore()
    store.root.mkdir(parents=True)
    entry = {"fingerprint": fingerprint(raw), "name": "planted", "public_key": base64.b64encode(raw).decode()}
    store.trust_path.write_text(json.dumps({"format": "lantern-trust-store", "version": 1, "keys": [entry]}))
    with pytest.raises(KeyStoreError, match="has a key that is"):
        store.trusted()


def _torsion_shift(raw: bytes, index: int) -> bytes:
    """``raw`` plus a small-order point: a "mixed-order" key that no key generation makes."""
    from lantern_studio.core import ed25519_check as ed

    point, torsion = ed._decode(raw), ed._decode(SMALL_ORDER[index])
    x, y, z, _ = ed._add(point, torsion)
    zi = pow(z, -1, P)
    x, y = x * zi % P, y * zi % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


@settings(max_examples=40, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), torsion=st.integers(min_value=1, max_value=7))
def test_real_keys_are_accepted_and_their_torsion_shifts_are_not(seed, torsion):
    raw = raw_public_bytes(Ed25519PrivateKey.from_private_bytes(seed))
    assert parse_public_key(base64.b64encode(raw).decode()) == raw
    shifted = _torsion_shift(raw, torsion)
    assert shifted != raw
    Ed25519PublicKey.from_public_bytes(shifted)  # cryptography loads it...
    with pytest.raises(KeyStoreError, match="not a usable Ed25519 key"):  # ...we do not
        parse_public_key(base64.b64encode(shifted).decode())


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(min_size=32, max_size=32))
def test_any_32_bytes_are_either_refused_or_a_key_that_verifies_only_its_own_signatures(raw):
    try:
        parse_public_key(base64.b64encode(raw).decode())
    except KeyStoreError:
        return
    key = Ed25519PublicKey.from_public_bytes(raw)
    assert raw not in SMALL_ORDER and raw not in NON_CANONICAL
    with pytest.raises(Exception):  # noqa: B017, PT011 - InvalidSignature: the identity forgery fails
        key.verify(SMALL_ORDER[0] + bytes(32), b"manifest")


# ---------------------------------------------------------------------------
# Item 8: names in the trust store mean one key; untrust; fingerprints shown


def test_a_second_key_under_a_trusted_name_is_refused(lantern, tmp_path):
    first = raw_public_bytes(Ed25519PrivateKey.generate())
    second = raw_public_bytes(Ed25519PrivateKey.generate())
    assert lantern("keys", "trust", base64.b64encode(first).decode(), "--name", "rt")[0] == 0
    code, _, err = lantern("keys", "trust", base64.b64encode(second).decode(), "--name", "rt")
    assert code == 1 and "already belongs to the trusted key" in err and fingerprint(first) in err
    assert [(k.name, k.fingerprint) for k in KeyStore().trusted()] == [("rt", fingerprint(first))]
    assert lantern("keys", "trust", base64.b64encode(first).decode(), "--name", "renamed")[0] == 0


def test_a_name_that_is_another_keys_fingerprint_is_refused():
    first = raw_public_bytes(Ed25519PrivateKey.generate())
    second = raw_public_bytes(Ed25519PrivateKey.generate())
    with pytest.raises(KeyStoreError, match="looks like a fingerprint"):
        KeyStore().trust(second, name=fingerprint(first))


def test_generate_refuses_a_name_a_trusted_signer_already_has(config_dir):
    stranger = raw_public_bytes(Ed25519PrivateKey.generate())
    KeyStore().trust(stranger, name="ann")
    with pytest.raises(KeyStoreError, match="already belongs"):
        KeyStore().generate("ann")
    assert not (config_dir / "keys" / "ann.pem").exists()


def test_untrust_by_name_and_by_fingerprint(lantern):
    a, b = (raw_public_bytes(Ed25519PrivateKey.generate()) for _ in range(2))
    KeyStore().trust(a, name="alice")
    KeyStore().trust(b, name="bob")
    code, out, _ = lantern("keys", "untrust", "alice")
    assert code == 0 and out == f"No longer trusted: 'alice' ({fingerprint(a)}).\n"
    code, out, _ = lantern("keys", "untrust", fingerprint(b), "--json")
    assert code == 0 and json.loads(out)["name"] == "bob"
    assert KeyStore().trusted() == []
    code, _, err = lantern("keys", "untrust", "carol")
    assert code == 1 and err == "lantern: No trusted key has the name or fingerprint 'carol'.\n"


def test_a_hand_edited_store_with_a_duplicate_name_needs_the_fingerprint(lantern):
    store = KeyStore()
    store.root.mkdir(parents=True)
    keys = [raw_public_bytes(Ed25519PrivateKey.generate()) for _ in range(2)]
    entries = [{"fingerprint": fingerprint(k), "name": "rt", "public_key": base64.b64encode(k).decode()} for k in keys]
    store.trust_path.write_text(json.dumps({"format": "lantern-trust-store", "version": 1, "keys": entries}))
    code, _, err = lantern("keys", "untrust", "rt")
    assert code == 1 and "give the fingerprint" in err
    code, out, _ = lantern("keys", "list")
    assert all(f"{fingerprint(k)}  rt" in out for k in keys)  # told apart by fingerprint
    assert lantern("keys", "untrust", fingerprint(keys[0]))[0] == 0


def test_every_signer_shown_comes_with_its_fingerprint(lantern, tmp_path):
    d = tmp_path / "refs"
    d.mkdir()
    write_ref(d, "test-a")
    store = KeyStore()
    mine = store.generate("rt")
    out = export_pack([d / "test-a.md"], tmp_path / "a.lantern", signing_key=store.load_private("rt"))
    for argv in (("pack", "verify", out), ("pack", "inspect", out)):
        code, text, _ = lantern(*argv)
        assert code == 0 and f"rt, {mine.fingerprint}" in text
    code, text, _ = lantern("pack", "export", d / "test-a.md", "-o", tmp_path / "b.lantern", "--sign", "rt")
    assert code == 0 and f"signed by rt, {mine.fingerprint}" in text


def test_a_trust_store_name_with_control_characters_is_refused(lantern):
    store = KeyStore()
    store.root.mkdir(parents=True)
    raw = raw_public_bytes(Ed25519PrivateKey.generate())
    entry = {"fingerprint": fingerprint(raw), "name": "x\n  0000000000000000  fake", "public_key": base64.b64encode(raw).decode()}
    store.trust_path.write_text(json.dumps({"format": "lantern-trust-store", "version": 1, "keys": [entry]}))
    code, out, err = lantern("keys", "list")
    assert code == 1 and "fake" not in out and "not a valid key name" in err


def test_a_key_file_whose_name_ends_in_a_newline_is_not_listed(config_dir):
    info = KeyStore().generate("ann")
    os.link(info.path, config_dir / "keys" / "ann\n.pem")
    assert [k.name for k in KeyStore().list_keys()] == ["ann"]


# ---------------------------------------------------------------------------
# Item 14: key files that are not regular files; generate is atomic; verify --json with a bad store


def _cli(config_dir: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, so a hang is a failed test and not a hung suite."""
    env = dict(os.environ, LANTERN_CONFIG_DIR=str(config_dir), PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "lantern_studio.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)  # fmt: skip


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link", "fifo-link"])
def test_a_key_file_that_is_a_fifo_or_a_device_neither_hangs_nor_is_listed(config_dir, tmp_path, kind):
    KeyStore().generate("good")
    bad = config_dir / "keys" / "bad.pem"
    if kind == "fifo":
        os.mkfifo(bad)
    elif kind == "dev-zero-link":
        bad.symlink_to("/dev/zero")
    else:
        os.mkfifo(tmp_path / "fifo")
        bad.symlink_to(tmp_path / "fifo")
    listed = _cli(config_dir, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [k["name"] for k in json.loads(listed.stdout)["keys"]] == ["good"]
    d = tmp_path / "refs"
    d.mkdir()
    write_ref(d, "test-a")
    signed = _cli(config_dir, "pack", "export", str(d / "test-a.md"), "-o", str(tmp_path / "a.lantern"), "--sign", "bad")
    assert signed.returncode == 1 and "not a regular file" in signed.stderr and signed.stderr.count("\n") == 1
    assert "Traceback" not in signed.stderr and not (tmp_path / "a.lantern").exists()


def test_generate_with_a_corrupt_trust_store_writes_no_key(lantern, config_dir):
    config_dir.mkdir()
    (config_dir / "trusted_keys.json").write_text("{oops")
    code, _, err = lantern("keys", "generate", "--name", "ann")
    assert code == 1 and "not readable JSON" in err
    assert not (config_dir / "keys" / "ann.pem").exists()


def test_generate_with_an_unreadable_trust_store_writes_no_key(lantern, config_dir):
    (config_dir / "trusted_keys.json").mkdir(parents=True)  # unreadable, even for root
    code, _, err = lantern("keys", "generate", "--name", "ann")
    assert code == 1 and "trust store" in err and err.count("\n") == 1
    assert not (config_dir / "keys" / "ann.pem").exists()


def test_generate_removes_the_key_when_the_trust_store_cannot_be_written(config_dir, monkeypatch):
    from lantern_studio.core import keys as keys_module

    real = keys_module.atomic_write

    def refuse_trust_store(path, data, mode=0o666):
        if Path(path).name == "trusted_keys.json":
            raise OSError(28, "No space left on device")
        return real(path, data, mode)

    monkeypatch.setattr(keys_module, "atomic_write", refuse_trust_store)
    with pytest.raises(KeyStoreError, match="could not be written"):
        KeyStore().generate("ann")
    assert list((config_dir / "keys").iterdir()) == []


def test_verify_json_with_a_corrupt_trust_store_still_prints_json(lantern, tmp_path, config_dir):
    d = tmp_path / "refs"
    d.mkdir()
    write_ref(d, "test-a")
    key = Ed25519PrivateKey.generate()
    out = export_pack([d / "test-a.md"], tmp_path / "a.lantern", signing_key=key)
    config_dir.mkdir()
    (config_dir / "trusted_keys.json").write_text("{oops")
    code, stdout, _ = lantern("pack", "verify", out, "--json")
    result = json.loads(stdout)
    assert code == 0 and result["verdict"] == "valid-unknown" and result["valid"] is True
    assert result["signer"] == fingerprint(raw_public_bytes(key)) and "not readable JSON" in result["trust_error"]
    code, stdout, err = lantern("pack", "verify", out)
    assert code == 0 and stdout.startswith("valid — unknown signer (") and "warning" in err
    code, stdout, _ = lantern("pack", "inspect", out, "--json")
    assert code == 0 and "not readable JSON" in json.loads(stdout)["trust_error"]


@settings(max_examples=50, deadline=None)
@given(name=st.text(max_size=70))
def test_any_key_name_is_either_refused_or_printed_as_itself(name):
    """Names are the other field ``keys list`` prints: anything that gets in is printable as it is."""
    store = KeyStore()
    raw = raw_public_bytes(Ed25519PrivateKey.generate())
    try:
        info = store.trust(raw, name=name)
    except KeyStoreError:
        return
    assert info.name == name and name.isprintable() and not any(unicodedata.category(c)[0] == "Z" for c in name)
    store.untrust(info.fingerprint)


def test_signature_for_builds_what_the_reader_checks(tmp_path):
    """The hand-made signatures used above are the real format (a guard for the tests themselves)."""
    key = Ed25519PrivateKey.generate()
    files = {"references/test-a.md": ref_bytes("test-a")}
    manifest = canonical_json(manifest_for(files))
    path = build_zip(tmp_path / "s.lantern", [("manifest.json", manifest), *files.items(),
                                               ("signature.json", signature_for(key, manifest))])  # fmt: skip
    assert read_pack(path).verdict == "valid-unknown"
