"""Request signatures for destructive calls (the Realm-style API's "API Key + Signature Authentication").

The client signs `METHOD\\nPATH\\nTIMESTAMP\\nSHA256(body)` with its key's signing secret (HMAC-SHA256) and
sends `X-LF-Timestamp` and `X-LF-Signature: v1=<hex>`. The server refuses a timestamp outside its
tolerance (stale) and a signature it has seen before (replayed). Pure functions: clients use them too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TIMESTAMP_HEADER = "X-LF-Timestamp"
SIGNATURE_HEADER = "X-LF-Signature"
SCHEME = "v1"


def generate_signing_secret() -> str:
    """A new signing secret (256 bits), shown once to the key's owner."""
    return "lfs_" + secrets.token_urlsafe(32)


def generate_admin_token() -> str:
    """A new operator token (256 bits) for the operator API and /metrics."""
    return "lfa_" + secrets.token_urlsafe(32)


def string_to_sign(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    """What is signed: the method, the path (with its query string, if any), the time and the body's hash."""
    return "\n".join((method.upper(), path, timestamp, hashlib.sha256(body).hexdigest())).encode()


def sign(secret: str, method: str, path: str, timestamp: str, body: bytes = b"") -> str:
    """The `X-LF-Signature` header value for one request."""
    digest = hmac.new(secret.encode(), string_to_sign(method, path, timestamp, body), hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def signature_matches(secret: str, header: str, method: str, path: str, timestamp: str, body: bytes) -> bool:
    """Whether `header` is a valid signature of the request, compared in constant time."""
    expected = sign(secret, method, path, timestamp, body)
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def signed_headers(secret: str, method: str, path: str, timestamp: int, body: bytes = b"") -> dict[str, str]:
    """Both headers a client adds to a signed request."""
    ts = str(timestamp)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, method, path, ts, body)}
