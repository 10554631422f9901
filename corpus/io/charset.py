"""Bytes → str for HTML payloads: HTTP charset, then <meta charset>, then detection (resiliparse).

A declared charset is used only when it is a real charset for HTML: a text codec that maps ASCII to itself
(so not punycode/idna/unicode-escape/utf-7, whose decoders raise UnicodeError or reinterpret markup, nor
EBCDIC code pages), or UTF-16/32 when the payload looks like it (a BOM or NUL bytes). As in the HTML
standard, `<meta charset=utf-16>` on ASCII-compatible bytes does not make them UTF-16.
"""

from __future__ import annotations

import codecs
import re
from functools import cache

from resiliparse.parse.encoding import bytes_to_str, detect_encoding

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([a-zA-Z0-9_\-:.]+)", re.IGNORECASE)
# Text codecs that are not charsets a web page can be in (their decoders interpret escapes or raise).
_NOT_CHARSETS = {"punycode", "idna", "unicode-escape", "raw-unicode-escape", "utf-7", "undefined", "charmap"}
_ASCII_PROBE = bytes(range(0x20, 0x7F)) + b"\t\r\n"
_WIDE = ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


@cache
def _charset(name: str) -> str | None:
    """The codec name for a charset label, or None when it is unknown or not usable for HTML bytes."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    if info.name in _WIDE:
        return info.name
    try:
        ascii_compatible = _ASCII_PROBE.decode(info.name) == _ASCII_PROBE.decode("ascii")
    except (UnicodeError, LookupError):
        return None
    return info.name if ascii_compatible else None


def _known(name: str | None, payload: bytes = b"") -> str | None:
    if not name:
        return None
    enc = _charset(name.strip().lower())
    if enc in _WIDE and not (payload[:4].startswith(_BOMS) or b"\x00" in payload[:4096]):
        return None  # declared UTF-16/32, but the bytes are ASCII-compatible: the declaration is wrong
    return enc


def charset_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = _HEADER_CHARSET.search(content_type)
    return _charset(m.group(1).lower()) if m else None


def sniff_charset(payload: bytes, declared: str | None) -> str:
    """Pick the encoding: the declared one when it decodes cleanly, else <meta>, else detection."""
    for candidate in (_known(declared, payload), _meta_charset(payload)):
        if candidate:
            try:
                payload.decode(candidate)
                return candidate
            except (UnicodeError, LookupError):
                continue
    try:
        payload.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return detect_encoding(payload)


def _meta_charset(payload: bytes) -> str | None:
    m = _META_CHARSET.search(payload[:4096])
    return _known(m.group(1).decode("ascii", "ignore"), payload) if m else None


def decode_html(payload: bytes, content_type: str | None) -> tuple[str, str]:
    """Return (text, encoding used). Undecodable bytes are replaced, never raised."""
    encoding = sniff_charset(payload, charset_from_content_type(content_type))
    try:
        return bytes_to_str(payload, encoding, errors="replace"), encoding
    except (UnicodeError, LookupError):  # a detector's pick that Python cannot use after all
        return payload.decode("utf-8", errors="replace"), "utf-8"
