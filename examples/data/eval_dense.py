#!/usr/bin/env python3
"""Exact cosine dense baseline on the bundled emoji set: query-e5 vs items_e5 (numpy only).

  .venv/bin/python examples/data/eval_dense.py [--by-lang]

Prints Recall@1/5/10 and MRR@10 for the test and train splits. Vectors are float16 on
disk, L2-normalised before the cast; they are re-normalised in float32 here.
"""
import argparse
import csv
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

D = Path(__file__).resolve().parent / "emoji"


def load(name):
    x = np.load(D / name).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def metrics(q, gold, items):
    s = q @ items.T
    # rank of the gold item = number of items scoring strictly higher (ties favour gold)
    g = s[np.arange(len(gold)), gold]
    rank = (s > g[:, None]).sum(1)  # 0-based
    out = {f"R@{k}": float((rank < k).mean()) for k in (1, 5, 10)}
    out["MRR@10"] = float(np.where(rank < 10, 1.0 / (rank + 1), 0.0).mean())
    return out, rank


def fmt(name, n, m):
    return (f"{name:<14} n={n:<5} R@1={m['R@1']:.4f} R@5={m['R@5']:.4f} "
            f"R@10={m['R@10']:.4f} MRR@10={m['MRR@10']:.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--by-lang", action="store_true", help="also break the figures down by query language "
                    "(a train query whose text several languages share counts under the first)")
    a = ap.parse_args()
    items = load("items_e5.npy")
    for split in ("test", "train"):
        q = load(f"{split}_queries.npy")
        gold = np.load(D / f"{split}_items.npy").astype(np.int64)
        m, rank = metrics(q, gold, items)
        print(fmt(f"{split} (all)", len(gold), m))
        if a.by_lang:
            with open(D / f"{split}.tsv", encoding="utf-8") as f:
                langs = np.array([r["lang"].split(",")[0] for r in csv.DictReader(f, delimiter="\t",
                                                                     quoting=csv.QUOTE_NONE)])
            for lang in sorted(set(langs)):
                sel = langs == lang
                mm, _ = metrics(q[sel], gold[sel], items)
                print(fmt(f"  {lang}", int(sel.sum()), mm))


if __name__ == "__main__":
    main()
