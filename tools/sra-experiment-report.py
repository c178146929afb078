#!/usr/bin/python3
"""sra-experiment-report.py - the Python half of tools/sra-experiment.

Subcommands (all called by tools/sra-experiment; nothing here trains):
  prepare OUT NPROMPTS        raw teacher samples -> OUT/data/{train,valid,held}.jsonl
  select ROOT MODE SEEDS S..  the sweep setting with the lowest mean validation bits/byte
  bestckpt RUN                the checkpoint of RUN with the lowest validation bits/byte
  report                      writes the results file (settings come from EXP_* variables)

Numbers are read from what sra-train writes (RUN/metrics.jsonl, the eval-only
run RUN/heldout/metrics.jsonl); nothing is typed in by hand.
"""
import datetime
import glob
import json
import math
import os
import platform
import statistics
import subprocess
import sys

END = "<|end_story|>"
SPLITS = ("train", "valid", "held")


def die(msg):
    sys.stderr.write("sra-experiment-report: %s\n" % msg)
    sys.exit(1)


# ---------------------------------------------------------------- prepare
def clean(text):
    """The teacher writes its end marker as ordinary text ("<|" "end"
    "_story" "|>") before it samples EOS; a story cut by the 250-step limit
    can end in part of it. Neither is story text: cut at the marker."""
    i = text.find(END)
    ended = i >= 0
    if ended:
        text = text[:i]
    else:
        for k in range(len(END) - 1, 1, -1):
            if text.endswith(END[:k]):
                text = text[:-k]
                break
    return text.rstrip(), ended


