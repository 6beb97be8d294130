"""The bytes of a stored payload: compact JSON, compressed above a threshold, told by a tag.

Stored payloads are compact JSON (readable in the AWS console), compressed with zlib above a
threshold so that typical events stay inside one write capacity unit and large ones stay far from
DynamoDB's item limit. The first byte of a payload tells its format; every tag is listed here:

- ``{`` plain JSON, ``z`` zlib-compressed JSON (events and snapshot states);
- ``E`` a snapshot state sealed with its subjects' keys, ``e`` one sealed by an older format
  (refused: the stream is replayed instead);
- ``s`` is reserved by the store: a claim check for a payload offloaded to S3
  (``framework.store.large_payloads.REFERENCE_TAG``). The store resolves it before anything here
  reads the payload; it lives with the store because offloading happens in the commit and knows
  nothing of events, and the store may not import the mapping (a test keeps the tags apart).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

COMPRESSION_THRESHOLD = 1024
"""Payloads longer than this many bytes are stored zlib-compressed."""

PLAIN_TAG = ord("{")
ZLIB_TAG = ord("z")
SEALED_STATE_TAG = ord("E")
"""First byte of a snapshot state sealed with its subjects' keys (``KeyRing.encrypt_blob``)."""
OLD_SEALED_STATE_TAG = ord("e")
MAPPING_TAGS = frozenset({PLAIN_TAG, ZLIB_TAG, SEALED_STATE_TAG, OLD_SEALED_STATE_TAG})
"""Every first byte this package writes or recognises."""

_decoder = json.JSONDecoder()
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _loads(text: str) -> Any:
    """``json.loads`` for what ``encode_json`` writes, with less work per call.

    A stored payload is one compact object: scanned at once, it is done. Anything else (space
    after it, trailing bytes, no valid JSON at all) goes to the full decoder, which accepts or
    refuses it exactly as ``json.loads`` would.
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        return _decoder.decode(text)
    return value


def encode_json(document: Any, *, threshold: int = COMPRESSION_THRESHOLD) -> bytes:
    """Encode an unstructured document as compact JSON, compressed when that pays off."""
    raw = _dumps(document).encode()
    if len(raw) > threshold:
        compressed = zlib.compress(raw, 6)
        if len(compressed) + 1 < len(raw):
            return bytes([ZLIB_TAG]) + compressed
    return raw


def decode_json(payload: bytes) -> Any:
    """Inverse of ``encode_json``. Raises ``ValueError`` on anything it does not recognise."""
    if not payload:
        raise ValueError("empty payload")
    tag = payload[0]
    if tag == PLAIN_TAG:
        return _loads(payload.decode())
    if tag == ZLIB_TAG:
        try:
            return _loads(zlib.decompress(payload[1:]).decode())
        except zlib.error as error:
            raise ValueError(f"bad compressed payload: {error}") from error
    raise ValueError(f"unknown payload format byte {tag:#04x}")
