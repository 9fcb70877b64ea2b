"""Synthetic data for the benchmark and the request bodies / COPY rows made from it."""

from __future__ import annotations

import io
import json

import numpy as np

from recommendations.engine import synthetic

NULL = "\\N"  # COPY text format


def generate(*, users: int, items: int, interactions: int, seed: int):
    """The engine's synthetic generator (planted tastes, long-tailed popularity)."""
    return synthetic.generate(
        n_users=users, n_items=items, n_interactions=interactions, seed=seed
    )


def iso_timestamps(ts: np.ndarray) -> np.ndarray:
    """Unix seconds -> ISO-8601 UTC strings (vectorised)."""
    micros = (ts * 1e6).astype("int64").astype("datetime64[us]")
    return np.char.add(np.datetime_as_string(micros, unit="ms"), "Z")


def interaction_records(
    log, start: int, stop: int, iso: np.ndarray | None = None
) -> list[dict]:
    """Rows [start, stop) as API records (client ids, type name, ISO time)."""
    if iso is None:
        iso = iso_timestamps(log.timestamp)
    users, items, names = log.users, log.items, log.type_names
    out = []
    for i in range(start, stop):
        record = {
            "user": users[int(log.user_index[i])]["id"],
            "item": items[int(log.item_index[i])]["id"],
            "type": names[int(log.type_index[i])],
            "timestamp": str(iso[i]),
        }
        value = log.value[i]
        if not np.isnan(value):
            record["value"] = float(value)
        out.append(record)
    return out


def interaction_bodies(log, batch_size: int, wrap: str | None = None) -> list[bytes]:
    """JSON bodies of `batch_size` interactions each, in log order."""
    iso = iso_timestamps(log.timestamp)
    bodies = []
    for start in range(0, log.n_rows, batch_size):
        records = interaction_records(
            log, start, min(start + batch_size, log.n_rows), iso
        )
        payload = {wrap: records} if wrap else records
        bodies.append(json.dumps(payload, separators=(",", ":")).encode())
    return bodies


def copy_buffer(
    log, user_pks: np.ndarray, item_pks: np.ndarray, type_pks: np.ndarray
) -> io.BytesIO:
    """The same interactions as COPY text rows (pks resolved), built before timing."""
    iso = iso_timestamps(log.timestamp)
    users = user_pks[log.user_index]
    items = item_pks[log.item_index]
    types = type_pks[log.type_index.astype(np.int64)]
    values = log.value
    now = np.datetime_as_string(np.datetime64("now", "us"), unit="us") + "Z"
    out = io.StringIO()
    write = out.write
    for u, it, t, v, ts in zip(
        users.tolist(),
        items.tolist(),
        types.tolist(),
        values.tolist(),
        iso.tolist(),
        strict=True,
    ):
        write(f"{u}\t{it}\t{t}\t{NULL if v != v else v}\t{ts}\t{now}\n")
    return io.BytesIO(out.getvalue().encode())
