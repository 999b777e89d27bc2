/** bulletproof-react's rule: no imports across features; features are composed in src/app. */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';

const SRC = resolve(__dirname, '..');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : /\.(ts|tsx)$/.test(name) ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1] ?? m[2]!);
}

function featureOf(path: string): string | null {
  const rel = relative(join(SRC, 'features'), path);
  return rel.startsWith('..') ? null : rel.split(/[\\/]/)[0]!;
}

describe('architecture', () => {
  it('no feature imports another feature', () => {
    const violations: string[] = [];
    for (const file of files(join(SRC, 'features'))) {
      const own = featureOf(file);
      for (const spec of imports(file)) {
        const target = spec.startsWith('@/') ? join(SRC, spec.slice(2)) : spec.startsWith('.') ? resolve(dirname(file), spec) : null;
        if (!target) continue;
        const other = featureOf(target);
        if (other && other !== own) violations.push(`${relative(SRC, file)} imports ${spec}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('shared code (components, lib, api) imports no feature', () => {
    const violations: string[] = [];
    for (const dir of ['components', 'lib', 'api']) {
      for (const file of files(join(SRC, dir))) {
        for (const spec of imports(file)) if (spec.startsWith('@/features/') || spec.includes('/features/')) violations.push(`${relative(SRC, file)} imports ${spec}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('the access token never touches web storage', () => {
    const offenders = files(SRC)
      .filter((f) => !f.endsWith('.test.ts') && !f.endsWith('.test.tsx'))
      .filter((f) => /(localStorage|sessionStorage)\.setItem\([^)]*(token|access)/i.test(readFileSync(f, 'utf8')));
    expect(offenders).toEqual([]);
  });
});
