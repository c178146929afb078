"""Shared set-up of the Python reference tests (tests/test_*_ref.py; not a
test itself): where the build and the shared assets are, the loud skip
when the TinyStories teacher is missing (a failure under CI=true), the
"ok - NAME" / "not ok - NAME" lines tests/run.sh counts, and running the
project's programs. Importing it also points HDF5_PLUGIN_PATH at our zstd
filter, so h5py imported afterwards reads the caches."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("SRA_BUILD", os.path.join(ROOT, "build"))
SHARED = os.environ.get("SRA_SHARED", os.path.join(ROOT, "..", "shared"))
MODEL = os.path.join(SHARED, "models", "tinystories-656k")
os.environ["HDF5_PLUGIN_PATH"] = os.path.join(BUILD, "plugins")
sys.path.insert(0, os.path.join(SHARED, "tools"))  # sra_ref, llama_ref

fails = 0


def need_model(test):
    """Skips (exit 0) or, under CI=true, fails when the teacher is missing."""
    if os.path.exists(os.path.join(MODEL, "model.safetensors")):
        return
    if os.environ.get("CI") == "true":
        print("not ok - missing %s" % MODEL)
        sys.exit(1)
    print("skip - %s: missing %s (set SRA_SHARED)" % (test, MODEL))
    sys.exit(0)


def check(name, ok, detail=""):
    global fails
    print("%s - %s%s" % ("ok" if ok else "not ok", name, (": " + detail) if detail else ""))
    fails += not ok


def run(args, stdin=None):
    """stdout of a program; a failure ends the test with its stderr."""
    p = subprocess.run(args, input=stdin, capture_output=True)
    if p.returncode:
        print("not ok - command failed: %s\n%s" % (" ".join(args), p.stderr.decode(errors="replace")))
        sys.exit(1)
    return p.stdout


def finish():
    print("%d failed" % fails)
    sys.exit(1 if fails else 0)
