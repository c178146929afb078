"""Interop of the sra cache with stock HDF5 tools (issue 3 acceptance).

- our file, read by plain h5py through build/plugins/libh5zstd.so, equals the
  fixture's plain binary dump, and its values mean what CACHE.md says;
- h5dump prints it;
- files written by h5py (filter 32015 via our plugin, with and without
  shuffle, h5py's own chunk shapes, gzip) are read by our reader.
Run with /usr/bin/python3 (Debian python3-h5py python3-numpy hdf5-tools).
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

import h5py
import numpy as np

BUILD = os.environ.get("SRA_BUILD", "build")
FIXTURE = os.path.join(BUILD, "tests", "cache_fixture")
results = []


def test(fn):
    try:
        fn()
        print(f"ok - {fn.__name__}")
    except Exception:
        print(f"not ok - {fn.__name__}")
        print("    " + traceback.format_exc().replace("\n", "\n    "))
        results.append(fn.__name__)
    sys.stdout.flush()


def load_raw(d):
    dd, k, layers, dtype, docs, atoms, text = open(os.path.join(d, "shape.txt")).read().split()
    dd, k, layers = int(dd), int(k), int(layers)
    hid = {"bf16": np.uint16, "f16": np.float16, "f32": np.float32}[dtype]
    r = lambda name, t: np.fromfile(os.path.join(d, name + ".bin"), dtype=t)
    raw = {
        "docs/text": r("docs_text", np.uint8),
        "docs/text_offsets": r("docs_text_offsets", "<i8"),
        "docs/atom_offsets": r("docs_atom_offsets", "<i8"),
        "docs/loss_start": r("docs_loss_start", "<i8"),
        "docs/record": r("docs_record", "<i8"),
        "atoms/start": r("atoms_start", "<i4"),
        "atoms/end": r("atoms_end", "<i4"),
        "atoms/mass": r("atoms_mass", "<f4"),
        "atoms/topk_ids": r("atoms_topk_ids", "<i4").reshape(-1, k),
        "atoms/topk_logprob": r("atoms_topk_logprob", "<f2").reshape(-1, k),
        "atoms/tail_mass": r("atoms_tail_mass", "<f4"),
    }
    for j in range(layers):
        raw[f"atoms/com/{j}"] = r(f"atoms_com_{j}", hid).reshape(-1, dd)
    raw["teacher/tokenizer_json"] = r("teacher_tokenizer_json", np.uint8)
    return raw, dtype


def make_fixture(tmp, name, *flags):
    path = os.path.join(tmp, name + ".h5")
    rawdir = os.path.join(tmp, name + ".raw")
    subprocess.run([FIXTURE, "write", path, "--raw", rawdir, *flags], check=True)
    return path, rawdir


TMP = tempfile.mkdtemp(prefix="sra-interop-")


@test
def h5py_reads_our_file():
    for dtype in ("bf16", "f16", "f32"):
        path, rawdir = make_fixture(TMP, "ours_" + dtype, "--dtype", dtype, "--docs", "80",
                                    "--d", "96", "--k", "12", "--layers", "2", "--chunk", "8192")
        raw, _ = load_raw(rawdir)
        with h5py.File(path, "r") as f:
            # string attributes are fixed-length (CACHE.md): h5py gives bytes
            a = {k: v.decode() if isinstance(v, bytes) else v for k, v in f.attrs.items()}
            assert a["format"] == "sra-cache" and int(a["format_version"]) == 2
            assert int(a["complete"]) == 1 and a["hidden_dtype"] == dtype
            assert list(a["layers"]) == [-1, 1]
            for name, want in raw.items():
                got = f[name][()]
                assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
                assert got.shape == want.shape, (name, got.shape, want.shape)
                assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), name
            if dtype == "bf16":
                assert f["atoms/com/0"].attrs["dtype"] == b"bfloat16"
            assert "32015" in f["atoms/com/0"]._filters
            tok = f["teacher/tokenizer_json"][()].tobytes()
            assert hashlib.sha256(tok).hexdigest() == a["teacher_tokenizer_sha256"]
            # values mean what CACHE.md says: tail = 1 - sum exp(top-k logprob)
            lp = f["atoms/topk_logprob"][()].astype(np.float64)
            tail = f["atoms/tail_mass"][()]
            err = np.abs(1.0 - np.exp(lp).sum(1) - tail).max()
            assert err < 5e-3, err
            assert np.all(np.diff(lp, axis=1) <= 0), "top-k must be sorted by probability"
            # docs: offsets index the text, atoms lie inside their doc
            to, ao = f["docs/text_offsets"][()], f["docs/atom_offsets"][()]
            st, en = f["atoms/start"][()], f["atoms/end"][()]
            for i in range(len(to) - 1):
                s, e = st[ao[i]:ao[i + 1]], en[ao[i]:ao[i + 1]]
                assert np.all(e > s) and np.all(e <= to[i + 1] - to[i])


@test
def without_the_plugin_h5py_cannot_decode():
    # Proves the previous test really went through our plugin.
    path, _ = make_fixture(TMP, "noplugin", "--docs", "5")
    env = dict(os.environ, HDF5_PLUGIN_PATH=os.path.join(TMP, "empty-plugin-dir"))
    code = ("import h5py,sys\nf=h5py.File(sys.argv[1],'r')\n"
            "try:\n f['atoms/com/0'][()]\nexcept OSError as e:\n print('refused', e); sys.exit(3)\n")
    p = subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True)
    assert p.returncode == 3, p.stdout + p.stderr


@test
def h5dump_prints_it():
    path, rawdir = make_fixture(TMP, "dump", "--docs", "10")
    raw, _ = load_raw(rawdir)
    p = subprocess.run(["h5dump", "-H", path], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for name in ("docs", "atoms", "com", "topk_logprob", "teacher_tokenizer_sha256", "complete"):
        assert name in p.stdout, name
    p = subprocess.run(["h5dump", "-d", "/atoms/mass", "-w", "0", path], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    data = p.stdout.split("DATA {", 1)[1].split("}", 1)[0]
    vals = [float(x) for line in data.strip().splitlines()
            for x in line.split(":", 1)[1].replace(",", " ").split()]
    assert np.allclose(vals, raw["atoms/mass"], rtol=1e-5), "h5dump values differ"
    p = subprocess.run(["h5dump", "-d", "/atoms/com/0", "-s", "0,0", "-c", "1,4", path],
                       capture_output=True, text=True)
    assert p.returncode == 0 and str(int(raw["atoms/com/0"][0, 0])) in p.stdout, p.stdout + p.stderr


def write_with_h5py(path, raw, dtype, tok, mode):
    k = raw["atoms/topk_ids"].shape[1]
    d = raw["atoms/com/0"].shape[1]
    layers = len([n for n in raw if n.startswith("atoms/com/")])
    with h5py.File(path, "w") as f:
        a = f.attrs
        a["format"] = "sra-cache"
        a["format_version"] = np.int64(1)
        for s in ("sra_version", "created", "teacher_name", "teacher_config_sha256",
                  "teacher_weights_sha256", "student_tokenizer_sha256", "dataset_sha256"):
            a[s] = "written-by-h5py"
        a["student_tokenizer_sha256"] = ""
        a["teacher_tokenizer_sha256"] = hashlib.sha256(tok).hexdigest()
        a["settings_json"] = "{}"
        a["atoms"] = "word"
        a["mass"] = "attn:-1"
        a["teacher_vocab_size"] = 2 * 66
        a["layers"] = np.array([-1] + list(range(1, layers)), dtype=np.int32)
        a["hidden_size"] = d
        a["hidden_dtype"] = dtype
        a["topk"] = k
        a["temperature"] = 1.0
        for s in ("record_start", "record_end", "shard_index"):
            a[s] = 0
        a["shard_count"] = 1
        a["complete"] = np.uint8(1)
        for name, arr in raw.items():
            if name.startswith("teacher/"):
                continue
            kw = {}
            if mode == "zstd":
                kw = dict(compression=32015, compression_opts=(3,), chunks=True)
            elif mode == "shuffle+zstd":
                kw = dict(compression=32015, compression_opts=(5,), shuffle=True,
                          chunks=(min(len(arr), 100),) + arr.shape[1:] if len(arr) else True)
            elif mode == "gzip":
                kw = dict(compression="gzip", chunks=True)
            ds = f.create_dataset(name, data=arr, maxshape=(None,) + arr.shape[1:], **kw)
            if name.startswith("atoms/com/"):
                ds.attrs["dtype"] = "bfloat16" if dtype == "bf16" else dtype
        f.create_dataset("teacher/tokenizer_json", data=np.frombuffer(tok, np.uint8),
                         compression=32015)
        f.create_dataset("teacher/config_json", data=np.frombuffer(b'{"model_type":"llama"}', np.uint8))


@test
def our_reader_reads_h5py_files():
    path, rawdir = make_fixture(TMP, "src", "--docs", "70", "--d", "40", "--k", "6", "--layers", "2")
    raw, dtype = load_raw(rawdir)
    tok = raw["teacher/tokenizer_json"].tobytes()
    for mode in ("zstd", "shuffle+zstd", "gzip"):
        out = os.path.join(TMP, f"h5py_{mode}.h5")
        write_with_h5py(out, raw, dtype, tok, mode)
        if "zstd" in mode:
            with h5py.File(out, "r") as f:
                ds = f["atoms/com/0"]
                assert "32015" in ds._filters
                assert ds.id.get_storage_size() < ds.size * ds.dtype.itemsize, "plugin did not compress"
        for threads in ("1", "2"):
            p = subprocess.run([FIXTURE, "check", out, rawdir, "--threads", threads],
                               capture_output=True, text=True)
            assert p.returncode == 0, f"{mode}: {p.stdout}{p.stderr}"
        p = subprocess.run([os.path.join(BUILD, "sra-inspect"), out], capture_output=True, text=True)
        assert p.returncode == 0 and "written-by-h5py" in p.stdout, p.stdout + p.stderr


@test
def a_damaged_h5py_file_is_refused():
    # ours must notice h5py-written data that breaks the schema
    path, rawdir = make_fixture(TMP, "src2", "--docs", "20")
    raw, dtype = load_raw(rawdir)
    raw["atoms/end"] = raw["atoms/end"].copy()
    raw["atoms/end"][2] = 10 ** 6
    out = os.path.join(TMP, "h5py_bad.h5")
    write_with_h5py(out, raw, dtype, raw["teacher/tokenizer_json"].tobytes(), "zstd")
    p = subprocess.run([FIXTURE, "check", out, rawdir], capture_output=True, text=True)
    assert p.returncode != 0 and "/atoms/end" in p.stderr, p.stderr


shutil.rmtree(TMP, ignore_errors=True)
sys.exit(1 if results else 0)
