"""Synthetic catalog, users and interactions with planted tastes (vectorised).

Structure: items belong to a topic (-> category, brand, title/description words) and
a sub-topic (-> tags); item popularity is long-tailed (log-normal). Users prefer a
few topics (sparse Dirichlet) and one sub-topic per topic; their attributes (age,
country, interests) correlate with those tastes. Each interaction is either a taste
draw (topic -> sub-topic -> item by popularity) or noise (global popularity), and
the interaction type/rating depends on which, so a good model measurably beats
popularity and metadata helps cold start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .types import InteractionTypeSpec, ItemMetadata, TrainingData, UserMetadata

TYPE_NAMES = ("view", "click", "like", "dislike", "add_to_cart", "purchase", "rating")
DEFAULT_INTERACTION_TYPES: tuple[InteractionTypeSpec, ...] = (
    InteractionTypeSpec(1, "view", 1.0, True),
    InteractionTypeSpec(2, "click", 2.0, True),
    InteractionTypeSpec(3, "like", 4.0, True),
    InteractionTypeSpec(4, "dislike", 4.0, False),
    InteractionTypeSpec(5, "add_to_cart", 4.0, True),
    InteractionTypeSpec(6, "purchase", 8.0, True),
    InteractionTypeSpec(7, "rating", 3.0, True),
)
# type probabilities for taste draws and for noise draws (order of TYPE_NAMES)
_TASTE_TYPES = np.array([0.45, 0.20, 0.10, 0.01, 0.07, 0.05, 0.12])
_NOISE_TYPES = np.array([0.60, 0.15, 0.02, 0.12, 0.02, 0.01, 0.08])
_COUNTRIES = ("us", "gb", "de", "fr", "es", "it", "br", "in", "jp", "ca")
_SYLLABLES = [
    "ka",
    "ri",
    "to",
    "mi",
    "su",
    "no",
    "la",
    "ve",
    "zo",
    "pa",
    "dri",
    "mon",
    "tel",
    "sar",
    "vin",
    "qua",
    "bel",
    "dor",
    "fen",
    "gal",
    "hu",
    "jor",
    "kel",
    "lum",
    "nor",
    "pim",
    "ros",
    "tav",
    "ul",
    "wex",
    "yar",
    "zen",
    "bro",
    "cal",
    "dem",
    "fin",
    "gor",
    "hal",
]
START_TS = 1_704_067_200.0  # 2024-01-01 UTC
SPAN_S = 180 * 86_400.0


@dataclass
class InteractionLog:
    """Catalog, users and interaction rows as plain Python/numpy."""

    items: list[dict]  # {id, title, description, categories, tags, attributes}
    users: list[dict]  # {id, attributes}
    type_names: tuple[str, ...]
    user_index: np.ndarray  # int32 [n_rows] -> users
    item_index: np.ndarray  # int32 [n_rows] -> items
    type_index: np.ndarray  # int8 [n_rows] -> type_names
    value: np.ndarray  # float32 [n_rows], NaN when absent
    timestamp: np.ndarray  # float64 [n_rows], unix seconds
    item_topics: np.ndarray | None = None  # planted truth (synthetic only)
    user_topics: np.ndarray | None = None  # [n_users, n_topics] preferences
    extra: dict = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Number of interaction rows."""
        return int(self.user_index.shape[0])


