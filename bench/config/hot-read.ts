/**
 * Part 4 of bench/config, run as its own process (no graft master): the cost
 * of reading a nested key on the hot path.
 *
 *   GRAFT_CONFIG=<file.json> NODE_CONFIG_DIR=<dir with default.json> node --import tsx bench/config/hot-read.ts
 *
 * Each variant has its own loop function, so each property access site sees
 * one object shape; every loop adds what it reads into an accumulator that is
 * returned and checked, so no read can be dropped as dead code. Rounds
 * interleave the variants; the parent takes medians. Prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import nodeConfig from 'config';
import { config } from '../lib/graft.js';
import type { AppConfig } from './fixture.js';

const reads = Number(process.env.BENCH_READS ?? 1e7);
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const file = process.env.GRAFT_CONFIG;
if (!file) throw new Error('GRAFT_CONFIG must name the JSON config file');

function emptyLoop(n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += i & 1;
  return acc;
}

function plainLoop(o: AppConfig, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += o.db.pool;
  return acc;
}

function graftLoop(store: typeof config, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += (store.current as AppConfig).db.pool;
  return acc;
}

/** The snapshot held in a local: what a handler does after `const c = config.current`. */
function frozenLoop(o: AppConfig, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += o.db.pool;
  return acc;
}

function nodeConfigLoop(c: typeof nodeConfig, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += c.get<number>('db.pool');
  return acc;
}

const plain = JSON.parse(readFileSync(file, 'utf8')) as AppConfig;
const pool = plain.db.pool;
const snapshot = config.current as AppConfig; // first read: the standalone loader reads GRAFT_CONFIG
if (snapshot.db.pool !== pool || nodeConfig.get<number>('db.pool') !== pool) throw new Error('the three sources disagree on db.pool');
if (!Object.isFrozen(snapshot.db) || Object.isFrozen(plain.db)) throw new Error('expected a frozen snapshot and an unfrozen plain object');

const variants: Record<string, (n: number) => number> = {
  empty: (n) => emptyLoop(n),
  plain: (n) => plainLoop(plain, n),
  graft: (n) => graftLoop(config, n),
  graftLocal: (n) => frozenLoop(snapshot, n),
  nodeConfig: (n) => nodeConfigLoop(nodeConfig, n),
};
const names = Object.keys(variants);
const nsPerRead: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
let sink = 0;

// Warm-up: let every loop reach the optimizing compiler before timing.
for (const name of names) for (let i = 0; i < 3; i++) sink += variants[name]!(Math.min(reads, 1e6));

for (let r = 0; r < rounds; r++) {
  // Rotate the order each round so no variant always runs first or last.
  const order = names.map((_, i) => names[(i + r) % names.length]!);
  for (const name of order) {
    const t0 = performance.now();
    const acc = variants[name]!(reads);
    const ms = performance.now() - t0;
    const expected = name === 'empty' ? Math.floor(reads / 2) : pool * reads;
    if (acc !== expected) throw new Error(`${name}: accumulated ${acc}, expected ${expected}`);
    sink += acc;
    nsPerRead[name]!.push((ms * 1e6) / reads);
  }
}

process.stdout.write(JSON.stringify({ reads, rounds, nsPerRead, sink }) + '\n');