def cmd_prepare(out, nprompts):
    nprompts = int(nprompts)
    seen = set()
    stats = {}
    for split in SPLITS:  # train first: valid/held drop stories already in train
        rows, st = [], {"stories": 0, "bytes": 0, "ended_with_eos": 0, "cut_at_250_tokens": 0,
                        "duplicates_dropped": 0, "empty_dropped": 0}
        for k in range(nprompts):
            path = os.path.join(out, "data", "raw", "%s-%d.jsonl" % (split, k))
            for ln, line in enumerate(open(path, encoding="utf-8"), 1):
                try:
                    r = json.loads(line)
                except ValueError:
                    die("%s:%d: not JSON" % (path, ln))
                t, ended = clean(r["text"])
                if not t:
                    st["empty_dropped"] += 1
                    continue
                if t in seen:
                    st["duplicates_dropped"] += 1
                    continue
                seen.add(t)
                st["ended_with_eos" if ended else "cut_at_250_tokens"] += 1
                st["stories"] += 1
                st["bytes"] += len(t.encode("utf-8"))
                rows.append({"text": t, "prompt": k, "seed": r.get("seed")})
        tmp = os.path.join(out, "data", split + ".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp, os.path.join(out, "data", split + ".jsonl"))
        stats[split] = st
    with open(os.path.join(out, "data", "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    for s in SPLITS:
        print("  %-5s %5d stories, %8d bytes (%d ended with EOS, %d cut at 250 tokens, %d duplicates dropped)"
              % (s, stats[s]["stories"], stats[s]["bytes"], stats[s]["ended_with_eos"], stats[s]["cut_at_250_tokens"],
                 stats[s]["duplicates_dropped"]))


# ---------------------------------------------------------------- metrics
def read_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def evals(run):
    return [r for r in read_jsonl(os.path.join(run, "metrics.jsonl")) if "eval_bpb" in r]


def val_metric(run, mode):
    """Validation bits/byte of a run: its last evaluation (mode final) or
    its best one (mode best, the long budget's rule)."""
    ev = evals(run)
    if not ev:
        return None
    if mode == "final":
        return ev[-1]["eval_bpb"]
    return min(r["eval_bpb"] for r in ev)


def heldout(run):
    ev = [r for r in read_jsonl(os.path.join(run, "heldout", "metrics.jsonl")) if "eval_bpb" in r]
    return ev[-1]["eval_bpb"] if ev else None


def heldout_from(run):
    try:
        return open(os.path.join(run, "heldout", "from.txt")).read().strip()
    except OSError:
        return None


def steps_info(run):
    rows = [r for r in read_jsonl(os.path.join(run, "metrics.jsonl")) if "loss" in r and "eval_bpb" not in r]
    if not rows:
        return None
    tps = statistics.median(r["tokens_per_s"] for r in rows)
    return {"steps": rows[-1]["step"], "seconds": rows[-1]["seconds"], "tokens_per_s": tps,
            "spans": statistics.mean(r.get("spans", 0) for r in rows),
            "shared_mass": statistics.mean(r.get("shared_mass", 0) for r in rows)}


def cmd_select(root, mode, seeds, *settings):
    seeds = int(seeds)
    best, best_v, table = None, None, {}
    for s in settings:
        vals = [val_metric(os.path.join(root, "sra-" + s, "s%d" % i), mode) for i in range(1, seeds + 1)]
        if any(v is None for v in vals):
            die("%s/sra-%s: a seed has no validation result" % (root, s))
        m = statistics.mean(vals)
        table[s] = m
        if best_v is None or m < best_v:
            best, best_v = s, m
    with open(os.path.join(root, "sweep.json"), "w") as f:
        json.dump({"mode": mode, "mean_validation_bpb": table, "best": best}, f, indent=1)
    print(best)


def cmd_bestckpt(run):
    ev = evals(run)
    cands = [(r["eval_bpb"], r["step"]) for r in ev
             if os.path.isdir(os.path.join(run, "ckpt", "step-%08d" % r["step"]))]
    if not cands:
        die("%s: no validation evaluation with a checkpoint (ckpt/step-N)" % run)
    v, step = min(cands)
    print(os.path.join(run, "ckpt", "step-%08d" % step))


# ---------------------------------------------------------------- report
def mean_sd(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, 0
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else None), len(vals)


def fmt_ms(vals, nd=3):
    m, sd, n = mean_sd(vals)
    if m is None:
        return "—"
    if sd is None:
        return "%.*f (n=1)" % (nd, m)
    return "%.*f ± %.*f" % (nd, m, nd, sd)


# two-sided 5% critical values of Student's t, by degrees of freedom
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26, 10: 2.23}


def paired(a, b):
    """a - b over the seeds both have: (mean, sd, n, verdict). Lower bits/byte
    is better, so a negative mean says a beat b. The verdict is 'clear' when
    every seed agrees in sign and a paired t-test rejects 'no difference' at
    5% (|mean| > t(n-1) sd/sqrt(n)), else 'within noise'."""
    d = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    if not d:
        return None
    m = statistics.mean(d)
    if len(d) < 2:
        return m, None, 1, "one seed: no noise estimate"
    sd = statistics.stdev(d)
    same = all(x < 0 for x in d) or all(x > 0 for x in d)
    clear = same and abs(m) > T95.get(len(d) - 1, 2.0) * sd / math.sqrt(len(d))
    return m, sd, len(d), ("clear" if clear else "within noise")


def fmt_delta(p, nd=3):
    if p is None:
        return "—"
    m, sd, n, v = p
    s = "%+.*f" % (nd, m)
    if sd is not None:
        s += " ± %.*f" % (nd, sd)
    if v == "within noise":
        s += " (noise)"
    return s


def say_delta(p, what_better, what_worse, obj, nd=3):
    """A sentence fragment for a paired difference a - b: 'beats ce by ...'."""
    if p is None:
        return "was not compared with %s (runs missing)" % obj
    m, sd, n, v = p
    s = "%s %s by %.*f bits/byte" % (what_better if m < 0 else what_worse, obj, nd, abs(m))
    if sd is not None:
        s += " (± %.*f over %d seeds: %s)" % (nd, sd, n, v)
    else:
        s += " (%s)" % v
    return s


def cache_info(cdir):
    try:
        man = json.load(open(os.path.join(cdir, "manifest.json")))
    except (OSError, ValueError):
        return None
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(cdir, "shard-*.h5")))
    s = man.get("settings", {})
    return {"docs": man.get("docs"), "atoms": man.get("atoms"), "teacher_tokens": man.get("teacher_tokens"),
            "records": man.get("records"), "mb": size / 1e6, "atoms_mode": s.get("atoms"), "mass": s.get("mass"),
            "max_tokens": s.get("max_tokens")}


