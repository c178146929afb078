#!/usr/bin/env python3
"""h5_same.py DIR_A DIR_B [--exact] - do two sra-extract output folders hold
the same cache?

By content (default): the documents of every shard-IIIII-of-NNNNN.h5, taken
in shard order, are concatenated (/docs/text, /docs/text_offsets and
/docs/atom_offsets rebased onto the concatenation, /docs/loss_start,
/docs/record and every /atoms/* dataset, /atoms/com/<j> included) and the
two folders must give byte-identical arrays (same dtype, shape and bytes),
so a 1-shard and a 2-shard extraction of the same data compare equal. Also
compared: the root attributes that decide values (atoms, mass, layers,
topk, hidden_dtype, teacher_*_sha256, ...; every shard of a folder must
agree on them), the record range covered, the dataset attributes (layer,
dtype), the /teacher and /student blobs, and the counts of the shards'
stats_json (summed over shards).

--exact: additionally the same shard files, each with the same objects,
byte-identical datasets with the same attributes, and the same root
attributes except `created` (stats_json included).

Prints one line. Exit status: 0 same, 1 different (the message names the
first differing dataset or attribute), 2 usage error.

HDF5_PLUGIN_PATH must reach the zstd filter (build/plugins); when unset it
defaults to $SRA_BUILD/plugins, else build/plugins next to this script.
"""
import json
import os
import re
import sys

if "HDF5_PLUGIN_PATH" not in os.environ:
    build = os.environ.get("SRA_BUILD") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build")
    os.environ["HDF5_PLUGIN_PATH"] = os.path.join(build, "plugins")

import numpy as np  # noqa: E402
import h5py  # noqa: E402

SHARD_RE = re.compile(r"^shard-(\d{5})-of-(\d{5})\.h5$")

# Root attributes that change what the stored values mean or are.
VALUE_ATTRS = [
    "format", "format_version", "complete", "atoms", "mass", "layers", "topk", "temperature", "topk_tail",
    "hidden_size", "hidden_dtype", "teacher_vocab_size", "teacher_config_sha256", "teacher_weights_sha256",
    "teacher_tokenizer_sha256", "student_tokenizer_sha256", "dataset_sha256",
]
# Per-document offsets: rebased when shards are concatenated.
OFFSETS = {"/docs/text_offsets", "/docs/atom_offsets"}
EXACT_SKIP_ATTRS = {"created"}


class Differ(Exception):
    pass


class Usage(Exception):
    pass


def norm(v):
    """An attribute value as something comparable byte for byte."""
    if isinstance(v, (bytes, np.bytes_)):
        return ("bytes", bytes(v))
    if isinstance(v, str):
        return ("str", v)
    a = np.asarray(v)
    if a.dtype.kind == "O":
        return ("obj", repr(a.tolist()))
    return ("arr", a.dtype.str, a.shape, a.tobytes())


def show(v, n=80):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


def shards_of(d):
    if not os.path.isdir(d):
        raise Usage(f"{d}: not a folder")
    found = {}
    counts = set()
    for name in os.listdir(d):
        m = SHARD_RE.match(name)
        if m:
            found[int(m.group(1))] = name
            counts.add(int(m.group(2)))
    if not found:
        raise Usage(f"{d}: no shard-IIIII-of-NNNNN.h5 file (not an sra-extract output folder?)")
    if len(counts) != 1:
        raise Differ(f"{d}: shards of different counts {sorted(counts)}")
    n = counts.pop()
    missing = [i for i in range(n) if i not in found]
    if missing or max(found) >= n:
        raise Differ(f"{d}: shards {missing} of {n} missing" if missing else f"{d}: shard index beyond {n}")
    return [os.path.join(d, found[i]) for i in range(n)]


def open_h5(path):
    try:
        return h5py.File(path, "r")
    except Exception as ex:  # a broken or truncated file is a difference, not a crash
        raise Differ(f"{path}: cannot open: {ex}")


