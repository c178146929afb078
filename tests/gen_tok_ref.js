#!/usr/bin/env node
// gen_tok_ref.js - reference encodings of whole tokenizer pipelines that the
// shipped tokenizer.json files never exercise, from the real Hugging Face
// tokenizers (0.22, N-API binding @anush008/tokenizers@0.6.0), for
// tests/test_tokenizer.c.
//
// usage: NODE_PATH=/path/to/node_modules node tests/gen_tok_ref.js SHARED OUTDIR
//
// Each variant is a shipped tokenizer.json (gpt2 or llama2) with one part
// replaced: NFD/NFKC/NFKD/Lowercase/Strip/Replace normalizers, Whitespace,
// WhitespaceSplit, Digits, Split with every behavior and invert, Metaspace
// with each prepend_scheme, ByteLevel add_prefix_space and trim_offsets,
// added tokens with single_word/lstrip/rstrip/normalized. The texts are
// random (a fixed seed) over an alphabet chosen to hit the corners: combining
// marks, Hangul jamo, compatibility characters, case mappings that change
// length, Unicode spaces, digits, emoji, and the added tokens' contents.
//
// The shipped tokenizers themselves also get random corpus slices and the
// random texts (groups real_<name>).
//
// Writes OUTDIR/<variant>.json (the tokenizer) and OUTDIR/<name>.jsonl
// (lines as in shared/reference/tokenize: name, text, ids, offsets in
// BYTES, ids_special, decoded), and OUTDIR/index.txt: one line per group,
// "name" (tokenizer OUTDIR/name.json) or "name<TAB>tokenizer path".
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@anush008/tokenizers');

const [shared, outDir] = process.argv.slice(2);
if (!shared || !outDir) {
  console.error('usage: node gen_tok_ref.js SHARED OUTDIR');
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

function cpToByte(text) {
  const t = [0];
  let b = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    b += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    t.push(b);
  }
  return t;
}

// xorshift32: a fixed sequence on every machine
let seed = 0x5eed1234;
function rnd(n) {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed % n;
}

const ALPHABET = [
  'a', 'b', 'e', 'o', 'A', 'Z', 'the', 'The', 'ing', 'I', 'x', 'q', '7', '42', '2024', '.', ',', "'s", "'", '!',
  '?', '-', '(', ')', '"', ' ', ' ', ' ', '  ', '   ', '\n', '\n\n', '\t', '\r\n',
  'é', 'ü', 'ñ', 'ß', 'ø', 'Å', 'Ω', 'ǅ', 'İ', 'Σ', 'ς', 'ẞ', 'ﬁ', 'ﬃ', '²', '½', '①', 'Ａ', 'ｂ', '㎏', '™',
  '\u0301', '\u0300', '\u0308', '\u0316', '\u0323', '\u0344', '\u0f73', '\u0345', 'e\u0301', 'A\u030a', '\u212b',
  '\u2126', '\u1112\u1161\u11ab', '\u1100\u1161', '\u11a8', '한', '국어', '中文', '日本語', 'ひらがな', 'Привет',
  'γειά', 'مرحبا', 'שלום', 'नमस्ते', 'क़', '\u00a0', '\u3000', '\u2009', '\u200b', '\u200d', '\u2028', '\u0085',
  '😀', '👍🏽', '👩\u200d💻', '🇫🇷', '٣', '߀', '<|endoftext|>', '<s>', '</s>', '[MASK]', 'ab', 'cd', 'ef', 'Gh',
  'gh', 'ab ', ' ab', '▁', '\u0000', '\u007f',
];

function randomText() {
  const n = rnd(14);
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[rnd(ALPHABET.length)];
  return s;
}

const FIXED = ['', ' ', 'ab', ' ab ', 'xab ab abx', '  leading', 'trailing  ', 'a  b   c', 'Hello world',
  'İstanbul ΣΊΣΥΦΟΣ', 'e\u0301e\u0301', 'ﬁne ﬃ ①②', '12345 67', 'x[MASK]y [MASK] z', 'Gh GH gh',
  'cd\tcd', 'ef  ef', '\u3000ab\u3000', '<s>ab</s>', '\n\nab\n'];

function load(name) {
  return JSON.parse(fs.readFileSync(path.join(shared, 'tokenizers', name, 'tokenizer.json'), 'utf8'));
}

const gpt2 = () => load('gpt2');
const llama2 = () => load('llama2');
const BL = (o = {}) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true, ...o });
const seq = (...p) => ({ type: 'Sequence', pretokenizers: p });
const nseq = (...n) => ({ type: 'Sequence', normalizers: n });
function added(t, list) { // list of [content, {flags}]: new ids after the vocab
  let next = Math.max(...Object.values(t.model.vocab), ...t.added_tokens.map((a) => a.id)) + 1;
  for (const [content, f] of list)
    t.added_tokens.push({ id: next++, content, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: false, ...f });
  return t;
}

