"""Bytes → str for HTML payloads: HTTP charset, then <meta charset>, then detection (resiliparse)."""

from __future__ import annotations

import codecs
import re

from resiliparse.parse.encoding import bytes_to_str, detect_encoding

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([a-zA-Z0-9_\-:.]+)", re.IGNORECASE)


def _known(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = _HEADER_CHARSET.search(content_type)
    return _known(m.group(1)) if m else None


def sniff_charset(payload: bytes, declared: str | None) -> str:
    """Pick the encoding: the declared one when it decodes cleanly, else <meta>, else detection."""
    for candidate in (_known(declared), _meta_charset(payload)):
        if candidate:
            try:
                payload.decode(candidate)
                return candidate
            except (UnicodeDecodeError, LookupError):
                continue
    try:
        payload.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return detect_encoding(payload)


def _meta_charset(payload: bytes) -> str | None:
    m = _META_CHARSET.search(payload[:4096])
    return _known(m.group(1).decode("ascii", "ignore")) if m else None


def decode_html(payload: bytes, content_type: str | None) -> tuple[str, str]:
    """Return (text, encoding used). Undecodable bytes are replaced, never raised."""
    encoding = sniff_charset(payload, charset_from_content_type(content_type))
    return bytes_to_str(payload, encoding, errors="replace"), encoding
