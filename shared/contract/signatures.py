"""Signing a record: Ed25519 over the value's exact bytes, the signature and key id in its headers.

A producer signs a record's value exactly as published (the canonical bytes are the bytes on the wire:
nothing is re-serialised before verifying). Who may sign what is the platform's trust list
(``shared/platform/signing.py``, ``docs/signing.md``).

Keys are ``cryptography``'s objects (parsed, stored, given to operators); the signing and the checking are
libsodium's (PyNaCl), which does both about twice as fast as OpenSSL on the development box (a check 40 µs
against 83-97, a signature 18 against 32) and gives the same, deterministic Ed25519 signatures. Every service
checks the signature of every case event it reads, so this is a share of each one's CPU (docs/performance.md).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path

import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

SIGNATURE_HEADER = "ledger-signature"
KEY_ID_HEADER = "ledger-key-id"
SIGNATURE_BYTES = 64


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_b64(key: Ed25519PublicKey) -> str:
    """A public key as base64 of its raw bytes: how it is given to operators and stored."""
    return base64.b64encode(public_bytes(key)).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """The SHA-256 of the raw public key, hex: how a signature names its key."""
    return hashlib.sha256(public_bytes(key)).hexdigest()


def public_key_from(text: str) -> Ed25519PublicKey:
    """A public key given as base64 of its 32 raw bytes, or as the path of a file holding that."""
    path = Path(text).expanduser()
    encoded = path.read_text().strip() if path.is_file() else text.strip()
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded, validate=True))


def private_key_from(encoded: str) -> Ed25519PrivateKey:
    """A private key given as base64 of its 32 raw bytes."""
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded.strip(), validate=True))


def private_b64(key: Ed25519PrivateKey) -> str:
    """A private key as base64 of its 32 raw bytes: how a key file holds it."""
    return base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()


def sign(key: Ed25519PrivateKey, value: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``key`` over ``value``'s exact bytes."""
    return _signing_key(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).sign(value).signature


def holds(key: Ed25519PublicKey, signature: bytes, value: bytes) -> bool:
    """Whether ``signature`` is ``key``'s Ed25519 signature over ``value``'s exact bytes."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        _verify_key(public_bytes(key)).verify(value, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


@functools.lru_cache(maxsize=64)
def _signing_key(seed: bytes) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(seed)


@functools.lru_cache(maxsize=1024)
def _verify_key(raw: bytes) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(raw)


def signature_headers(value: bytes, key: Ed25519PrivateKey) -> list[tuple[str, bytes]]:
    """The headers that sign ``value``: the base64 signature over its exact bytes, and the key's id."""
    signature = base64.b64encode(sign(key, value))
    return [(SIGNATURE_HEADER, signature), (KEY_ID_HEADER, key_id(key.public_key()).encode())]
