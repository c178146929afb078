#!/usr/bin/env node
// gen_bpe_ref.js - reference encodings of the BPE model alone, from the real
// Hugging Face tokenizers (0.22, N-API binding @anush008/tokenizers@0.6.0),
// for tests/test_bpe.c.
//
// usage: NODE_PATH=/path/to/node_modules node tests/gen_bpe_ref.js SHARED OUT.jsonl
//   SHARED: the shared assets folder (tokenizers/, models/, reference/, corpus/)
//
// For each tokenizer, a copy of its tokenizer.json with normalizer,
// pre_tokenizer, post_processor and decoder set to null and no added tokens
// runs the BPE model on the whole input as one word. The words are what the
// model sees inside the real pipelines: byte-level-mapped pieces ("Ġhello")
// for gpt2/llama3/qwen3/deepseek_v3, "▁"-joined pieces for the
// SentencePiece-style llama2/mistral/gemma3/tinystories, plus characters
// outside the vocabulary, long repetitive words, and a few raw words.
// Toy models ("toy:NAME", the model inline) cover the rules real files never
// reach: unk without fusing, missing byte tokens, continuing_subword_prefix,
// end_of_word_suffix, duplicate merges, "#version" lines, dropped characters.
//
// Output, one JSON object per line, grouped by tokenizer:
//   {"tokenizer", "path"} (real) or {"tokenizer", "model"} (toy) opens a group;
//   {"word", "hex", "ids", "offsets"}: hex is the word's UTF-8 bytes (the
//     word may hold U+0000), offsets are [start, end) BYTE offsets in the word
//     (the binding reports code points; converted here);
//   {"word", "hex", "error"}: HF refused to encode the word.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@anush008/tokenizers');

const [shared, outPath] = process.argv.slice(2);
if (!shared || !outPath) {
  console.error('usage: node gen_bpe_ref.js SHARED OUT.jsonl');
  process.exit(2);
}

// ------------------------------------------------------------ helpers
function utf8Len(cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }
function cpToByte(s) {
  const t = [0];
  let b = 0;
  for (const ch of s) { b += utf8Len(ch.codePointAt(0)); t.push(b); }
  return t;
}
// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others
// to U+0100.. in byte order.
const B2U = (() => {
  const m = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    m[b] = String.fromCodePoint(keep ? b : 256 + n++);
  }
  return m;
})();
function byteLevel(s) { return Array.from(Buffer.from(s, 'utf8'), (b) => B2U[b]).join(''); }
// Deterministic pseudo-random choice (an LCG), so the file is reproducible.
function sampler(seed) {
  let x = seed >>> 0;
  return () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x / 4294967296; };
}

// ------------------------------------------------------------ word sources
const texts = fs.readFileSync(path.join(shared, 'reference/texts.jsonl'), 'utf8')
  .split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
const textWords = [...new Set(texts.flatMap((t) => t.split(' ')).filter((w) => w))];

const freq = new Map();
for (const f of ['tinyshakespeare.txt', 'moby-dick.txt', 'sotu.txt']) {
  const p = path.join(shared, 'corpus', f);
  if (!fs.existsSync(p)) continue;
  for (const w of fs.readFileSync(p, 'utf8').split(/\s+/)) if (w) freq.set(w, (freq.get(w) || 0) + 1);
}
const byFreq = [...freq.keys()].sort((a, b) => freq.get(b) - freq.get(a) || (a < b ? -1 : a > b ? 1 : 0));
const rnd = sampler(20240517);
const rest = byFreq.slice(1500);
const corpusWords = byFreq.slice(0, 1500);
for (let i = 0; i < 1500 && rest.length; i++) corpusWords.push(rest.splice(Math.floor(rnd() * rest.length), 1)[0]);

// Characters most vocabularies lack (byte fallback, unk, dropped chars).
const rare = ['😀', '👨‍👩‍👧', '🇫🇷', '𝔘𝔫𝔦', '𠀋', '\uE000', '\uFFFD', '\u0001\u0002', '\u0000',
  'e\u0301', '\u200B', 'ǅ', '☃', '∮', 'ꙮ', '\u2028', 'Ω≈ç√∫', '\t', '\r\n', '\u00A0', 'ﷺ', '𓀀'];
const longWords = ['a'.repeat(2000), 'ab'.repeat(1000), ' '.repeat(2000), '\n'.repeat(300),
  '1'.repeat(999), '='.repeat(1000), 'abc'.repeat(400) + 'd', 'é'.repeat(700), '😀'.repeat(300),
  'the'.repeat(500)];

function unique(list) { return [...new Set(list)]; }

