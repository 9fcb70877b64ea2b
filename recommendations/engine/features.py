"""Item and user feature matrices for LightFM, reproducible for new items/users.

Item row = identity + categories + tags + attributes + text (TF-IDF of title and
description over a capped vocabulary); user row = identity + attributes. Each
metadata group is L1-normalised, the groups share `1 - identity_share` of the row
weight and the identity feature the rest, so every row sums to 1 (LightFM trains
more stably on normalised rows). A new item/user has no identity column: its
metadata part is rescaled to sum to 1.

Fitted state is plain JSON + one float array (no pickle), see `to_state`.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from .types import ItemMetadata

TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


class AttributeEncoder:
    """One-hot categorical values, quantile buckets for numbers."""

    def __init__(
        self,
        numeric: dict[str, list[float]] | None = None,
        categorical: dict[str, list[str]] | None = None,
    ) -> None:
        self.numeric = numeric or {}  # key -> bucket edges (inner cut points)
        self.categorical = categorical or {}  # key -> kept values
        self._build_names()

    def _build_names(self) -> None:
        self.names: list[str] = []
        self._cat_index: dict[tuple[str, str], int] = {}
        self._num_offset: dict[str, int] = {}
        for key in sorted(self.numeric):
            self._num_offset[key] = len(self.names)
            n_buckets = len(self.numeric[key]) + 1
            self.names.extend(f"attr:{key}#{b}" for b in range(n_buckets))
        for key in sorted(self.categorical):
            for value in self.categorical[key]:
                self._cat_index[(key, value)] = len(self.names)
                self.names.append(f"attr:{key}={value}")

    @classmethod
    def fit(
        cls, attributes: Sequence[dict], *, buckets: int, max_values: int
    ) -> AttributeEncoder:
        """Learn numeric bucket edges and frequent categorical values."""
        numbers: dict[str, list[float]] = {}
        # one counter of (key, value) pairs: per key, first-seen order is kept,
        # so most-common ties break exactly as with one Counter per key
        counts: Counter = Counter()
        non_numeric: set[str] = set()
        for attrs in attributes:
            if not attrs:
                continue
            for key, value in attrs.items():
                if value is None:
                    continue
                kind = type(value)
                if (
                    kind is float
                    or kind is int
                    or (kind is not str and _is_number(value))
                ):
                    number = float(value)
                    if math.isfinite(number):
                        numbers.setdefault(key, []).append(number)
                    continue
                non_numeric.add(key)
                if kind is str:
                    counts[(key, value.strip().lower())] += 1
                elif isinstance(value, (list, tuple)):
                    for v in value:
                        counts[(key, _cat_value(v))] += 1
                else:
                    counts[(key, _cat_value(value))] += 1
        numeric = {}
        for key, vals in numbers.items():
            if key in non_numeric:
                continue  # mixed types: treat as categorical only
            arr = np.asarray(vals)
            qs = np.quantile(arr, np.linspace(0, 1, buckets + 1)[1:-1])
            numeric[key] = sorted({float(q) for q in qs})
        per_key: dict[str, list[tuple[str, int]]] = {}
        for (key, value), n in counts.items():
            per_key.setdefault(key, []).append((value, n))
        # heapq.nlargest == Counter.most_common(n): ties keep first-seen order
        categorical = {
            key: sorted(v for v, _ in heapq.nlargest(max_values, pairs, key=_count))
            for key, pairs in per_key.items()
        }
        return cls(numeric, categorical)

    def encode(self, attrs: dict | None) -> tuple[list[int], list[float]]:
        """Column offsets and weights for one attribute dict."""
        cols: list[int] = []
        numeric, cat_index = self.numeric, self._cat_index
        for key, value in (attrs or {}).items():
            if value is None:
                continue
            kind = type(value)
            if kind is str:  # the common case first: _cat_value of a str
                col = cat_index.get((key, value.strip().lower()))
                if col is not None:
                    cols.append(col)
                continue
            if key in numeric and (kind is float or kind is int or _is_number(value)):
                if not math.isfinite(float(value)):
                    continue
                # bisect_left == np.searchsorted(side="left"), without the array
                bucket = bisect.bisect_left(numeric[key], float(value))
                cols.append(self._num_offset[key] + bucket)
                continue
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                col = cat_index.get((key, _cat_value(v)))
                if col is not None:
                    cols.append(col)
        return cols, [1.0] * len(cols)

    def encode_many(self, attributes: Sequence[dict | None]) -> tuple[list, list]:
        """(row, column) pairs of many attribute dicts (weight 1 each)."""
        rows: list[int] = []
        cols: list[int] = []
        for r, attrs in enumerate(attributes):
            if not attrs:
                continue
            c, _ = self.encode(attrs)
            rows.extend([r] * len(c))
            cols.extend(c)
        return rows, cols

    def to_state(self) -> dict:
        """JSON-serialisable state."""
        return {"numeric": self.numeric, "categorical": self.categorical}

    @classmethod
    def from_state(cls, state: dict) -> AttributeEncoder:
        """Inverse of `to_state`."""
        return cls(state["numeric"], state["categorical"])


def _distinct(values: np.ndarray) -> np.ndarray:
    """`np.unique(values)` by sorting: NumPy 2's hash-based unique takes 1.5 s on the
    2.65M (text, word) keys of 100,000 items, mostly distinct; a sort takes 0.03 s."""
    if values.size == 0:
        return values
    ordered = np.sort(values)
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _count(pair: tuple[str, int]) -> int:
    return pair[1]


def _cat_value(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value).strip().lower()


class TextEncoder:
    """TF-IDF (sublinear tf, l2) over a fixed vocabulary; replays sklearn's maths."""

    def __init__(self, vocabulary: list[str], idf: np.ndarray) -> None:
        self.vocabulary = list(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float32)
        self._index = {w: i for i, w in enumerate(self.vocabulary)}

    @staticmethod
    def tokenize(texts: Sequence[str]) -> list[list[str]]:
        """scikit-learn's word tokens (lower-cased, >= 2 word characters)."""
        return [TOKEN_RE.findall(t.lower()) if t else [] for t in texts]

    @classmethod
    def fit(cls, texts: Sequence[str], *, max_features: int) -> TextEncoder:
        """Fit vocabulary and idf exactly as scikit-learn's TfidfVectorizer would."""
        return cls.fit_tokens(cls.tokenize(texts), max_features=max_features)

    @classmethod
    def fit_tokens(cls, tokens: list[list[str]], *, max_features: int) -> TextEncoder:
        """`fit` on tokenized texts (tokenize once, encode with `encode_tokens`).

        Replays TfidfVectorizer(max_features, min_df=2, max_df=0.5 for 20+ texts,
        stop_words="english", smooth idf): same vocabulary, same float32 idf
        (a test compares the two), without a second pass over the text.
        """
        empty = cls([], np.zeros(0, dtype=np.float32))
        n_docs = len(tokens)
        if max_features <= 0 or n_docs == 0:
            return empty
        flat = list(itertools.chain.from_iterable(tokens))
        terms = [t for t in dict.fromkeys(flat) if t not in ENGLISH_STOP_WORDS]
        if not terms:
            return empty
        # alphabetical ids, as scikit-learn sorts its vocabulary before pruning
        terms.sort()
        index = {t: i for i, t in enumerate(terms)}
        ids = np.fromiter(map(index.get, flat, repeat(-1)), np.int64, len(flat))
        lengths = np.fromiter(map(len, tokens), np.int64, n_docs)
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        ok = ids >= 0
        ids, doc = ids[ok], doc[ok]
        n_terms = len(terms)
        tfs = np.bincount(ids, minlength=n_terms).astype(np.float32)
        dfs = np.bincount(_distinct(doc * n_terms + ids) % n_terms, minlength=n_terms)
        high = 0.5 * n_docs if n_docs >= 20 else 1.0 * n_docs
        low = 2 if n_docs >= 20 else 1
        mask = (dfs <= high) & (dfs >= low)
        if mask.sum() > max_features:
            # scikit-learn: (-tfs[mask]).argsort()[:limit] on float32 counts
            keep = np.flatnonzero(mask)[(-tfs[mask]).argsort()[:max_features]]
            mask = np.zeros(n_terms, dtype=bool)
            mask[keep] = True
        if not mask.any():
            return empty
        df = dfs[mask].astype(np.float32) + np.float32(1.0)
        idf = np.full_like(df, fill_value=n_docs + 1, dtype=np.float32)
        idf /= df
        np.log(idf, out=idf)
        idf += np.float32(1.0)
        return cls([terms[i] for i in np.flatnonzero(mask)], idf)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> tuple[list[int], list[float]]:
        """Columns and l2-normalised tf-idf weights of one text."""
        if not self.vocabulary or not text:
            return [], []
        counts: Counter = Counter()
        for token in TOKEN_RE.findall(text.lower()):
            if token in ENGLISH_STOP_WORDS:
                continue
            idx = self._index.get(token)
            if idx is not None:
                counts[idx] += 1
        if not counts:
            return [], []
        cols = list(counts)
        w = np.array([1.0 + math.log(counts[c]) for c in cols]) * self.idf[cols]
        w /= np.linalg.norm(w) or 1.0
        return cols, w.tolist()

    def encode_many(
        self, texts: Sequence[str], max_words: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, weights) of many texts: sublinear tf-idf, keeping each
        text's `max_words` strongest words (ties: first occurrence first)."""
        return self.encode_tokens(self.tokenize(texts), max_words)

    def encode_tokens(
        self, tokens: list[list[str]], max_words: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`encode_many` on tokenized texts."""
        empty = np.zeros(0, dtype=np.int64)
        if not self.vocabulary or not len(tokens):
            return empty, empty, np.zeros(0)
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        total = int(lengths.sum())
        # one C-level pass maps every token to its column (-1: not in the
        # vocabulary, which holds no stop words)
        col = np.fromiter(
            map(self._index.get, itertools.chain.from_iterable(tokens), repeat(-1)),
            dtype=np.int64,
            count=total,
        )
        doc = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
        known = col >= 0
        doc, col = doc[known], col[known]
        if doc.size == 0:
            return empty, empty, np.zeros(0)
        key = doc * len(self.vocabulary) + col
        uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
        row = uniq // len(self.vocabulary)
        col = uniq % len(self.vocabulary)
        w = (1.0 + np.log(counts.astype(np.float64))) * self.idf[col]
        # per text: strongest first, ties by first occurrence; keep max_words
        order = np.lexsort((first, -w, row))
        rank = np.arange(row.size) - np.searchsorted(row, row[order], side="left")
        keep = order[rank < max_words]
        keep = keep[np.lexsort((first[keep], row[keep]))]
        return row[keep], col[keep], w[keep]


class ItemFeaturizer:
    """Builds item feature rows; fitted on the training catalog."""

    def __init__(
        self,
        *,
        n_items: int,
        categories: list[str],
        tags: list[str],
        attributes: AttributeEncoder,
        text: TextEncoder,
        identity_share: float,
        text_max_words: int = 12,
    ) -> None:
        self.n_items = n_items
        self.text_max_words = int(text_max_words)
        self.categories = list(categories)
        self.tags = list(tags)
        self.attributes = attributes
        self.text = text
        self.identity_share = float(identity_share)
        self._cat_index = {c: i for i, c in enumerate(self.categories)}
        self._tag_index = {t: i for i, t in enumerate(self.tags)}
        self.cat_offset = n_items
        self.tag_offset = self.cat_offset + len(self.categories)
        self.attr_offset = self.tag_offset + len(self.tags)
        self.text_offset = self.attr_offset + len(self.attributes.names)
        self.n_features = self.text_offset + len(self.text)

    @classmethod
    def fit(
        cls,
        items: ItemMetadata,
        *,
        identity_share: float = 0.5,
        text_max_features: int = 5000,
        numeric_buckets: int = 8,
        max_values_per_attribute: int = 50,
        text_max_words: int = 12,
        tokens: list[list[str]] | None = None,
    ) -> ItemFeaturizer:
        """Learn vocabularies from the catalog (`tokens`: its texts, tokenized)."""
        cats = sorted({_label(c) for cs in items.categories for c in cs} - {""})
        tags = sorted({_label(t) for ts in items.tags for t in ts} - {""})
        attrs = AttributeEncoder.fit(
            items.attributes,
            buckets=numeric_buckets,
            max_values=max_values_per_attribute,
        )
        if tokens is None:
            tokens = TextEncoder.tokenize(_item_texts(items.titles, items.descriptions))
        text = TextEncoder.fit_tokens(tokens, max_features=text_max_features)
        return cls(
            n_items=len(items),
            categories=cats,
            tags=tags,
            attributes=attrs,
            text=text,
            identity_share=identity_share,
            text_max_words=text_max_words,
        )

    def label_columns(self) -> tuple[list[str], np.ndarray]:
        """Names "category:x"/"tag:x" and their feature columns (for reasons)."""
        names = [f"category:{c}" for c in self.categories]
        names += [f"tag:{t}" for t in self.tags]
        cols = np.arange(self.cat_offset, self.attr_offset, dtype=np.int64)
        return names, cols

    def _metadata_matrix(
        self,
        titles: Sequence[str | None],
        descriptions: Sequence[str | None],
        categories: Sequence[Iterable[str] | None],
        tags: Sequence[Iterable[str] | None],
        attributes: Sequence[dict | None],
        tokens: list[list[str]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, weights) of the metadata part of many items.

        Each group (categories, tags, attributes, text) is L1-normalised and the
        groups present in a row share it equally, so a row sums to 1 (or is empty).
        Python loops only collect ids; the arithmetic is vectorised.
        """
        n = len(titles)
        groups: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for values, index, offset in (
            (categories, self._cat_index, self.cat_offset),
            (tags, self._tag_index, self.tag_offset),
        ):
            rows: list[int] = []
            cols: list[int] = []
            for r, labels in enumerate(values):
                if not labels:
                    continue
                found = {index.get(_label(x)) for x in labels} - {None}
                rows.extend([r] * len(found))
                cols.extend(offset + c for c in found)
            groups.append(
                (np.asarray(rows, np.int64), np.asarray(cols, np.int64), None)
            )
        a_rows, a_cols = self.attributes.encode_many(attributes)
        groups.append(
            (
                np.asarray(a_rows, np.int64),
                self.attr_offset + np.asarray(a_cols, np.int64),
                None,
            )
        )
        if tokens is None:
            tokens = TextEncoder.tokenize(_item_texts(titles, descriptions))
        t_rows, t_cols, t_w = self.text.encode_tokens(tokens, self.text_max_words)
        groups.append((t_rows, self.text_offset + t_cols, t_w))
        n_groups = np.zeros(n, dtype=np.int64)
        parts = []
        for rows, cols, w in groups:
            w = np.ones(rows.size) if w is None else w
            sums = np.bincount(rows, weights=w, minlength=n)
            present = sums > 0
            n_groups += present
            ok = present[rows]
            parts.append((rows[ok], cols[ok], w[ok] / sums[rows[ok]]))
        rows = np.concatenate([p[0] for p in parts])
        cols = np.concatenate([p[1] for p in parts])
        w = np.concatenate([p[2] for p in parts]) / np.maximum(n_groups[rows], 1)
        return rows, cols, w

    @classmethod
    def fit_transform(cls, items: ItemMetadata, **options) -> tuple:
        """(featurizer, feature matrix) with the texts tokenized once."""
        tokens = TextEncoder.tokenize(_item_texts(items.titles, items.descriptions))
        fz = cls.fit(items, tokens=tokens, **options)
        return fz, fz.transform(items, tokens=tokens)

    def transform(
        self,
        items: ItemMetadata,
        *,
        identity: bool = True,
        tokens: list[list[str]] | None = None,
    ) -> sp.csr_matrix:
        """Feature matrix [len(items), n_features] for the training catalog order."""
        rows, cols, w = self._metadata_matrix(
            items.titles,
            items.descriptions,
            items.categories,
            items.tags,
            items.attributes,
            tokens,
        )
        n = len(items)
        if identity:
            has_meta = np.bincount(rows, minlength=n) > 0
            share = np.where(has_meta, self.identity_share, 1.0)
            w = w * (1.0 - share[rows])
            rows = np.concatenate([np.arange(n), rows])
            cols = np.concatenate([np.arange(n), cols])
            w = np.concatenate([share, w])
        m = sp.csr_matrix(
            (w.astype(np.float32), (rows, cols)), shape=(n, self.n_features)
        )
        m.sum_duplicates()
        return m

    def transform_new(
        self,
        *,
        title: str = "",
        description: str = "",
        categories: Iterable[str] = (),
        tags: Iterable[str] = (),
        attributes: dict | None = None,
    ) -> sp.csr_matrix:
        """One row for an item unknown to the model (metadata only, sums to 1)."""
        rows, cols, w = self._metadata_matrix(
            [title], [description], [categories], [tags], [attributes]
        )
        m = sp.csr_matrix(
            (w.astype(np.float32), (rows, cols)), shape=(1, self.n_features)
        )
        m.sum_duplicates()
        return m

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON part and array part of the fitted state."""
        state = {
            "n_items": self.n_items,
            "categories": self.categories,
            "tags": self.tags,
            "attributes": self.attributes.to_state(),
            "text_vocabulary": self.text.vocabulary,
            "identity_share": self.identity_share,
            "text_max_words": self.text_max_words,
        }
        return state, {"text_idf": self.text.idf}

    @classmethod
    def from_state(cls, state: dict, arrays: dict[str, np.ndarray]) -> ItemFeaturizer:
        """Inverse of `to_state`."""
        return cls(
            n_items=int(state["n_items"]),
            categories=state["categories"],
            tags=state["tags"],
            attributes=AttributeEncoder.from_state(state["attributes"]),
            text=TextEncoder(state["text_vocabulary"], np.asarray(arrays["text_idf"])),
            identity_share=float(state["identity_share"]),
            text_max_words=int(state.get("text_max_words", 12)),
        )


class UserFeaturizer:
    """Builds user feature rows: identity + attributes."""

    def __init__(
        self, *, n_users: int, attributes: AttributeEncoder, identity_share: float
    ) -> None:
        self.n_users = n_users
        self.attributes = attributes
        self.identity_share = float(identity_share)
        self.attr_offset = n_users
        self.n_features = n_users + len(attributes.names)

    @classmethod
    def fit(
        cls,
        attributes: Sequence[dict],
        *,
        identity_share: float = 0.5,
        numeric_buckets: int = 8,
        max_values_per_attribute: int = 50,
    ) -> UserFeaturizer:
        """Learn attribute encodings from the user table."""
        enc = AttributeEncoder.fit(
            attributes, buckets=numeric_buckets, max_values=max_values_per_attribute
        )
        return cls(
            n_users=len(attributes), attributes=enc, identity_share=identity_share
        )

    def _attribute_part(
        self, attributes: Sequence[dict | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, weights) of the attributes, each row summing to 1."""
        rows, cols = self.attributes.encode_many(attributes)
        r = np.asarray(rows, dtype=np.int64)
        c = self.attr_offset + np.asarray(cols, dtype=np.int64)
        counts = np.bincount(r, minlength=len(attributes)).astype(np.float64)
        return r, c, 1.0 / counts[r]

    def transform(self, attributes: Sequence[dict]) -> sp.csr_matrix:
        """Feature matrix with identity, in user index order."""
        n = len(attributes)
        rows, cols, w = self._attribute_part(attributes)
        has_attrs = np.bincount(rows, minlength=n) > 0
        share = np.where(has_attrs, self.identity_share, 1.0)
        m = sp.csr_matrix(
            (
                np.concatenate([share, w * (1.0 - share[rows])]).astype(np.float32),
                (
                    np.concatenate([np.arange(n), rows]),
                    np.concatenate([np.arange(n), cols]),
                ),
            ),
            shape=(n, self.n_features),
        )
        m.sum_duplicates()
        return m

    def transform_new(self, attributes: dict | None) -> sp.csr_matrix:
        """One row for a user unknown to the model (attributes only, sums to 1)."""
        rows, cols, w = self._attribute_part([attributes])
        m = sp.csr_matrix(
            (w.astype(np.float32), (rows, cols)), shape=(1, self.n_features)
        )
        m.sum_duplicates()
        return m

    def to_state(self) -> dict:
        """JSON-serialisable state."""
        return {
            "n_users": self.n_users,
            "attributes": self.attributes.to_state(),
            "identity_share": self.identity_share,
        }

    @classmethod
    def from_state(cls, state: dict) -> UserFeaturizer:
        """Inverse of `to_state`."""
        return cls(
            n_users=int(state["n_users"]),
            attributes=AttributeEncoder.from_state(state["attributes"]),
            identity_share=float(state["identity_share"]),
        )


def metadata_only_rows(features: sp.csr_matrix, n_identity: int) -> sp.csr_matrix:
    """Feature rows without their identity column, rescaled to sum to 1.

    Row i of a training matrix is `share * identity_i + (1 - share) * metadata_i`
    with the metadata part summing to 1, so this is exactly what `transform_new`
    builds for the same metadata (rows without metadata come out empty).
    """
    f = features.tocsr()
    rows = np.repeat(np.arange(f.shape[0]), np.diff(f.indptr))
    keep = ~((f.indices == rows) & (f.indices < n_identity))
    counts = np.bincount(rows[keep], minlength=f.shape[0])
    data = f.data[keep].astype(np.float64)
    sums = np.bincount(rows[keep], weights=data, minlength=f.shape[0])
    sums[sums == 0] = 1.0
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix(
        ((data / sums[rows[keep]]).astype(np.float32), f.indices[keep], indptr),
        shape=f.shape,
    )


def _label(value: Any) -> str:
    return str(value).strip().lower()


def _item_texts(titles: Sequence, descriptions: Sequence) -> list[str]:
    return [_item_text(t, d) for t, d in zip(titles, descriptions)]


def _item_text(title: str | None, description: str | None) -> str:
    # the title is repeated so its words weigh more than the description's
    title = title or ""
    return f"{title} {title} {description or ''}"
