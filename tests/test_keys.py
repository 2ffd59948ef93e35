"""Signing keys and the trust store: files, permissions, formats, the ``lantern keys`` commands."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lantern_studio import cli
from lantern_studio.core.errors import KeyStoreError
from lantern_studio.core.keys import (
    KeyStore,
    fingerprint,
    load_private_pem,
    parse_public_key,
    public_pem,
    raw_public_bytes,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


pytestmark = pytest.mark.usefixtures("config_dir")  # keys and trust store in tmp_path


@pytest.fixture
def lantern(monkeypatch, capsys):
    """Run ``lantern`` through the real main(), with only the pack and keys groups registered."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("pack", "keys"))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_store_lives_in_the_config_dir(config_dir):
    store = KeyStore()
    assert store.root == config_dir
    info = store.generate()
    assert info.name == "default" and info.path == config_dir / "keys" / "default.pem"
    assert store.trust_path == config_dir / "trusted_keys.json"


@posix_only
def test_private_keys_are_0600_in_a_0700_directory(config_dir):
    info = KeyStore().generate("ann")
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((config_dir / "keys").stat().st_mode) == 0o700
    assert not list((config_dir / "keys").glob(".*tmp"))


def test_fingerprint_is_16_hex_of_sha256_of_raw_key():
    key = Ed25519PrivateKey.generate()
    raw = raw_public_bytes(key)
    assert len(raw) == 32
    assert fingerprint(raw) == hashlib.sha256(raw).hexdigest()[:16]


def test_generate_trusts_the_new_key_and_never_replaces_one():
    store = KeyStore()
    info = store.generate("ann")
    assert [k.fingerprint for k in store.list_keys()] == [info.fingerprint]
    trusted = store.lookup(info.public_bytes)
    assert trusted is not None and trusted.name == "ann"
    before = info.path.read_bytes()
    with pytest.raises(KeyStoreError, match="already exists"):
        store.generate("ann")
    assert info.path.read_bytes() == before
    signed = store.load_private("ann").sign(b"hello")
    Ed25519PublicKey.from_public_bytes(info.public_bytes).verify(signed, b"hello")


def test_key_names_are_checked():
    for bad in ("", "../evil", "a/b", ".hidden", "x" * 65):
        with pytest.raises(KeyStoreError, match="Key name"):
            KeyStore().generate(bad)


def test_missing_key_is_named_clearly():
    with pytest.raises(
        KeyStoreError, match=r"There is no key named 'nobody' \(known: none; run lantern keys generate\)"
    ):
        KeyStore().load_private("nobody")


@posix_only
def test_a_private_key_others_can_read_is_refused():
    info = KeyStore().generate("ann")
    os.chmod(info.path, 0o644)
    with pytest.raises(KeyStoreError, match="readable by other users; run chmod 600"):
        KeyStore().load_private("ann")
    assert [k.name for k in KeyStore().list_keys()] == ["ann"]  # still listed, so the user can find it


def test_private_key_files_from_elsewhere(tmp_path):
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "k.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(path, 0o600)
    assert raw_public_bytes(load_private_pem(path)) == raw_public_bytes(key)
    path.write_text("not a key")
    with pytest.raises(KeyStoreError, match="not a readable PEM private key"):
        load_private_pem(path)


def test_trust_accepts_pem_and_base64_and_refuses_the_rest():
    raw = raw_public_bytes(Ed25519PrivateKey.generate())
    assert parse_public_key(public_pem(raw)) == raw
    assert parse_public_key(base64.b64encode(raw).decode() + "\n") == raw
    with pytest.raises(KeyStoreError, match="not the 32 of an Ed25519 key"):
        parse_public_key(base64.b64encode(b"short").decode())
    with pytest.raises(KeyStoreError, match="neither PEM nor base64"):
        parse_public_key("definitely not a key!")
    private = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyStoreError, match="That is a private key"):
        parse_public_key(private.decode())


def test_trust_store_round_trip_and_rename():
    store = KeyStore()
    raw = raw_public_bytes(Ed25519PrivateKey.generate())
    info = store.trust(raw)
    assert info.name == info.fingerprint  # default name
    store.trust(raw, name="bob")
    assert [(k.name, k.fingerprint) for k in KeyStore().trusted()] == [("bob", fingerprint(raw))]
    data = json.loads(store.trust_path.read_text())
    assert data["format"] == "lantern-trust-store" and data["version"] == 1
    assert store.untrust(info.fingerprint) and store.lookup(raw) is None


def test_a_broken_trust_store_is_a_clear_error():
    store = KeyStore()
    store.root.mkdir(parents=True)
    store.trust_path.write_text("{oops")
    with pytest.raises(KeyStoreError, match="not readable JSON"):
        store.trusted()
    store.trust_path.write_text(json.dumps({"format": "lantern-trust-store", "version": 9, "keys": []}))
    with pytest.raises(KeyStoreError, match="version 9"):
        store.trusted()


def test_cli_generate_list_export_public_and_trust(lantern, tmp_path, config_dir):
    code, out, _ = lantern("keys", "generate", "--name", "ann", "--json")
    assert code == 0
    made = json.loads(out)
    assert set(made) == {"name", "fingerprint", "public_key", "path"} and made["name"] == "ann"

    code, out, err = lantern("keys", "generate", "--name", "ann")
    assert code == 1 and err.startswith("lantern: A key named 'ann' already exists")

    code, pem, _ = lantern("keys", "export-public", "ann")
    assert code == 0 and pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert parse_public_key(pem) == base64.b64decode(made["public_key"])
    assert lantern("keys", "export-public", "ann", "-o", tmp_path / "ann.pem")[0] == 0
    assert (tmp_path / "ann.pem").read_text() == pem

    other = raw_public_bytes(Ed25519PrivateKey.generate())
    (tmp_path / "bob.pem").write_text(public_pem(other))
    code, out, _ = lantern("keys", "trust", tmp_path / "bob.pem", "--name", "bob")
    assert code == 0 and out.startswith("Trusted 'bob' (")
    third = raw_public_bytes(Ed25519PrivateKey.generate())
    assert lantern("keys", "trust", base64.b64encode(third).decode())[0] == 0
    code, _, err = lantern("keys", "trust", tmp_path / "missing.pem")
    assert code == 1 and err.startswith("lantern: ") and "is neither a readable file nor a public key" in err

    code, out, _ = lantern("keys", "list", "--json")
    listed = json.loads(out)
    assert [k["name"] for k in listed["keys"]] == ["ann"]
    assert {k["name"] for k in listed["trusted"]} == {"ann", "bob", fingerprint(third)}
    code, out, _ = lantern("keys", "list")
    assert code == 0 and "ann" in out and "bob" in out