def datasets(f):
    """{path: dataset} of every dataset in the file."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out["/" + name] = obj
    f.visititems(visit)
    return out


def read(ds, where):
    try:
        return ds[()]
    except Exception as ex:
        raise Differ(f"{where}{ds.name}: cannot read: {ex}")


def first_diff(a, b):
    """Index of the first differing byte of two equal-length byte strings."""
    x = np.frombuffer(a, np.uint8)
    y = np.frombuffer(b, np.uint8)
    return int(np.flatnonzero(x != y)[0])


def same_array(name, a, b):
    if a.dtype.str != b.dtype.str:
        raise Differ(f"{name}: dtype {a.dtype.str} vs {b.dtype.str}")
    if a.shape != b.shape:
        raise Differ(f"{name}: shape {a.shape} vs {b.shape}")
    ab, bb = a.tobytes(), b.tobytes()
    if ab != bb:
        i = first_diff(ab, bb)
        row = i // max(1, a.itemsize * (int(np.prod(a.shape[1:])) if a.ndim > 1 else 1))
        raise Differ(f"{name}: differs (first at byte {i}, row {row})")


def same_attrs(name, a, b, skip=()):
    ka = sorted(k for k in a if k not in skip)
    kb = sorted(k for k in b if k not in skip)
    if ka != kb:
        extra = sorted(set(ka) ^ set(kb))
        raise Differ(f"{name}: attribute sets differ ({', '.join(extra)})")
    for k in ka:
        if norm(a[k]) != norm(b[k]):
            raise Differ(f"{name} attribute {k}: {show(a[k])} vs {show(b[k])}")


class Folder:
    """A folder's shards, concatenated."""

    def __init__(self, d):
        self.dir = d
        self.paths = shards_of(d)
        self.files = [open_h5(p) for p in self.paths]

    def close(self):
        for f in self.files:
            f.close()

    def value_attrs(self):
        """The value attributes, which every shard must agree on."""
        first = self.files[0].attrs
        want = {k: norm(first[k]) if k in first else None for k in VALUE_ATTRS}
        for p, f in zip(self.paths[1:], self.files[1:]):
            for k in VALUE_ATTRS:
                have = norm(f.attrs[k]) if k in f.attrs else None
                if have != want[k]:
                    raise Differ(f"{p} attribute {k}: differs from {self.paths[0]}'s in the same folder")
        return {k: (first[k] if k in first else None) for k in VALUE_ATTRS}

    def record_range(self):
        prev = None
        for p, f in zip(self.paths, self.files):
            try:
                r0, r1 = int(f.attrs["record_start"]), int(f.attrs["record_end"])
            except KeyError as ex:
                raise Differ(f"{p}: attribute {ex} missing")
            if prev is not None and r0 != prev:
                raise Differ(f"{p}: record_start {r0} does not follow the previous shard's record_end {prev}")
            prev = r1
        return int(self.files[0].attrs["record_start"]), prev

    def stats(self):
        tot = {}
        for p, f in zip(self.paths, self.files):
            if "stats_json" not in f.attrs:
                raise Differ(f"{p}: attribute stats_json missing")
            try:
                st = json.loads(bytes(f.attrs["stats_json"]).decode())
            except Exception as ex:
                raise Differ(f"{p}: stats_json unreadable: {ex}")
            for k, v in st.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    tot[k] = tot.get(k, 0) + v
        return tot

    def paths_under(self, groups):
        names = None
        for p, f in zip(self.paths, self.files):
            here = sorted(n for n in datasets(f) if n.split("/")[1] in groups)
            if names is None:
                names = here
            elif here != names:
                extra = sorted(set(here) ^ set(names))
                raise Differ(f"{p}: datasets {extra} not in every shard of the folder")
        return names

    def concat(self, name):
        """Dataset `name` of every shard, concatenated (offsets rebased)."""
        parts = []
        base = 0
        for p, f in zip(self.paths, self.files):
            a = read(f[name], p)
            if name in OFFSETS:
                if a.ndim != 1 or len(a) < 1 or a[0] != 0:
                    raise Differ(f"{p}{name}: not offsets starting at 0")
                parts.append(a[:-1] + np.asarray(base, a.dtype))
                base += int(a[-1])
            else:
                parts.append(a)
        if name in OFFSETS:
            parts.append(np.asarray([base], dtype=parts[0].dtype))
        if parts[0].ndim == 0:
            raise Differ(f"{self.paths[0]}{name}: a scalar dataset, cannot concatenate")
        return np.concatenate(parts, axis=0)

    def blob(self, name):
        """A per-shard copy (/teacher/*, /student/*): the same in every shard."""
        first = read(self.files[0][name], self.paths[0])
        for p, f in zip(self.paths[1:], self.files[1:]):
            if read(f[name], p).tobytes() != first.tobytes():
                raise Differ(f"{p}{name}: differs from {self.paths[0]}'s in the same folder")
        return first

    def ds_attrs(self, name):
        first = self.files[0][name].attrs
        for p, f in zip(self.paths[1:], self.files[1:]):
            same_attrs(f"{p}{name}", f[name].attrs, first)
        return first