def _words(rng: np.random.Generator, n: int, used: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        k = int(rng.integers(2, 4))
        w = "".join(rng.choice(_SYLLABLES, size=k))
        if w not in used:
            used.add(w)
            out.append(w)
    return out


def generate(
    *,
    n_users: int,
    n_items: int,
    n_interactions: int,
    seed: int = 0,
    n_topics: int | None = None,
    n_subtopics: int = 4,
    noise: float = 0.25,
) -> InteractionLog:
    """Generate a synthetic data set with planted tastes and long-tailed popularity."""
    rng = np.random.default_rng(seed)
    k_top = n_topics or int(np.clip(n_items // 150, 4, 24))
    n_clusters = k_top * n_subtopics
    used: set[str] = set()
    topic_words = [_words(rng, 25, used) for _ in range(k_top)]
    sub_words = [
        [_words(rng, 8, used) for _ in range(n_subtopics)] for _ in range(k_top)
    ]
    general = _words(rng, 150, used)
    category_names = [f"{w[0]}s" for w in topic_words]
    cluster_tags = [[f"{w}" for w in _words(rng, 3, used)] for _ in range(n_clusters)]
    all_tags = [t for ts in cluster_tags for t in ts]
    brands = [[w.capitalize() for w in _words(rng, 5, used)] for _ in range(k_top)]
    topic_age = rng.uniform(18, 65, size=k_top)
    topic_country = rng.integers(0, len(_COUNTRIES), size=k_top)
    topic_price = rng.uniform(1.5, 5.5, size=k_top)

    # --- items
    topic_sizes = rng.dirichlet(np.full(k_top, 3.0))
    item_topic = rng.choice(k_top, size=n_items, p=topic_sizes)
    item_sub = rng.integers(0, n_subtopics, size=n_items)
    item_cluster = item_topic * n_subtopics + item_sub
    second = np.where(
        rng.random(n_items) < 0.25, rng.integers(0, k_top, size=n_items), -1
    )
    popularity = np.exp(rng.normal(0.0, 1.4, size=n_items))
    items = []
    for i in range(n_items):
        t, s = int(item_topic[i]), int(item_sub[i])
        cats = [category_names[t]]
        if second[i] >= 0 and second[i] != t:
            cats.append(category_names[int(second[i])])
        n_tags = int(rng.integers(1, 4))
        own = cluster_tags[item_cluster[i]]
        tags = list(
            dict.fromkeys(
                own[int(j)]
                if rng.random() < 0.8
                else all_tags[int(rng.integers(len(all_tags)))]
                for j in rng.integers(0, len(own), size=n_tags)
            )
        )
        brand = (
            brands[t][int(rng.integers(5))]
            if rng.random() < 0.85
            else brands[int(rng.integers(k_top))][int(rng.integers(5))]
        )
        tw, sw = topic_words[t], sub_words[t][s]
        title = " ".join(
            [
                brand,
                sw[int(rng.integers(len(sw)))],
                tw[int(rng.integers(len(tw)))],
                general[int(rng.integers(len(general)))],
            ]
        )
        n_desc = int(rng.integers(12, 26))
        src = rng.random(n_desc)
        desc = [
            tw[int(rng.integers(len(tw)))]
            if r < 0.45
            else sw[int(rng.integers(len(sw)))]
            if r < 0.65
            else general[int(rng.integers(len(general)))]
            for r in src
        ]
        items.append(
            {
                "id": f"item-{i + 1:06d}",
                "title": title.capitalize(),
                "description": " ".join(desc).capitalize() + ".",
                "categories": cats,
                "tags": tags,
                "attributes": {
                    "brand": brand,
                    "price": round(float(np.exp(rng.normal(topic_price[t], 0.5))), 2),
                    "year": int(np.clip(rng.normal(2005 + 4 * s, 6), 1980, 2024)),
                    "color": ("red", "blue", "green", "black", "white")[
                        int(rng.integers(5))
                    ],
                    "in_stock": bool(rng.random() < 0.9),
                },
            }
        )

    # --- users
    prefs = rng.dirichlet(np.full(k_top, 0.25), size=n_users)
    fav_sub = rng.integers(0, n_subtopics, size=(n_users, k_top))
    top_topic = prefs.argmax(axis=1)
    ages = np.clip(prefs @ topic_age + rng.normal(0, 7, n_users), 16, 85).astype(int)
    country = np.where(
        rng.random(n_users) < 0.5,
        topic_country[top_topic],
        rng.integers(0, len(_COUNTRIES), size=n_users),
    )
    second_topic = np.argsort(-prefs, axis=1)[:, 1]
    users = []
    for u in range(n_users):
        interests = []
        if rng.random() < 0.6:
            interests.append(category_names[int(top_topic[u])])
        if rng.random() < 0.3:
            interests.append(category_names[int(second_topic[u])])
        users.append(
            {
                "id": f"user-{u + 1:06d}",
                "attributes": {
                    "age": int(ages[u]),
                    "country": _COUNTRIES[int(country[u])],
                    "gender": ("f", "m", "x")[int(rng.integers(3))],
                    "premium": bool(rng.random() < 0.2),
                    "interests": interests,
                },
            }
        )

    # --- interactions: activity is long-tailed, at least 2 rows per user
    activity = np.exp(rng.normal(0.0, 1.0, size=n_users))
    base = 2 if n_interactions >= 2 * n_users else 0
    counts = rng.multinomial(n_interactions - base * n_users, activity / activity.sum())
    counts = counts + base
    user_index = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    n_rows = int(user_index.size)
    is_taste = rng.random(n_rows) >= noise

    # items sorted by cluster with a per-cluster popularity CDF
    order = np.argsort(item_cluster, kind="stable")
    cdf = np.cumsum(popularity[order])
    cluster_start = np.searchsorted(item_cluster[order], np.arange(n_clusters))
    cluster_stop = np.searchsorted(item_cluster[order], np.arange(n_clusters), "right")
    global_cdf = np.cumsum(popularity) / popularity.sum()

    item_index = np.empty(n_rows, dtype=np.int32)
    cum_prefs = np.cumsum(prefs, axis=1).astype(np.float32)
    chunk = 1_000_000
    for start in range(0, n_rows, chunk):
        sl = slice(start, min(start + chunk, n_rows))
        u = user_index[sl]
        r = rng.random(u.size, dtype=np.float32)[:, None]
        topic = np.minimum((cum_prefs[u] < r).sum(axis=1), k_top - 1)
        sub = np.where(
            rng.random(u.size) < 0.7,
            fav_sub[u, topic],
            rng.integers(0, n_subtopics, size=u.size),
        )
        cl = topic * n_subtopics + sub
        lo, hi = cluster_start[cl], cluster_stop[cl]
        empty = lo >= hi
        lo_c = np.where(lo > 0, cdf[np.maximum(lo - 1, 0)], 0.0)
        hi_c = cdf[np.maximum(hi - 1, 0)]
        target = lo_c + rng.random(u.size) * (hi_c - lo_c)
        pos = np.clip(
            np.searchsorted(cdf, target, side="right"), lo, np.maximum(hi - 1, lo)
        )
        taste_item = order[np.minimum(pos, n_items - 1)]
        noise_item = np.minimum(
            np.searchsorted(global_cdf, rng.random(u.size), side="right"), n_items - 1
        )
        use_taste = is_taste[sl] & ~empty
        is_taste[sl] = use_taste
        item_index[sl] = np.where(use_taste, taste_item, noise_item)

    type_index = np.where(
        is_taste,
        _sample_categorical(rng, _TASTE_TYPES, n_rows),
        _sample_categorical(rng, _NOISE_TYPES, n_rows),
    ).astype(np.int8)
    value = np.full(n_rows, np.nan, dtype=np.float32)
    is_rating = type_index == TYPE_NAMES.index("rating")
    mean = np.where(is_taste, 4.1, 2.6)
    ratings = np.clip(np.rint(mean + rng.normal(0, 0.9, n_rows)), 1, 5)
    value[is_rating] = ratings[is_rating]
    user_start = rng.uniform(0, SPAN_S * 0.7, size=n_users)
    ts = (
        START_TS
        + user_start[user_index]
        + rng.random(n_rows) * (SPAN_S - user_start[user_index])
    )
    return InteractionLog(
        items=items,
        users=users,
        type_names=TYPE_NAMES,
        user_index=user_index,
        item_index=item_index,
        type_index=type_index,
        value=value,
        timestamp=ts.astype(np.float64),
        item_topics=item_topic,
        user_topics=prefs.astype(np.float32),
        extra={"category_names": category_names, "item_subtopics": item_sub},
    )


def _sample_categorical(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), p.size - 1)


def item_metadata(log: InteractionLog) -> ItemMetadata:
    """Catalog metadata with pks = index + 1 (as a fresh DB would assign)."""
    items = log.items
    return ItemMetadata(
        ids=np.arange(1, len(items) + 1, dtype=np.int64),
        external_ids=[it["id"] for it in items],
        titles=[it.get("title", "") for it in items],
        descriptions=[it.get("description", "") for it in items],
        categories=[list(it.get("categories", [])) for it in items],
        tags=[list(it.get("tags", [])) for it in items],
        attributes=[dict(it.get("attributes", {})) for it in items],
    )


def user_metadata(log: InteractionLog) -> UserMetadata:
    """User metadata with pks = index + 1."""
    return UserMetadata(
        ids=np.arange(1, len(log.users) + 1, dtype=np.int64),
        external_ids=[u["id"] for u in log.users],
        attributes=[dict(u.get("attributes", {})) for u in log.users],
    )


def to_training_data(
    log: InteractionLog,
    types: tuple[InteractionTypeSpec, ...] = DEFAULT_INTERACTION_TYPES,
    *,
    rows: np.ndarray | None = None,
) -> TrainingData:
    """Engine input without a database (pks = index + 1; optional row subset)."""
    by_name = {t.name: t.id for t in types}
    type_map = np.array([by_name.get(n, -1) for n in log.type_names], dtype=np.int64)
    sel = slice(None) if rows is None else rows
    return TrainingData(
        user_ids=log.user_index[sel].astype(np.int64) + 1,
        item_ids=log.item_index[sel].astype(np.int64) + 1,
        type_ids=type_map[log.type_index[sel].astype(np.int64)],
        values=log.value[sel].astype(np.float32),
        timestamps=log.timestamp[sel].astype(np.float64),
        types=tuple(types),
        items=item_metadata(log),
        users=user_metadata(log),
    )


INTERACTION_ONLY = (InteractionTypeSpec(1, "interaction", 1.0, True),)


def training_data_from_pairs(log: InteractionLog, pairs) -> TrainingData:
    """TrainingData with one positive row per nonzero (user, item) of `pairs`.

    Used by the quality benchmark's "every interaction is a positive" protocol.
    """
    coo = pairs.tocoo()
    n = coo.nnz
    return TrainingData(
        user_ids=coo.row.astype(np.int64) + 1,
        item_ids=coo.col.astype(np.int64) + 1,
        type_ids=np.ones(n, dtype=np.int64),
        values=np.full(n, np.nan, dtype=np.float32),
        timestamps=np.full(n, START_TS, dtype=np.float64),
        types=INTERACTION_ONLY,
        items=item_metadata(log),
        users=user_metadata(log),
    )
