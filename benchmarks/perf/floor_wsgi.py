"""Layer 0 of the serving floor: a bare WSGI callable, no Django, in the benchmark's
gunicorn; and the fixed JSON body every layer of the floor answers with.

The body lives here because this module must not import Django: the bare layer
measures gunicorn's sync workers, HTTP parsing and the socket round trip alone. It
answers 200 with the body on every path, `/api/v1/health/` included, so
`Gunicorn.start` sees it healthy like the Django server.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable

_BRANDS = ("Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware")
_WORDS = ("compact", "wireless", "portable", "classic", "deluxe", "urban")
_KINDS = ("speaker", "headphones", "lamp", "backpack", "kettle")
_CATEGORIES = ("electronics", "audio", "home", "outdoor", "kitchen", "travel")


def _float32(value: float) -> float:
    # Served scores are float32 model outputs turned into Python floats: their JSON
    # repr is ~18 characters, which matters for a body the size of a real answer.
    return struct.unpack("f", struct.pack("f", value))[0]


def payload() -> dict:
    """A 10-item answer shaped like `recommendations/api/recommendations.py`'s
    `_payload` (id, score, title, categories, reason; version, strategy, id): ~1.5 KB
    of JSON, so serialising and sending it costs what a real answer costs."""
    items = []
    for i in range(10):
        brand = _BRANDS[i % len(_BRANDS)]
        title = f"{brand} {_WORDS[i % len(_WORDS)]} {_KINDS[i % len(_KINDS)]}"
        items.append(
            {
                "id": f"item-{1_207 + 3_911 * i:06d}",
                "score": _float32(0.9731 - 0.0417 * i),
                "title": title,
                # one or two categories, as the synthetic catalog has
                "categories": [_CATEGORIES[i % len(_CATEGORIES)]]
                + ([_CATEGORIES[(i + 2) % len(_CATEGORIES)]] if i % 2 else []),
                "reason": "Similar to Fabrikam urban lamp"
                if i % 3
                else "Popular right now",
            }
        )
    return {
        "items": items,
        "model_version": 42,
        "strategy": "personalized",
        "recommendation_id": "6f1c2a4e-9b7d-4c1e-8a53-2d0f7b9e4c61",
    }


PAYLOAD = payload()
# Byte for byte what DRF's JSONRenderer makes of PAYLOAD (compact separators, UTF-8),
# so the Django layers and the DRF layers send the same body.
BODY = json.dumps(PAYLOAD, separators=(",", ":"), ensure_ascii=False).encode()
_HEADERS = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(BODY))),
]


def application(
    environ: dict, start_response: Callable[[str, list[tuple[str, str]]], object]
) -> Iterable[bytes]:
    """200 and BODY, whatever the method and path."""
    start_response("200 OK", _HEADERS)
    return [BODY]