function byteLevelWords() {
  const w = [];
  for (const x of textWords) w.push(byteLevel(' ' + x), byteLevel(x));
  for (const x of corpusWords) w.push(byteLevel(' ' + x));
  for (const x of corpusWords.slice(0, 500)) w.push(byteLevel(x));
  for (const t of texts) w.push(byteLevel(t));
  for (const x of rare) w.push(byteLevel(x), byteLevel(' ' + x), byteLevel('a' + x + 'b'));
  for (const x of longWords) w.push(byteLevel(x), byteLevel(' ' + x));
  // Raw text is outside the byte-level alphabet: with no unk_token and no
  // byte fallback HF drops such characters.
  w.push('héllo', 'a☃b', '☃☃ab', '日本語', 'x😀y', 'Ġthe☃Ġend', '☃', 'naïve☃café');
  return unique(w);
}

function spWords(dummyPrefix) {
  const sp = (s) => s.replace(/ /g, '\u2581');
  const w = [];
  for (const x of textWords) w.push('\u2581' + sp(x), sp(x));
  for (const x of corpusWords) w.push('\u2581' + sp(x));
  for (const x of corpusWords.slice(0, 500)) w.push(sp(x));
  for (const t of texts) w.push(dummyPrefix ? '\u2581' + sp(t) : sp(t));
  for (const x of rare) w.push(sp(x), '\u2581' + sp(x), 'a' + sp(x) + 'b', sp(x) + sp(x) + 'x' + sp(x));
  for (const x of longWords) w.push(sp(x), '\u2581' + sp(x));
  w.push('\u2581', '\u2581'.repeat(500), 'x', 'Z', '\u2581\u2581a');
  return unique(w);
}

// ------------------------------------------------------------ toy models
function toyModel(m) {
  return Object.assign({ type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false }, m);
}
const abc = { a: 0, b: 1, c: 2, ab: 3, bc: 4, abc: 5, aa: 6, aaa: 7, aaaa: 8 };
const toys = [
  { name: 'ties', model: toyModel({ vocab: abc, merges: ['a a', 'aa a', 'a b', 'b c', 'ab c', 'aa aa'] }),
    words: ['a', 'aa', 'aaa', 'aaaa', 'aaaaa', 'aaaaaaa', 'abc', 'aabc', 'abcabc', 'bcab', 'ca'] },
  { name: 'rank-order', model: toyModel({ vocab: abc, merges: ['b c', 'a b', 'a bc'] }),
    words: ['abc', 'ab', 'abcab'] },
  { name: 'dup-merges', model: toyModel({ vocab: abc, merges: ['#version: 0.2', 'b c', 'a b', 'b c'] }),
    words: ['abc', 'bc'] },
  { name: 'pairs', model: toyModel({ vocab: abc, merges: [['a', 'b'], ['ab', 'c']] }), words: ['abc', 'cab'] },
  { name: 'unk', model: toyModel({ vocab: Object.assign({ '<unk>': 9 }, abc), merges: ['a b'], unk_token: '<unk>' }),
    words: ['a☃b', 'a☃☃b', '☃', 'ab☃☃', 'x', 'xyab', 'é☃ab'] },
  { name: 'fuse-unk', model: toyModel({ vocab: Object.assign({ '<unk>': 9 }, abc), merges: ['a b'],
    unk_token: '<unk>', fuse_unk: true }), words: ['a☃b', 'a☃☃b', 'xy', 'ab☃☃', 'x☃yab', 'xaxy'] },
  { name: 'unk-missing', model: toyModel({ vocab: abc, merges: [], unk_token: '<unk>' }), words: ['ab', 'a☃'] },
  { name: 'byte-fallback', model: toyModel({ vocab: { '<unk>': 0, a: 1, '<0xE2>': 2, '<0x98>': 3, '<0x83>': 4,
    '<0xC3>': 5, b: 6, ab: 7, '<0xE2><0x98>': 8 }, merges: ['a b', '<0xE2> <0x98>'], unk_token: '<unk>',
    byte_fallback: true, fuse_unk: true }), words: ['a☃a', 'aéé☃ab', 'é', '☃', '☃☃', 'xé', 'ab☃ab'] },
  { name: 'byte-fallback-nounk', model: toyModel({ vocab: { a: 0, '<0xE2>': 1, '<0x98>': 2, '<0x83>': 3 },
    merges: [], byte_fallback: true }), words: ['aé☃a', 'é', '☃a'] },
  { name: 'drop', model: toyModel({ vocab: abc, merges: ['a b', 'ab c'] }),
    words: ['a☃bc', '☃☃ab', 'abc☃', '☃', 'a☃b☃c'] },
  { name: 'prefix', model: toyModel({ vocab: { a: 0, '##b': 1, '##c': 2, ab: 3, abc: 4, b: 5, c: 6, '##a': 7 },
    merges: ['a ##b', 'ab ##c'], continuing_subword_prefix: '##' }), words: ['abc', 'ab', 'ba', 'cab', 'b'] },
  { name: 'suffix', model: toyModel({ vocab: { a: 0, b: 1, 'b</w>': 2, ab: 3, 'ab</w>': 4, 'a</w>': 5 },
    merges: ['a b</w>', 'a b'], end_of_word_suffix: '</w>' }), words: ['ab', 'a', 'abab', 'ba'] },
  { name: 'prefix-suffix', model: toyModel({ vocab: { a: 0, '##b': 1, '##c</w>': 2, ab: 3, 'abc</w>': 4, '##b</w>': 5,
    'ab</w>': 6 }, merges: ['a ##b', 'ab ##c</w>', 'a ##b</w>'], continuing_subword_prefix: '##',
    end_of_word_suffix: '</w>' }), words: ['abc', 'ab', 'abb', 'a'] },
  // The prefix is spelt in byte tokens too. Not "aé": HF's offsets run
  // past the word there (tok_bpe.h clamps them).
  { name: 'prefix-byte-fallback', model: toyModel({ vocab: { a: 0, '<0x23>': 1, '<0xC3>': 2, '<0xA9>': 3, b: 4 },
    merges: [], continuing_subword_prefix: '#', byte_fallback: true }), words: ['aéb', 'éa', 'aéa'] },
  { name: 'ignore-merges', model: toyModel({ vocab: abc, merges: ['a b'], ignore_merges: true }),
    words: ['abc', 'ab', 'aabc', 'bc', 'cc'] },
  { name: 'ignore-merges-suffix', model: toyModel({ vocab: { a: 0, b: 1, 'b</w>': 2, ab: 3, 'ab</w>': 4 },
    merges: ['a b</w>'], ignore_merges: true, end_of_word_suffix: '</w>' }), words: ['ab', 'b', 'aab'] },
  // models HF refuses to load
  { name: 'bad-merge-line', model: toyModel({ vocab: abc, merges: ['a b c'] }), words: ['ab'] },
  { name: 'merge-out-of-vocab', model: toyModel({ vocab: abc, merges: ['a x'] }), words: ['ab'] },
  { name: 'merged-out-of-vocab', model: toyModel({ vocab: abc, merges: ['c a'] }), words: ['ab'] },
  { name: 'mixed-merges', model: toyModel({ vocab: abc, merges: [['a', 'b'], 'ab c'] }), words: ['ab'] },
];

