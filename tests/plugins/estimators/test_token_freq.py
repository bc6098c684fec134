"""Token-frequency tables and token-id files: counts, formats, and hostile files."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
import torch
from xent_estimators import _io, counts_from_files, read_token_ids, token_counts

from xent_core import BadInputError, BadParameterError


def test_counts_every_occurrence():
    # a repeated id counts each time (indexed assignment ``t[ids] += 1`` would count it once)
    docs = [[1, 1, 1, 2], np.array([2, 0, 1]), torch.tensor([4])]
    got = token_counts(docs, vocab_size=6)
    want = Counter(i for d in ([1, 1, 1, 2], [2, 0, 1], [4]) for i in d)
    assert got.tolist() == [want.get(i, 0) for i in range(6)]
    assert got.dtype == np.int64


def test_one_document_a_matrix_and_truncation():
    assert token_counts([3, 3, 0]).tolist() == [1, 0, 0, 2]
    rows = np.array([[0, 1, 2], [2, 2, 1]])
    assert token_counts(rows, max_doc_tokens=2).tolist() == [1, 1, 2]  # [0, 1] and [2, 2]
    rng = np.random.default_rng(2)
    big = rng.integers(0, 50, size=(7, 31))
    assert token_counts(big).tolist() == np.bincount(big.ravel()).tolist()


def test_bad_ids_and_parameters():
    with pytest.raises(BadInputError, match=">= vocab_size"):
        token_counts([[0, 9]], vocab_size=5)
    with pytest.raises(BadInputError, match=">= 0"):
        token_counts([[0, -1]])
    with pytest.raises(BadInputError, match="integers"):
        token_counts([np.array([0.5, 1.0])])
    with pytest.raises(BadInputError, match="no token ids"):
        token_counts([[]])
    with pytest.raises(BadParameterError):
        token_counts([[1]], vocab_size=0)
    with pytest.raises(BadParameterError):
        token_counts([[1]], vocab_size=2.0)


def test_jsonl_and_npy_files(tmp_path):
    j = tmp_path / "docs.jsonl"
    j.write_text('[5, 1, 5]\n\n{"ids": [2], "text": "x"}\n{"input_ids": []}\n')
    assert [d.tolist() for d in read_token_ids(j)] == [[5, 1, 5], [2], []]
    n = tmp_path / "docs.npy"
    np.save(n, np.array([[3, 4, -1, -1], [1, 2, 3, 4]], dtype=np.int32))
    assert [d.tolist() for d in read_token_ids(n)] == [[3, 4], [1, 2, 3, 4]]
    one = tmp_path / "one.npy"
    np.save(one, np.array([7, 7]))
    total = counts_from_files([j, n, one], vocab_size=9)
    assert total.tolist() == [0, 2, 2, 2, 2, 2, 0, 2, 0]


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("f.jsonl", b"[1, 2]\n[1, 2.0]\n", "line 2: token ids must be integers"),
        ("f.jsonl", b"[1, true]\n", "integers, found True"),
        ("f.jsonl", b"[1, NaN]\n", "line 1 is not valid JSON"),
        ("f.jsonl", b"[1, 2\n", "line 1 is not valid JSON"),
        ("f.jsonl", b'{"text": "hello"}\n', "one of ids, token_ids, input_ids"),
        ("f.jsonl", b'"hello"\n', "expected a list"),
        ("f.jsonl", b"[-3]\n", "must lie in"),
        ("f.jsonl", b"\n\n", "empty"),
        ("f.jsonl", "[1]\n\xe9".encode("latin-1"), "not UTF-8"),
        ("f.npy", b"\x93NUMPY\x01\x00garbage", "cannot read"),
        ("f.txt", b"1 2 3\n", "unsupported file type"),
    ],
)
def test_bad_files(tmp_path, name, data, needle):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BadInputError, match=needle) as info:
        read_token_ids(path)
    assert len(str(info.value).splitlines()) == 1


def test_bad_npy_contents(tmp_path):
    cases = [
        (np.array([1.0, 2.0]), "integer array"),
        (np.zeros((2, 2, 2), dtype=np.int64), "shape"),
        (np.array([[1, -1, 2]]), "pad at the end"),
    ]
    for arr, needle in cases:
        path = tmp_path / "x.npy"
        np.save(path, arr)
        with pytest.raises(BadInputError, match=needle):
            read_token_ids(path)


def test_non_regular_files_are_refused(tmp_path):
    with pytest.raises(BadInputError, match="not a regular file"):
        read_token_ids(tmp_path)
    with pytest.raises(BadInputError, match="no such file"):
        read_token_ids(tmp_path / "missing.jsonl")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.jsonl"
        os.mkfifo(fifo)
        with pytest.raises(BadInputError, match="not a regular file"):
            read_token_ids(fifo)


def test_jsonl_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(_io, "MAX_TEXT_BYTES", 64)
    path = tmp_path / "big.jsonl"
    path.write_text("[1, 2, 3]\n" * 10)
    with pytest.raises(BadInputError, match=r"save large data as \.npy"):
        read_token_ids(path)
    path.write_text("[1, 2, 3]\n" * 3)
    assert len(read_token_ids(path)) == 3