const variants = {
  nfd: () => ({ ...gpt2(), normalizer: { type: 'NFD' } }),
  nfkc: () => ({ ...gpt2(), normalizer: { type: 'NFKC' } }),
  nfkd: () => ({ ...gpt2(), normalizer: { type: 'NFKD' } }),
  nfkc_lower: () => ({ ...gpt2(), normalizer: nseq({ type: 'NFKC' }, { type: 'Lowercase' }) }),
  strip_replace: () => ({ ...gpt2(), normalizer: nseq({ type: 'Strip', strip_left: true, strip_right: true },
    { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }) }),
  replace_str: () => ({ ...gpt2(), normalizer: { type: 'Replace', pattern: { String: 'ab' }, content: 'XYZ' } }),
  whitespace: () => ({ ...gpt2(), pre_tokenizer: seq({ type: 'Whitespace' }, BL({ use_regex: false })) }),
  wssplit_digits: () => ({ ...gpt2(), pre_tokenizer: seq({ type: 'WhitespaceSplit' },
    { type: 'Digits', individual_digits: true }, BL({ use_regex: false })) }),
  digits_grouped: () => ({ ...gpt2(), pre_tokenizer: seq({ type: 'Digits', individual_digits: false }, BL()) }),
  prefix_trim: () => ({ ...gpt2(), pre_tokenizer: BL({ add_prefix_space: true }),
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true } }),
  trim_only: () => ({ ...gpt2(),
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true } }),
  added_flags: () => added({ ...gpt2(), normalizer: { type: 'Lowercase' } }, [
    ['ab', { single_word: true }], ['cd', { lstrip: true }], ['ef', { rstrip: true }],
    ['Gh', { normalized: true }], ['[MASK]', { special: true, lstrip: true, rstrip: true }],
    ['ab cd', {}]]),
};
for (const beh of ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'])
  for (const inv of [false, true]) {
    variants[`split_str_${beh}_${inv ? 'inv' : 'fwd'}`] = () => ({ ...gpt2(),
      pre_tokenizer: seq({ type: 'Split', pattern: { String: ' ' }, behavior: beh, invert: inv }, BL({ use_regex: false })) });
    variants[`split_re_${beh}_${inv ? 'inv' : 'fwd'}`] = () => ({ ...gpt2(),
      pre_tokenizer: seq({ type: 'Split', pattern: { Regex: '\\p{N}+|\\s' }, behavior: beh, invert: inv }, BL({ use_regex: false })) });
  }
for (const scheme of ['always', 'first', 'never'])
  for (const split of [true, false])
    variants[`metaspace_${scheme}_${split ? 'split' : 'nosplit'}`] = () => ({ ...llama2(), normalizer: null,
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: scheme, split },
      decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: scheme, split } });
variants.llama2_nfkc = () => {
  const t = llama2();
  t.normalizer = nseq({ type: 'NFKC' }, ...t.normalizer.normalizers);
  return t;
};

// Real text: 150 random slices (10 B - 4 KB, cut on character boundaries)
// of the shared corpus, for the shipped tokenizers as they are.
function corpusDocs() {
  const dir = path.join(shared, 'corpus');
  const buf = Buffer.concat(['tinyshakespeare.txt', 'moby-dick.txt', 'sotu.txt']
    .map((f) => fs.readFileSync(path.join(dir, f))));
  const docs = [];
  for (let k = 0; k < 150; k++) {
    let st = (rnd(1 << 30) * 4 + rnd(4)) % (buf.length - 5000);
    while ((buf[st] & 0xc0) === 0x80) st++;
    let en = st + 10 + rnd(4000);
    while ((buf[en] & 0xc0) === 0x80) en++;
    docs.push(buf.subarray(st, en).toString('utf8'));
  }
  return docs;
}

const SHIPPED = { gpt2: 'tokenizers/gpt2', llama2: 'tokenizers/llama2', llama3: 'tokenizers/llama3',
  mistral: 'tokenizers/mistral', qwen3: 'tokenizers/qwen3', gemma3: 'tokenizers/gemma3',
  deepseek_v3: 'tokenizers/deepseek_v3', tinystories: 'models/tinystories-656k' };

async function main() {
  const names = Object.keys(variants);
  const texts = [...FIXED];
  for (let i = 0; i < 250; i++) texts.push(randomText());
  const index = [];
  const docs = corpusDocs();
  // the shipped tokenizers on corpus slices and the random texts
  for (const [name, dir] of Object.entries(SHIPPED)) {
    const jpath = path.resolve(shared, dir, 'tokenizer.json');
    await writeRef(`real_${name}`, jpath, [...docs, ...texts]);
    index.push(`real_${name}\t${jpath}`);
  }
  for (const name of names) {
    const jpath = path.join(outDir, `${name}.json`);
    fs.writeFileSync(jpath, JSON.stringify(variants[name]()));
    await writeRef(name, jpath, texts);
    index.push(name);
  }
  fs.writeFileSync(path.join(outDir, 'index.txt'), index.join('\n') + '\n');
  console.log(`gen_tok_ref: ${index.length} tokenizers (${names.length} variants) in ${outDir}`);
}

async function writeRef(name, jpath, texts) {
  const tok = Tokenizer.fromFile(jpath);
  const out = [];
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i];
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const encSp = await tok.encode(text, null, { addSpecialTokens: true });
    const tab = cpToByte(text);
    const rec = { name: `${name}-${i}`, text, ids: enc.getIds(), tokens: enc.getTokens(),
      offsets: enc.getOffsets().map(([s, e]) => [tab[s], tab[e]]), ids_special: encSp.getIds(),
      decoded: await tok.decode(enc.getIds(), false) };
    out.push(JSON.stringify(rec).replace(/[\u0085\u2028\u2029]/g,
      (ch) => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0')));
  }
  fs.writeFileSync(path.join(outDir, `${name}.jsonl`), out.join('\n') + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