// ------------------------------------------------------------ encoding
const out = fs.openSync(outPath, 'w');
function emit(o) {
  fs.writeSync(out, JSON.stringify(o).replace(/[\u0085\u2028\u2029]/g,
    (ch) => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0')) + '\n');
}

function bare(json) {
  const j = typeof json === 'string' ? JSON.parse(json) : json;
  return JSON.stringify(Object.assign(j, { normalizer: null, pre_tokenizer: null, post_processor: null,
    decoder: null, added_tokens: [] }));
}

async function run(tok, words) {
  let errors = 0;
  for (const word of words) {
    const hex = Buffer.from(word, 'utf8').toString('hex');
    try {
      const enc = await tok.encode(word, null, { addSpecialTokens: false });
      const tab = cpToByte(word);
      emit({ word, hex, ids: enc.getIds(), offsets: enc.getOffsets().map(([s, e]) => [tab[s], tab[e]]) });
    } catch (err) {
      emit({ word, hex, error: String(err) });
      errors++;
    }
  }
  return errors;
}

async function main() {
  const real = [
    ['gpt2', 'tokenizers/gpt2/tokenizer.json', true], ['llama3', 'tokenizers/llama3/tokenizer.json', true],
    ['qwen3', 'tokenizers/qwen3/tokenizer.json', true], ['deepseek_v3', 'tokenizers/deepseek_v3/tokenizer.json', true],
    ['llama2', 'tokenizers/llama2/tokenizer.json', false], ['mistral', 'tokenizers/mistral/tokenizer.json', false],
    ['gemma3', 'tokenizers/gemma3/tokenizer.json', false],
    ['tinystories', 'models/tinystories-656k/tokenizer.json', false],
  ];
  for (const [name, rel, bl] of real) {
    const j = fs.readFileSync(path.join(shared, rel), 'utf8');
    const tok = Tokenizer.fromString(bare(j));
    const words = bl ? byteLevelWords() : spWords(name !== 'gemma3');
    emit({ tokenizer: name, path: rel });
    const e = await run(tok, words);
    console.error(`${name}: ${words.length} words${e ? `, ${e} refused` : ''}`);
  }
  for (const t of toys) {
    emit({ tokenizer: 'toy:' + t.name, model: t.model });
    let tok;
    try {
      tok = Tokenizer.fromString(bare({ version: '1.0', truncation: null, padding: null, model: t.model }));
    } catch (err) {
      emit({ load_error: String(err) });
      continue;
    }
    await run(tok, t.words);
  }
  fs.closeSync(out);
}

main().catch((e) => { console.error(e); process.exit(1); });
