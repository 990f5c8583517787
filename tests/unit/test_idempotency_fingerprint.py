"""What makes two requests with one Idempotency-Key "the same"."""

from __future__ import annotations

from functions.api.idempotency import key_scope, request_fingerprint


def multipart(boundary: str, content: bytes) -> tuple[str, bytes]:
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'.encode() + content
    return f"multipart/form-data; boundary={boundary}", body + f"\r\n--{boundary}--\r\n".encode()


def test_multipart_boundaries_do_not_count_but_contents_do() -> None:
    a = request_fingerprint("POST", "/v1/uploads", b"", *multipart("aaaa1111", b"image"))
    b = request_fingerprint("POST", "/v1/uploads", b"", *multipart("bbbb2222", b"image"))
    c = request_fingerprint("POST", "/v1/uploads", b"", *multipart("bbbb2222", b"other"))
    assert a == b != c


def test_method_path_query_media_type_and_body_all_count() -> None:
    base = ("POST", "/v1/images/generate", b"", "application/json", b"{}")
    variants = [
        ("PUT", *base[1:]),
        ("POST", "/v1/predictions", *base[2:]),
        (*base[:2], b"x=1", *base[3:]),
        (*base[:3], "text/plain", base[4]),
        (*base[:4], b'{"a": 1}'),
    ]
    fingerprints = {request_fingerprint(*base)} | {request_fingerprint(*v) for v in variants}
    assert len(fingerprints) == 6
    assert request_fingerprint(*base) == request_fingerprint(*base[:3], "application/json; charset=utf-8", b"{}")


def test_scopes_separate_tenants_and_endpoints() -> None:
    assert (
        len(
            {key_scope("t1", "POST", "/a", "k"), key_scope("t2", "POST", "/a", "k"), key_scope("t1", "POST", "/b", "k")}
        )
        == 3
    )
