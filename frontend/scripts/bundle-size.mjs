#!/usr/bin/env node
/**
 * Gzipped JS a first visit loads: the entry plus the chunks of the landing route, for the
 * sign-in page and each page one may land on. `--max-first-page-kib N` fails (exit 1) when
 * any of them is over N KiB.
 */
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
const kib = (keys) => Math.round([...new Set([...keys].map((k) => manifest[k].file).filter((f) => f.endsWith('.js')))].reduce((n, f) => n + gz(f), 0) / 1024);
const entry = Object.keys(manifest).find((k) => manifest[k].isEntry);
const report = { 'sign-in': kib(closure(entry)) };
for (const route of ['dashboard', 'artifacts', 'artifact-detail', 'upload', 'audit', 'users', 'policy', 'tokens']) {
  report[route] = kib(new Set([...closure(entry), ...closure(`src/app/routes/${route}.tsx`)]));
}
const all = Object.values(manifest).map((c) => c.file).filter((f) => f.endsWith('.js'));
const worst = Math.max(...Object.values(report));
console.log(
  `first-page JS, gzipped (KiB): ${Object.entries(report).map(([r, k]) => `${r} ${k}`).join(', ')}; largest ${worst}; all JS ${Math.round(all.reduce((n, f) => n + gz(f), 0) / 1024)}`,
);
const i = process.argv.indexOf('--max-first-page-kib');
if (i > 0) {
  const max = Number(process.argv[i + 1]);
  if (!(worst <= max)) {
    console.error(`bundle-size: a first page loads ${worst} KiB of gzipped JS, over the ${max} KiB budget`);
    process.exit(1);
  }
  console.log(`bundle-size: every first page within ${max} KiB gzipped`);
}
