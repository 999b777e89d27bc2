#!/usr/bin/env node
/** Gzipped JS a first visit loads: the entry plus the chunks of the landing route. */
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const dist = new URL('../dist/', import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(dist, '.vite/manifest.json'), 'utf8'));
function closure(key, seen = new Set()) {
  if (seen.has(key)) return seen;
  seen.add(key);
  for (const dep of manifest[key]?.imports ?? []) closure(dep, seen);
  return seen;
}
const gz = (file) => gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;
const entry = Object.keys(manifest).find((k) => manifest[k].isEntry);
const report = {};
for (const route of ['dashboard', 'artifacts', 'artifact-detail', 'upload']) {
  const key = `src/app/routes/${route}.tsx`;
  const files = new Set([...closure(entry), ...closure(key)].map((k) => manifest[k].file).filter((f) => f.endsWith('.js')));
  report[route] = Math.round([...files].reduce((n, f) => n + gz(f), 0) / 1024);
}
const all = Object.values(manifest).map((c) => c.file).filter((f) => f.endsWith('.js'));
console.log(`first-page JS, gzipped (KiB): ${Object.entries(report).map(([r, k]) => `${r} ${k}`).join(', ')}; sign-in page ${Math.round([...closure(entry)].map((k) => manifest[k].file).filter((f) => f.endsWith('.js')).reduce((n, f) => n + gz(f), 0) / 1024)}; all JS ${Math.round(all.reduce((n, f) => n + gz(f), 0) / 1024)}`);