def compare_content(A, B):
    va, vb = A.value_attrs(), B.value_attrs()
    for k in VALUE_ATTRS:
        na = norm(va[k]) if va[k] is not None else None
        nb = norm(vb[k]) if vb[k] is not None else None
        if na != nb:
            raise Differ(f"root attribute {k}: {show(va[k])} vs {show(vb[k])}")
    ra, rb = A.record_range(), B.record_range()
    if ra != rb:
        raise Differ(f"record range: {ra} vs {rb}")
    sa, sb = A.stats(), B.stats()
    for k in sorted(set(sa) | set(sb)):
        if sa.get(k) != sb.get(k):
            raise Differ(f"stats_json {k} (summed over shards): {sa.get(k)} vs {sb.get(k)}")

    na, nb = A.paths_under({"docs", "atoms"}), B.paths_under({"docs", "atoms"})
    if na != nb:
        raise Differ(f"datasets differ: {sorted(set(na) ^ set(nb))}")
    for need in ("/docs/text", "/docs/text_offsets", "/docs/atom_offsets", "/docs/loss_start", "/docs/record",
                 "/atoms/start", "/atoms/end", "/atoms/mass", "/atoms/topk_ids", "/atoms/topk_logprob",
                 "/atoms/tail_mass"):
        if need not in na:
            raise Differ(f"{A.dir}: no dataset {need}")
    if not any(n.startswith("/atoms/com/") for n in na):
        raise Differ(f"{A.dir}: no /atoms/com/<j> dataset")
    # documents first, so that a difference is named where it starts
    order = sorted(na, key=lambda n: (not n.startswith("/docs/"), n))
    for n in order:
        same_array(n, A.concat(n), B.concat(n))
        same_attrs(n, A.ds_attrs(n), B.ds_attrs(n))

    ba, bb = A.paths_under({"teacher", "student"}), B.paths_under({"teacher", "student"})
    if ba != bb:
        raise Differ(f"blobs differ: {sorted(set(ba) ^ set(bb))}")
    for n in ba:
        same_array(n, A.blob(n), B.blob(n))
    docs = len(A.concat("/docs/record"))
    atoms = len(A.concat("/atoms/start"))
    return len(na) + len(ba), docs, atoms


def compare_exact(A, B):
    if len(A.paths) != len(B.paths):
        raise Differ(f"shard count: {len(A.paths)} vs {len(B.paths)}")
    for pa, pb, fa, fb in zip(A.paths, B.paths, A.files, B.files):
        if os.path.basename(pa) != os.path.basename(pb):
            raise Differ(f"shard names: {os.path.basename(pa)} vs {os.path.basename(pb)}")
        base = os.path.basename(pa)
        same_attrs(f"{base} root", fa.attrs, fb.attrs, EXACT_SKIP_ATTRS)
        objs_a, objs_b = [], []
        fa.visit(objs_a.append)
        fb.visit(objs_b.append)
        if sorted(objs_a) != sorted(objs_b):
            raise Differ(f"{base}: objects differ: {sorted(set(objs_a) ^ set(objs_b))}")
        for name in sorted(objs_a):
            oa, ob = fa[name], fb[name]
            if isinstance(oa, h5py.Dataset) != isinstance(ob, h5py.Dataset):
                raise Differ(f"{base}/{name}: a dataset in one, a group in the other")
            if isinstance(oa, h5py.Dataset):
                same_array(f"{base}/{name}", read(oa, pa), read(ob, pb))
                if oa.chunks != ob.chunks:
                    raise Differ(f"{base}/{name}: chunks {oa.chunks} vs {ob.chunks}")
                if oa.compression != ob.compression or oa.compression_opts != ob.compression_opts:
                    raise Differ(f"{base}/{name}: compression differs")
            same_attrs(f"{base}/{name}", oa.attrs, ob.attrs)


def main(argv):
    exact = False
    dirs = []
    for a in argv[1:]:
        if a == "--exact":
            exact = True
        elif a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        elif a.startswith("-"):
            print(f"h5_same.py: unknown option {a}\nusage: h5_same.py [--exact] DIR_A DIR_B", file=sys.stderr)
            return 2
        else:
            dirs.append(a)
    if len(dirs) != 2:
        print("usage: h5_same.py [--exact] DIR_A DIR_B", file=sys.stderr)
        return 2
    A = B = None
    try:
        A, B = Folder(dirs[0]), Folder(dirs[1])
        n, docs, atoms = compare_content(A, B)
        if exact:
            compare_exact(A, B)
    except Usage as ex:
        print(f"h5_same.py: {ex}", file=sys.stderr)
        return 2
    except Differ as ex:
        print(f"different: {dirs[0]} vs {dirs[1]}: {ex}")
        return 1
    finally:
        for x in (A, B):
            if x is not None:
                x.close()
    print(f"same{' (exact)' if exact else ''}: {dirs[0]} ({len(A.paths)} shards) and {dirs[1]} "
          f"({len(B.paths)} shards): {docs} docs, {atoms} atoms, {n} datasets")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
