"""Parsers for MovieLens directories (ml-100k and ml-latest layouts), no network.

Output has the shape of `synthetic.generate`: items/users as dicts and interaction
arrays; every rating is an interaction of type "rating" carrying its value.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from .synthetic import InteractionLog

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
TYPE_NAMES = ("rating",)
_YEAR_RE = re.compile(r"\((\d{4})\)\s*$")


def load_movielens(directory: str | Path) -> InteractionLog:
    """Parse ml-100k (u.data/u.item/u.user) or ml-latest (ratings.csv/movies.csv)."""
    root = Path(directory)
    if (root / "u.data").is_file():
        return _load_100k(root)
    if (root / "ratings.csv").is_file():
        return _load_latest(root)
    raise FileNotFoundError(f"no MovieLens files (u.data or ratings.csv) in {root}")


def _log(
    items: list[dict],
    item_ids: list[str],
    users: list[dict],
    user_ids: list[str],
    raw_user: np.ndarray,
    raw_item: np.ndarray,
    rating: np.ndarray,
    ts: np.ndarray,
) -> InteractionLog:
    user_pos = {u: i for i, u in enumerate(user_ids)}
    item_pos = {m: i for i, m in enumerate(item_ids)}
    # ratings may reference users/items missing from the side files: add them
    for u in np.unique(raw_user).tolist():
        if str(u) not in user_pos:
            user_pos[str(u)] = len(users)
            users.append({"id": str(u), "attributes": {}})
    for m in np.unique(raw_item).tolist():
        if str(m) not in item_pos:
            item_pos[str(m)] = len(items)
            items.append(_item(str(m), "", [], {}))
    u_lookup = _vector_lookup(user_pos)
    i_lookup = _vector_lookup(item_pos)
    return InteractionLog(
        items=items,
        users=users,
        type_names=TYPE_NAMES,
        user_index=u_lookup(raw_user).astype(np.int32),
        item_index=i_lookup(raw_item).astype(np.int32),
        type_index=np.zeros(raw_user.size, dtype=np.int8),
        value=rating.astype(np.float32),
        timestamp=ts.astype(np.float64),
    )


def _vector_lookup(mapping: dict[str, int]):
    keys = np.array([int(k) for k in mapping], dtype=np.int64)
    vals = np.array(list(mapping.values()), dtype=np.int64)
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]

    def lookup(raw: np.ndarray) -> np.ndarray:
        return vals[np.searchsorted(keys, raw.astype(np.int64))]

    return lookup


def _item(movie_id: str, title: str, genres: list[str], attrs: dict) -> dict:
    return {
        "id": movie_id,
        "title": title,
        "description": "",
        "categories": genres,
        "tags": [],
        "attributes": attrs,
    }


def _title_year(title: str) -> tuple[str, dict]:
    m = _YEAR_RE.search(title)
    return (title[: m.start()].strip(), {"year": int(m.group(1))}) if m else (title, {})


def _load_100k(root: Path) -> InteractionLog:
    raw = np.loadtxt(root / "u.data", dtype=np.int64, delimiter="\t", ndmin=2)
    items: list[dict] = []
    item_ids: list[str] = []
    item_file = root / "u.item"
    if item_file.is_file():
        for line in item_file.read_text(encoding="latin-1").splitlines():
            parts = line.split("|")
            if len(parts) < 5:
                continue
            flags = parts[5 : 5 + len(ML100K_GENRES)]
            genres = [g for g, f in zip(ML100K_GENRES, flags) if f.strip() == "1"]
            title, attrs = _title_year(parts[1])
            item_ids.append(parts[0])
            items.append(_item(parts[0], title, genres, attrs))
    users: list[dict] = []
    user_ids: list[str] = []
    user_file = root / "u.user"
    if user_file.is_file():
        for line in user_file.read_text(encoding="latin-1").splitlines():
            parts = line.split("|")
            if len(parts) < 5:
                continue
            user_ids.append(parts[0])
            users.append(
                {
                    "id": parts[0],
                    "attributes": {
                        "age": int(parts[1]),
                        "gender": parts[2],
                        "occupation": parts[3],
                        "zip_prefix": parts[4][:1],
                    },
                }
            )
    return _log(
        items, item_ids, users, user_ids, raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3]
    )


def _load_latest(root: Path) -> InteractionLog:
    data = np.genfromtxt(
        root / "ratings.csv", delimiter=",", skip_header=1, dtype=np.float64, ndmin=2
    )
    items: list[dict] = []
    item_ids: list[str] = []
    movies = root / "movies.csv"
    if movies.is_file():
        with open(movies, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader, None)
            for row in reader:
                if len(row) < 3:
                    continue
                genres = [
                    g for g in row[2].split("|") if g and g != "(no genres listed)"
                ]
                title, attrs = _title_year(row[1])
                item_ids.append(row[0])
                items.append(_item(row[0], title, genres, attrs))
    raw_user = data[:, 0].astype(np.int64)
    users: list[dict] = []
    user_ids: list[str] = []
    return _log(
        items,
        item_ids,
        users,
        user_ids,
        raw_user,
        data[:, 1].astype(np.int64),
        data[:, 2],
        data[:, 3],
    )