def piece_lengths(cdir, tokenizer, build):
    """Student tokens of every cached document (piece): how many exceed seq."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        return None
    os.environ.setdefault("HDF5_PLUGIN_PATH", os.path.join(build, "plugins"))
    import h5py
    texts = []
    for p in sorted(glob.glob(os.path.join(cdir, "shard-*.h5"))):
        with h5py.File(p, "r") as f:
            t = f["docs/text"][:].tobytes()
            o = f["docs/text_offsets"][:]
            texts += [t[o[i]:o[i + 1]].decode("utf-8") for i in range(len(o) - 1)]
    if not texts:
        return None
    inp = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    r = subprocess.run([os.path.join(build, "sra-tokenize"), "--tokenizer", tokenizer, "--special"], input=inp,
                       capture_output=True, text=True)
    if r.returncode:
        return None
    n = [len(json.loads(l)["ids"]) for l in r.stdout.splitlines() if l.strip()]
    return n


def cmd_report():
    E = os.environ
    out = E["EXP_OUT"]
    results = E["EXP_RESULTS"]
    build = E["EXP_BUILD"]
    seeds = int(E["EXP_SEEDS"])
    short_steps, long_steps = int(E["EXP_SHORT"]), int(E["EXP_LONG"])
    sweep = E["EXP_SWEEP"].split()
    quick = E.get("EXP_QUICK") == "1"
    resdir = os.path.dirname(os.path.abspath(results))
    svgrel = E.get("EXP_SVGREL", "results")
    S = range(1, seeds + 1)
    budgets = [("short", short_steps, "final"), ("long", long_steps, "best")]

    def root(b, steps):
        return os.path.join(out, "runs", "%s-%d" % (b, steps))

    def best_of(b, steps):
        try:
            return json.load(open(os.path.join(root(b, steps), "sweep.json")))["best"]
        except (OSError, ValueError, KeyError):
            return None

    def runs(b, steps, name):
        return [os.path.join(root(b, steps), name, "s%d" % i) for i in S]

    def H(b, steps, name):
        return [heldout(r) for r in runs(b, steps, name)] if name else [None] * seeds

    def V(b, steps, name, mode):
        return [val_metric(r, mode) for r in runs(b, steps, name)] if name else [None] * seeds

    def tps(b, steps, name):
        v = [steps_info(r) for r in runs(b, steps, name)] if name else []
        v = [x["tokens_per_s"] for x in v if x]
        return "%.0f" % statistics.mean(v) if v else "—"

    def best_step(b, steps, name):
        st = []
        for r in runs(b, steps, name) if name else []:
            f = heldout_from(r)
            if f and "step-" in f:
                st.append(int(f.rsplit("step-", 1)[1]))
        return "/".join(str(s) for s in st) if st else "—"

    def ev_bpb(d):
        e = [r for r in read_jsonl(os.path.join(d, "metrics.jsonl")) if "eval_bpb" in r]
        return e[-1]["eval_bpb"] if e else None

    data = {}
    try:
        data = json.load(open(os.path.join(out, "data", "stats.json")))
    except (OSError, ValueError):
        pass
    teacher_bpb = ev_bpb(os.path.join(out, "eval", "teacher"))
    random_bpb = ev_bpb(os.path.join(out, "eval", "random-teacher"))
    caches = {n: cache_info(os.path.join(out, "cache", n))
              for n in ("word", "token", "uniform", "random", "student-bpe", "student-bytes")}
    tok_bpe, tok_bytes = E["EXP_TOK_BPE"], E["EXP_TOK_BYTES"]
    seq_bpe, seq_bytes = int(E["EXP_SEQ_BPE"]), int(E["EXP_SEQ_BYTES"])
    pl_bpe = piece_lengths(os.path.join(out, "cache", "word"), tok_bpe, build)
    pl_bytes = piece_lengths(os.path.join(out, "cache", "word"), tok_bytes, build)

    L = []
    w = L.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = E.get("EXP_COMMIT", "?")
    w("# Results: cross-tokenizer distillation of TinyStories-656K (method.md §5-§8)")
    w("")
    if quick:
        w("> **--quick run: plumbing test only.** One seed, a handful of steps and stories, the sweep cut to one "
          "setting. None of these numbers says anything about the method.")
        w("")
    w("Generated by `tools/sra-experiment` on %s, on %s (%s, %d cores, %s), commit %s. Every number below is read "
      "from the runs' own `metrics.jsonl`; nothing is typed in by hand." %
      (now, platform.node() or "?", cpu, os.cpu_count() or 0, platform.machine(), commit))
    w("")
    w("Reproduce (from the repository root; resumable: finished runs are skipped, so re-running only rewrites "
      "this file; a fresh `--out` redoes everything from the same seeds: in testing that gave the very same "
      "numbers on the same machine, and another machine's BLAS may differ within seed noise):")
    w("")
    w("    " + E["EXP_CMD"])
    w("")

    # ------------------------------------------------------------ setup
    w("## Setup")
    w("")
    tr, va, he = data.get("train", {}), data.get("valid", {}), data.get("held", {})
    w("- **Teacher**: `%s` (Llama, d=128, 2 layers, 8 heads / 4 KV heads, its own 2048-token SentencePiece-style "
      "BPE whose tokens cross words). Held-out bits/byte with its own tokenizer: **%s**." %
      (E["EXP_TEACHER_REL"], "%.3f" % teacher_bpb if teacher_bpb is not None else "—"))
    w("- **Data**: stories sampled from the teacher itself (`sra-generate --steps 250 --temperature 1 --stop-eos "
      "--samples N --seed S --jsonl`), equal shares from the prompts %s, disjoint seed ranges per split "
      "(train 100000·(p+1)+i, validation +50000, held-out +70000 for prompt p). The teacher writes its end marker "
      "`<|end_story|>` as ordinary text before EOS; it is cut off (it is not story text). "
      "Train **%s** stories (%s bytes), validation **%s** (%s bytes: picks the sra setting and the long budget's "
      "checkpoint), held-out **%s** (%s bytes: only the tables below). %s of the training stories reached EOS "
      "within 250 tokens." %
      (E["EXP_PROMPTS"], tr.get("stories", "—"), tr.get("bytes", "—"), va.get("stories", "—"), va.get("bytes", "—"),
       he.get("stories", "—"), he.get("bytes", "—"), tr.get("ended_with_eos", "—")))
    w("- **Student tokenizer**: a %s-token byte-level BPE trained with `sra-bpe` on the training stories. Not "
      "GPT-2: with d=64 its 50257-token head dominates every step (about 9x slower per step than this BPE when "
      "the script was written, on 2 cores) and `sra-train` cannot reduce a vocabulary to the ids seen, as the "
      "method.md §8 prototype did; a BPE of the "
      "teacher's size trained on the same text is the fair like-for-like student and still cuts text differently "
      "from the teacher (GPT-2 pre-tokenization, spaces in front of words, no cross-word tokens)." %
      E.get("EXP_BPE_VOCAB", "2048"))
    w("- **Student**: Llama, d=64, 2 layers, 4 heads, seq %d, batch 8, lr 3e-3 (warmup %s, cosine to 3e-4), "
      "seeds 1..%d (a seed fixes the initialisation and the data order, so seed i of every method sees the same "
      "batches: differences are paired by seed). Same step budget for every method." %
      (seq_bpe, E["EXP_WARMUP"], seeds))
    w("- **Budgets**: *short* = %d steps (one epoch: cached documents / batch, rounded up); *long* = %d steps with "
      "a validation evaluation and checkpoint every %s steps, and the **checkpoint with the lowest validation "
      "bits/byte** is the one evaluated on held-out (rule fixed before looking at held-out). Short runs are "
      "evaluated at their last step." % (short_steps, long_steps, E["EXP_LONG_EVERY"]))
    w("- **Methods** (`sra-train --method`): `ce` (cross-entropy only, through the same cache so the documents "
      "are identical), `uld`, `mined` (token-level baselines on an `--atoms token` cache, at the trainer's "
      "default α=0.2), `sra` (sweep below, chosen on validation%s), its ablations (`--beta 0` no span, "
      "`--gamma 0` no geometry, `--logit-weight 0` no logit term, a `--mass uniform` cache) and the **control**: "
      "the chosen sra setting on the cache of a teacher of the same shape with random weights "
      "(`sra-train --steps 0`, seed 7; held-out bits/byte of that random teacher: %s)." %
      (" per budget" if os.environ.get("EXP_LONG_SWEEP", "1") == "1" else " on the short budget, reused for the long one",
       "%.3f" % random_bpb if random_bpb is not None else "—"))
    w("- **Noise rule**: Δ columns are paired differences (method − reference, per seed) as mean ± sd; lower is "
      "better. A difference is called *clear* when every seed agrees in sign and a paired t-test over the seeds "
      "rejects 'no difference' at 5% (|mean| > t(n−1)·sd/√n: 4.30·sd/√3 with 3 seeds), otherwise *within noise* "
      "(marked `(noise)`). With one seed there is no noise estimate and no verdict.")
    w("- Held-out bits/byte: summed token NLL in bits over the UTF-8 bytes of the held-out stories "
      "(`sra-train --from CKPT --steps 0 --eval HELD`, every window), so students with different tokenizers "
      "compare directly.")
    w("")
    w("Caches (`sra-extract --max-tokens %s`: documents cut between atoms into pieces of at most that many "
      "teacher tokens, so that a seq-%d BPE student sees whole pieces):" % (E["EXP_MAXTOK"], seq_bpe))
    w("")
    w("| cache | teacher | atoms | mass | documents | atoms stored | size (MB) |")
    w("|---|---|---|---|---|---|---|")
    for n, who in (("word", "trained"), ("token", "trained"), ("uniform", "trained"), ("random", "random weights"),
                   ("student-bpe", "trained"), ("student-bytes", "trained")):
        c = caches.get(n)
        if c:
            w("| %s | %s | %s | %s | %s | %s | %.1f |" % (n, who, c["atoms_mode"], c["mass"], c["docs"], c["atoms"],
                                                         c["mb"]))
    w("")
    for pl, nm, sq in ((pl_bpe, "BPE", seq_bpe), (pl_bytes, "byte", seq_bytes)):
        if pl:
            over = sum(1 for x in pl if x > sq)
            w("- %s student: %.0f tokens per cached piece on average (max %d); %d of %d pieces (%.1f%%) are longer "
              "than its seq %d and lose their tail." % (nm, statistics.mean(pl), max(pl), over, len(pl),
                                                        100.0 * over / len(pl), sq))
    w("")

    # ------------------------------------------------------------ table 1
    best = {b: best_of(b, st) for b, st, _ in budgets}
    w("## Table 1: held-out bits/byte, BPE student (mean ± sd over %d seed%s)" % (seeds, "s" if seeds > 1 else ""))
    w("")
    long_sweep = os.environ.get("EXP_LONG_SWEEP", "1") == "1"
    w("sra setting chosen on validation: short `%s`, long `%s` (ablations and control use the same setting as "
      "their budget's sra row)%s." % (best["short"] or "—", best["long"] or "—",
                                      "" if long_sweep else "; the sweep runs on the short budget only, and the "
                                      "long budget reuses the short budget's choice (`--long-sweep` sweeps it too)"))
    w("")
    rows = [("ce", "ce"), ("uld", "uld"), ("mined", "mined"), ("sra (chosen)", "sra-{b}"),
            ("sra − span (β=0)", "abl-nospan-{b}"), ("sra − geometry (γ=0)", "abl-nogeo-{b}"),
            ("sra − logit", "abl-nologit-{b}"), ("sra, uniform mass", "abl-uniform-{b}"),
            ("**control**: sra, random teacher", "ctl-random-{b}")]

    def nm(tmpl, b):
        if "{b}" in tmpl:
            return tmpl.format(b=best[b]) if best[b] else None
        return tmpl

    w("| method | short: held-out | Δ vs ce | long: held-out | Δ vs ce | long: step used | tokens/s (short) |")
    w("|---|---|---|---|---|---|---|")
    if teacher_bpb is not None:
        w("| teacher (own tokenizer) | %.3f | | %.3f | | | |" % (teacher_bpb, teacher_bpb))
    for label, tmpl in rows:
        cells = [label]
        for b, st, mode in budgets:
            n = nm(tmpl, b)
            h = H(b, st, n)
            cells.append(fmt_ms(h))
            cells.append("" if tmpl == "ce" else fmt_delta(paired(h, H(b, st, "ce"))))
        cells.append(best_step("long", long_steps, nm(tmpl, "long")))
        cells.append(tps("short", short_steps, nm(tmpl, "short")))
        w("| " + " | ".join(cells) + " |")
    w("")
    w("tokens/s: median over steps of the training tokens per second (validation excluded), mean over seeds, "
      "with %s run(s) sharing the machine at a time (`--jobs`), so compare them within this table only." %
      E["EXP_JOBS"])
    w("")
    w("Margins that decide the reading (paired by seed, held-out bits/byte):")
    w("")
    w("| comparison | short | long |")
    w("|---|---|---|")
    comps = [("sra − ce", "sra-{b}", "ce"), ("sra − uld", "sra-{b}", "uld"), ("sra − mined", "sra-{b}", "mined"),
             ("sra − control (the distillation margin)", "sra-{b}", "ctl-random-{b}"),
             ("control − ce (effect of the auxiliary losses alone)", "ctl-random-{b}", "ce"),
             ("no span − sra", "abl-nospan-{b}", "sra-{b}"), ("no geometry − sra", "abl-nogeo-{b}", "sra-{b}"),
             ("no logit − sra", "abl-nologit-{b}", "sra-{b}"), ("uniform mass − sra", "abl-uniform-{b}", "sra-{b}")]
    P = {}
    for label, a, c in comps:
        cells = [label]
        for b, st, mode in budgets:
            p = paired(H(b, st, nm(a, b)), H(b, st, nm(c, b)))
            P[(label, b)] = p
            cells.append(fmt_delta(p))
        w("| " + " | ".join(cells) + " |")
    w("")

    # ------------------------------------------------------------ sweep
    w("## The sra sweep (α × τ × pool), chosen on validation")
    w("")
    w("| setting | short: validation (last step) | short: held-out | long: validation (best step) | "
      "long: held-out |")
    w("|---|---|---|---|---|")
    for s in sweep:
        cells = ["`%s`" % s]
        for b, st, mode in budgets:
            mark = " ✓" if best[b] == s else ""
            cells.append(fmt_ms(V(b, st, "sra-" + s, mode)) + mark)
            cells.append(fmt_ms(H(b, st, "sra-" + s)))
        w("| " + " | ".join(cells) + " |")
    w("")
    w("Setting names: `aA-tT-POOL` = `--alpha A --tau T --pool POOL` (β = γ = 1). ✓ = lowest mean validation "
      "bits/byte, the setting used for that budget's sra row, ablations and control.")
    w("")
    shm = []
    for s in sweep:
        i = [steps_info(r) for r in runs("short", short_steps, "sra-" + s)]
        i = [x for x in i if x]
        if i:
            shm.append("`%s` %.2f" % (s, statistics.mean(x["shared_mass"] for x in i)))
    if shm:
        w("Teacher top-k mass on shared keys (mean over steps, short runs): " + ", ".join(shm) + ".")
        w("")

    # ------------------------------------------------------------ table 2
    bs = best["short"]
    w("## Table 2: one `atoms=word` cache for two students with different tokenizers (short budget)")
    w("")
    w("The same word-level cache (table 1's) serves a BPE student (seq %d) and a byte-level student (`sra-bpe "
      "--vocab-size 257`, seq %d so that it too sees whole pieces), against caches made for each student alone "
      "(`--atoms student --student-tokenizer T`, the paper's setting). sra setting `%s`, %d steps." %
      (seq_bpe, seq_bytes, bs or "—", short_steps))
    w("")
    w("| student | cache | cache size (MB) | spans per step | held-out | Δ vs ce (same student) | tokens/s |")
    w("|---|---|---|---|---|---|---|")
    t2 = [("BPE %s" % E.get("EXP_BPE_VOCAB", "2048"), "none (ce)", None, "ce"),
          ("BPE %s" % E.get("EXP_BPE_VOCAB", "2048"), "word (shared)", "word", "sra-%s" % bs if bs else None),
          ("BPE %s" % E.get("EXP_BPE_VOCAB", "2048"), "student (BPE only)", "student-bpe",
           "t2-bpe-student-%s" % bs if bs else None),
          ("bytes 257", "none (ce)", None, "t2-bytes-ce"),
          ("bytes 257", "word (shared)", "word", "t2-bytes-word-%s" % bs if bs else None),
          ("bytes 257", "student (bytes only)", "student-bytes", "t2-bytes-student-%s" % bs if bs else None)]
    T2 = {}
    for stu, cname, cache, run in t2:
        h = H("short", short_steps, run)
        T2[(stu, cname)] = h
        ce = H("short", short_steps, "ce" if stu.startswith("BPE") else "t2-bytes-ce")
        i = [steps_info(r) for r in runs("short", short_steps, run)] if run else []
        i = [x for x in i if x]
        sp = "%.0f" % statistics.mean(x["spans"] for x in i) if i and cache else ""
        c = caches.get(cache) if cache else None
        w("| %s | %s | %s | %s | %s | %s | %s |" % (
            stu, cname, "%.1f" % c["mb"] if c else "", sp, fmt_ms(h),
            "" if cname.startswith("none") else fmt_delta(paired(h, ce)), tps("short", short_steps, run)))
    w("")

    # ------------------------------------------------------------ reading
    w("## Reading")
    w("")
    w("*Generated from the numbers above by the rule in Setup; lower bits/byte is better.*")
    w("")
    for b, st, mode in budgets:
        hce = H(b, st, "ce")
        m_ce = mean_sd(hce)[0]
        if m_ce is None or not best[b]:
            w("- **%s budget**: not run yet." % b.capitalize())
            continue
        hs = H(b, st, "sra-" + best[b])
        ms = mean_sd(hs)[0]
        txt = ("**%s budget (%d steps).** `ce` reaches %.3f bits/byte on held-out; the chosen sra setting `%s` "
               "reaches %s: it %s" % (b.capitalize(), st, m_ce, best[b],
                                         "%.3f" % ms if ms is not None else "—",
                                         say_delta(P[("sra − ce", b)], "beats", "trails", "`ce`")))
        if ms is not None and m_ce:
            txt += " (%+.1f%%)" % (100.0 * (ms - m_ce) / m_ce)
        txt += "; it %s and %s." % (say_delta(P[("sra − uld", b)], "beats", "trails", "`uld`"),
                                    say_delta(P[("sra − mined", b)], "beats", "trails", "`mined`"))
        pc = P[("sra − control (the distillation margin)", b)]
        pa = P[("control − ce (effect of the auxiliary losses alone)", b)]
        if pc is not None:
            txt += (" The same setting with the trained teacher's cache %s" %
                    say_delta(pc, "beats", "trails", "the random-teacher control"))
            if pc[2] < 2:
                txt += ": one seed cannot tell distillation from noise"
            elif pc[3] == "clear" and pc[0] < 0:
                txt += ": that margin, not the margin over ce, is what distillation bought here"
            elif pc[3] == "clear":
                txt += ": the trained teacher does worse than a random one here, so this is no distillation"
            else:
                txt += ": within noise, so at this budget no gain can be credited to the teacher's knowledge"
            txt += "; the control itself %s." % say_delta(pa, "beats", "trails", "`ce`")
            if pa is not None and P[("sra − ce", b)] is not None and P[("sra − ce", b)][0] < 0 and pa[0] < 0:
                share = pa[0] / P[("sra − ce", b)][0]
                if 0 < share:
                    txt += (" About %.0f%% of sra's gain over ce is there with a random teacher too (an auxiliary "
                            "loss on hidden states, not knowledge)." % (100 * min(share, 9.99)))
        ab = []
        for lab, key in (("removing the span term", "no span − sra"), ("removing the geometry term", "no geometry − sra"),
                         ("removing the logit term", "no logit − sra"),
                         ("uniform instead of attention mass", "uniform mass − sra")):
            p = P[(key, b)]
            if p is None:
                continue
            if p[3] == "clear":
                ab.append("%s %s %.3f" % (lab, "costs" if p[0] > 0 else "*helps* by", abs(p[0])))
            else:
                ab.append("%s: %+.3f (%s)" % (lab, p[0], p[3]))
        if ab:
            txt += " Ablations: " + "; ".join(ab) + "."
        # ranking
        rk = []
        for label, tmpl in rows:
            n = nm(tmpl, b)
            m = mean_sd(H(b, st, n))[0]
            if m is not None:
                rk.append((m, label.replace("**", "")))
        rk.sort()
        if rk:
            txt += " Ranking by mean: " + " < ".join("%s %.3f" % (l, m) for m, l in rk) + "."
        w("- " + txt)
    if bs:
        parts = []
        for stu in ("BPE %s" % E.get("EXP_BPE_VOCAB", "2048"), "bytes 257"):
            hw, hst, hc = T2[(stu, "word (shared)")], None, T2[(stu, "none (ce)")]
            for k, v in T2.items():
                if k[0] == stu and k[1].startswith("student"):
                    hst = v
            pw = paired(hw, hst) if hst else None
            mw, ms_, mc = mean_sd(hw)[0], mean_sd(hst or [])[0], mean_sd(hc)[0]
            if mw is None:
                continue
            s = ("the %s student reaches %.3f with the shared word cache and %s with its own cache "
                 "(shared − own: %s); against its ce (%s): shared %s, own %s" %
                 (stu, mw, "%.3f" % ms_ if ms_ is not None else "—", fmt_delta(pw),
                  "%.3f" % mc if mc is not None else "—", fmt_delta(paired(hw, hc)),
                  fmt_delta(paired(hst, hc)) if hst else "—"))
            if pw is not None and pw[2] >= 2:
                s += (" — %s" % ("no measurable cost for sharing" if pw[3] != "clear" else
                                 ("sharing costs %.3f" % pw[0] if pw[0] > 0 else "the shared cache is better by %.3f"
                                  % -pw[0])))
            parts.append(s)
        if parts:
            w("- **One cache, two students (short budget).** " + ". ".join(p[0].upper() + p[1:] for p in parts)
              + ".")
    w("")
    if quick:
        w("(--quick: a few stories and steps; the sentences above only show that the report is wired up.)")
        w("")

    # ------------------------------------------------------------ plots
    order = ["%s-%s" % (b, n) for b in ("short", "long") for n in ("ce", "uld", "mined", "sra", "ctl-random")]
    svgs = [p for p in (os.path.join(resdir, svgrel, o + ".svg") for o in order) if os.path.exists(p)]
    if svgs:
        w("## Loss curves (seed 1)")
        w("")
        w("`tools/sra-plot` of each run: training loss per step and, on the run's evaluation file, "
          "loss and bits/byte (labelled *held-out* by the tool: during training that file is the **validation** "
          "split; the tables use the separate held-out split).")
        w("")
        for p in svgs:
            rel = os.path.relpath(p, resdir)
            w("![%s](%s)" % (os.path.basename(p)[:-4], rel))
            w("")

    # ------------------------------------------------------------ where
    tot_s, n_runs, n_steps = 0.0, 0, 0
    for r in glob.glob(os.path.join(out, "runs", "*", "*", "s*")):
        i = steps_info(r)
        if i:
            tot_s += i["seconds"]
            n_runs += 1
            n_steps += i["steps"]
    w("## Runs")
    w("")
    w("Outputs under `%s`: `data/` (stories), `tok/` (student tokenizers), `cache/`, `runs/BUDGET-STEPS/NAME/sSEED/` "
      "(`metrics.jsonl`, `train_config.json`, `final/`, `heldout/` with `from.txt` naming the checkpoint "
      "evaluated). %d training runs, %d steps, %.1f minutes of training wall time summed over runs "
      "(%s at a time)." % (E["EXP_OUT_REL"], n_runs, n_steps, tot_s / 60, E["EXP_JOBS"]))
    w("")
    tmp = results + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(L))
    os.replace(tmp, results)


def main():
    if len(sys.argv) < 2:
        die("usage: prepare OUT NPROMPTS | select ROOT MODE SEEDS SETTING... | bestckpt RUN | report")
    c, a = sys.argv[1], sys.argv[2:]
    if c == "prepare" and len(a) == 2:
        cmd_prepare(*a)
    elif c == "select" and len(a) >= 4:
        cmd_select(*a)
    elif c == "bestckpt" and len(a) == 1:
        cmd_bestckpt(*a)
    elif c == "report" and not a:
        cmd_report()
    else:
        die("bad arguments: %s" % " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
