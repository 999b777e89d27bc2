#!/usr/bin/env node
/**
 * End-to-end flows in Debian's Chromium (playwright-core, no downloaded browser) against a
 * real `arca serve` on a fresh data dir with the Trivy fixture DB.
 *
 * Env: ARCA_BIN (default /tmp/arca-snapshot/arca), ARCA_TEST_TRIVY (default
 * ~/.cache/arca/tools/trivy-0.74.0), ARCA_TEST_TRIVY_DB (a dir with trivy.db +
 * metadata.json; default: built with ~/.cache/arca/tools/trivy-db-fixture),
 * CHROMIUM (default /usr/bin/chromium), E2E_BASE_URL (test an already running server,
 * e.g. nginx; then ARCA_E2E_API is Arca itself for the setup calls).
 * Output: test-results/ (screenshots light+dark at 1280×800, axe.json, summary.json).
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startStaticServer } from './serve-dist.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const FRONTEND = resolve(HERE, '..');
const REPO = resolve(FRONTEND, '..');
const OUT = join(FRONTEND, 'test-results');
const DIST = join(FRONTEND, 'dist');
const ARCA_BIN = process.env.ARCA_BIN ?? '/tmp/arca-snapshot/arca';
const TRIVY = process.env.ARCA_TEST_TRIVY ?? join(homedir(), '.cache/arca/tools/trivy-0.74.0');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ADMIN_PASSWORD = 'correct-horse-battery-staple';
const PASSWORD = 'e2e-password-0123456789';

rmSync(OUT, { recursive: true, force: true });
mkdirSync(join(OUT, 'screenshots'), { recursive: true });

const children = [];
const servers = [];
const cleanups = [];
function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  for (const s of servers) s.close();
  for (const f of cleanups) {
    try {
      f();
    } catch {
      // best effort
    }
  }
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- server -----------
async function startArca() {
  if (!existsSync(join(DIST, 'index.html'))) {
    console.log('building dist/ …');
    execFileSync('npm', ['run', 'build'], { cwd: FRONTEND, stdio: 'inherit' });
  }
  if (!existsSync(ARCA_BIN)) throw new Error(`ARCA_BIN ${ARCA_BIN} does not exist`);
  const data = mkdtempSync(join(tmpdir(), 'arca-fe-e2e-'));
  cleanups.push(() => rmSync(data, { recursive: true, force: true }));
  let db = process.env.ARCA_TEST_TRIVY_DB;
  if (!db) {
    const tool = join(homedir(), '.cache/arca/tools/trivy-db-fixture');
    if (!existsSync(tool)) throw new Error('set ARCA_TEST_TRIVY_DB (scripts/trivy-fixture.sh OUT builds one)');
    db = join(data, 'fixture-db');
    execFileSync(tool, ['-out', db, '-updated-at', '2026-01-01T00:00:00Z', join(REPO, 'tests/fixtures/trivy-db/base.yaml')], { stdio: 'inherit' });
  }
  mkdirSync(join(data, 'trivy/db'), { recursive: true });
  for (const f of ['trivy.db', 'metadata.json']) cpSync(join(db, f), join(data, 'trivy/db', f));
  const help = execFileSync(ARCA_BIN, ['serve', '--help'], { encoding: 'utf8' });
  const servesWeb = help.includes('--web-dir');
  const port = await freePort();
  const args = ['serve', '--data-dir', data, '--listen', `127.0.0.1:${port}`, '--plain-http', '--rate-limit', '100000', '--login-rate-limit', '1000', '--trivy', TRIVY];
  if (servesWeb) args.push('--web-dir', DIST);
  const child = spawn(ARCA_BIN, args, {
    env: { ...process.env, ARCA_ADMIN_PASSWORD: ADMIN_PASSWORD, ARCA_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const log = [];
  child.stdout.on('data', (d) => log.push(String(d)));
  child.stderr.on('data', (d) => log.push(String(d)));
  cleanups.push(() => writeFileSync(join(OUT, 'arca.log'), log.join('')));
  const api = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${api}/api/health`)).ok) break;
    } catch {
      // not yet
    }
    if (child.exitCode !== null || i > 100) throw new Error(`arca did not start:\n${log.join('')}`);
    await sleep(200);
  }
  let base = api;
  if (process.env.E2E_NGINX === '1') {
    // The cluster's shape: nginx (unprivileged) serving dist/, /api proxied to Arca.
    const nginxPort = await freePort();
    const nginx = spawn('bash', [join(FRONTEND, 'scripts/nginx-check.sh'), '--serve', DIST, String(nginxPort), api], { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(nginx);
    base = `http://127.0.0.1:${nginxPort}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/api/health`)).ok) break;
      } catch {
        // not yet
      }
      if (nginx.exitCode !== null || i > 100) throw new Error('nginx did not start');
      await sleep(200);
    }
    return { api, base, servesWeb: false, via: 'nginx' };
  }
  if (!servesWeb) {
    const s = await startStaticServer({ dist: DIST, port: 0, api });
    servers.push(s);
    base = `http://127.0.0.1:${s.address().port}`;
  }
  return { api, base, servesWeb, via: servesWeb ? 'arca --web-dir' : 'static server + /api proxy' };
}

// ---------------------------------------------------------------- API helpers ------
async function call(api, method, path, token, body) {
  const r = await fetch(`${api}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function apiLogin(api, username, password) {
  return (await call(api, 'POST', '/api/auth/login', null, { username, password })).access_token;
}

// ---------------------------------------------------------------- fixtures ---------
function makeArchives() {
  const dir = mkdtempSync(join(tmpdir(), 'arca-fe-files-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const tarGz = (name, files) => {
    const src = join(dir, `${name}-src`);
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(src, path)), { recursive: true });
      writeFileSync(join(src, path), content);
    }
    const out = join(dir, `${name}.tar.gz`);
    execFileSync('tar', ['-czf', out, '-C', src, '.']);
    return out;
  };
  return {
    clean: tarGz('clean-1.0.0', { 'README.md': '# clean\nNothing to see here.\n', 'bin/run.sh': '#!/bin/sh\necho hello\n' }),
    leaky: tarGz('leaky-1.0.0', {
      'app/config/credentials': '[default]\naws_access_key_id = AKIA2E0A8F3B244C9986\naws_secret_access_key = Lw0kz8D3qT9mY5vR1nX7pJ2cB6hF4gK0sA3eW8uZ\n',
    }),
    vulnerable: tarGz('vulnerable-2.0.0', {
      'Cargo.lock':
        'version = 3\n\n[[package]]\nname = "demo"\nversion = "0.1.0"\ndependencies = ["smallvec"]\n\n[[package]]\nname = "smallvec"\nversion = "1.6.0"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\n',
    }),
  };
}

// ---------------------------------------------------------------- browser ----------
const AXE = readFileSync(join(FRONTEND, 'node_modules/axe-core/axe.min.js'), 'utf8');
const axeReport = [];
const results = [];
let pending = {};

function allowedFailure(method, url, status, extra) {
  const path = new URL(url).pathname;
  // Restoring a session on a visit without one: the refresh answers 401 (the sign-in page follows).
  if (method === 'POST' && path === '/api/auth/refresh' && status === 401) return true;
  // Endpoints the backend is adding (not in this server's OpenAPI document yet).
  if (status === 404 && pending.stats && path === '/api/stats') return true;
  if (status === 404 && pending.scanner && path === '/api/scanner') return true;
  if (status === 404 && pending.events && /^\/api\/artifacts\/[^/]+\/events$/.test(path)) return true;
  return extra.some((f) => f(method, path, status));
}

async function openPage(browser, base, label, colorScheme = 'light') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme, acceptDownloads: true, baseURL: base });
  const page = await context.newPage();
  const problems = [];
  const extra = [];
  const failedUrls = new Set();
  page.on('response', (r) => {
    if (r.status() >= 400) {
      const ok = allowedFailure(r.request().method(), r.url(), r.status(), extra);
      if (ok) failedUrls.add(r.url());
      else problems.push(`HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
    }
  });
  page.on('requestfailed', (r) => {
    const why = r.failure()?.errorText ?? '';
    // Requests the page cancels itself (a query whose page was left, a navigation that
    // turned into a download) are aborted, not failed.
    if (why.includes('ERR_ABORTED')) return;
    problems.push(`request failed: ${r.method()} ${r.url()} ${why}`);
  });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = m.location()?.url ?? '';
    if (/Failed to load resource/.test(m.text()) && (failedUrls.has(url) || [...failedUrls].some((u) => url.startsWith(u)))) return;
    problems.push(`console error: ${m.text()} ${url}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return {
    page,
    context,
    label,
    problems,
    /** Lets a scenario provoke a failure on purpose. */
    allow: (f) => extra.push(f),
    close: () => context.close(),
  };
}

async function settle(page) {
  await page.waitForLoadState('networkidle').catch(() => undefined);
  await page.waitForFunction(() => !document.querySelector('[role="progressbar"]'), null, { timeout: 10_000 }).catch(() => undefined);
  await sleep(250);
}

/** Screenshot and axe in the light and the dark theme (following the system setting). */
async function capture(tab, name) {
  for (const scheme of ['light', 'dark']) {
    await tab.page.emulateMedia({ colorScheme: scheme });
    await settle(tab.page);
    await tab.page.screenshot({ path: join(OUT, 'screenshots', `${name}-${scheme}.png`), fullPage: false });
    await tab.page.evaluate(AXE);
    const violations = await tab.page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
        html: v.nodes.slice(0, 3).map((n) => n.html.slice(0, 200)),
        summary: v.nodes[0]?.failureSummary?.slice(0, 300),
      }));
    });
    axeReport.push({ page: name, scheme, violations });
    const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    if (bad.length) tab.problems.push(...bad.map((v) => `axe ${v.impact} on ${name} (${scheme}): ${v.id} — ${v.help} — ${v.nodes.join(', ')}`));
  }
  await tab.page.emulateMedia({ colorScheme: 'light' });
}

/** The narrowest supported window: 800 px wide, nothing may need horizontal page scrolling. */
async function captureNarrow(tab, name) {
  await tab.page.setViewportSize({ width: 800, height: 720 });
  await settle(tab.page);
  await tab.page.screenshot({ path: join(OUT, 'screenshots', `${name}-800px.png`) });
  const overflow = await tab.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (overflow > 0) tab.problems.push(`${name} at 800 px scrolls sideways by ${overflow} px`);
  await tab.page.setViewportSize({ width: 1280, height: 800 });
}

async function signIn(tab, username, password) {
  const { page } = tab;
  await page.goto('/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor({ timeout: 15_000 });
}

async function navLabels(page) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts();
}

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

async function scenario(name, fn, { skip } = {}) {
  if (skip) {
    results.push({ name, status: 'skipped', detail: skip });
    console.log(`- SKIP ${name}: ${skip}`);
    return;
  }
  const started = Date.now();
  const tabs = [];
  try {
    await fn((t) => (tabs.push(t), t));
    const problems = tabs.flatMap((t) => t.problems.map((p) => `[${t.label}] ${p}`));
    if (problems.length) throw new Error(problems.join('\n'));
    results.push({ name, status: 'passed', ms: Date.now() - started });
    console.log(`✓ ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    for (const t of tabs) await t.page.screenshot({ path: join(OUT, `FAILED-${name.replace(/\W+/g, '-')}-${t.label}.png`) }).catch(() => undefined);
    const detail = String(e?.stack ?? e).split('\n').slice(0, 12).join('\n');
    results.push({ name, status: 'failed', detail });
    console.log(`✗ ${name}\n${detail}`);
  } finally {
    for (const t of tabs) await t.close().catch(() => undefined);
  }
}

async function uploadInUi(tab, file, expectStatus) {
  const { page } = tab;
  await page.goto('/upload');
  await page.getByTestId('file-input').setInputFiles(file);
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  const status = page.getByTestId('upload-status');
  await status.getByText(expectStatus === 'approved' ? 'Approved' : 'Quarantined', { exact: true }).waitFor({ timeout: 180_000 });
  return status.innerText();
}

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

// ---------------------------------------------------------------- main -------------
async function main() {
  const { api, base, servesWeb, via } = await startArca();
  const setupApi = process.env.ARCA_E2E_API ?? api;
  const target = process.env.E2E_BASE_URL ?? base;
  console.log(`arca ${api}; app ${target} (${via})`);
  const doc = await call(setupApi, 'GET', '/api/openapi.json');
  pending = {
    downloadLink: !doc.paths['/api/artifacts/{id}/download-link'],
    stats: !doc.paths['/api/stats'],
    scanner: !doc.paths['/api/scanner'],
    events: !doc.paths['/api/artifacts/{id}/events'],
  };
  const admin = await apiLogin(setupApi, 'admin', ADMIN_PASSWORD);
  for (const [username, role] of [
    ['pat', 'publisher'],
    ['connie', 'consumer'],
    ['audrey', 'auditor'],
  ])
    await call(setupApi, 'POST', '/api/users', admin, { username, password: PASSWORD, roles: [role] });
  const files = makeArchives();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const ids = {};
  const find = async (name) => (await call(setupApi, 'GET', `/api/artifacts?q=${name}`, admin)).items.find((a) => a.name === name);

  await scenario('sign-in page and wrong password', async (open) => {
    const tab = open(await openPage(browser, target, 'anon'));
    tab.allow((m, p, s) => m === 'POST' && p === '/api/auth/login' && s === 401);
    await tab.page.goto('/');
    await tab.page.getByRole('heading', { name: 'Sign in to Arca' }).waitFor();
    await capture(tab, 'login');
    await tab.page.getByLabel('Username').fill('admin');
    await tab.page.getByLabel('Password').fill('wrong-password-123');
    await tab.page.getByRole('button', { name: 'Sign in' }).click();
    await tab.page.getByText('Wrong username or password').waitFor();
  });

  const expectedNav = {
    admin: ['Dashboard', 'Artifacts', 'Upload', 'Policy & exceptions', 'Users', 'API tokens', 'Audit log'],
    pat: ['Dashboard', 'Artifacts', 'Upload', 'API tokens'],
    connie: ['Dashboard', 'Artifacts', 'API tokens'],
    audrey: ['Dashboard', 'Artifacts', 'API tokens', 'Audit log'],
  };
  for (const [user, nav] of Object.entries(expectedNav)) {
    await scenario(`sign in as ${user}: navigation shows what the role may use`, async (open) => {
      const tab = open(await openPage(browser, target, user));
      await signIn(tab, user, user === 'admin' ? ADMIN_PASSWORD : PASSWORD);
      const got = await navLabels(tab.page);
      expect(JSON.stringify(got) === JSON.stringify(nav), `nav ${JSON.stringify(got)} != ${JSON.stringify(nav)}`);
      await tab.page.getByRole('heading', { name: 'Dashboard' }).waitFor();
      if (user === 'admin') await capture(tab, 'dashboard-admin');
    });
  }

  await scenario('publisher uploads a clean archive → approved; one with a secret → quarantined with the reason', async (open) => {
    const tab = open(await openPage(browser, target, 'pat'));
    await signIn(tab, 'pat', PASSWORD);
    await uploadInUi(tab, files.clean, 'approved');
    await capture(tab, 'upload-approved');
    const leaky = await uploadInUi(tab, files.leaky, 'quarantined');
    expect(/secret/i.test(leaky), `no secret reason shown: ${leaky}`);
    expect(!leaky.includes('AKIA2E0A8F3B244C9986'), 'the secret value is shown');
    await capture(tab, 'upload-quarantined');
    const vuln = await uploadInUi(tab, files.vulnerable, 'quarantined');
    expect(vuln.includes('CVE-2021-25900'), `no CVE in the reason: ${vuln}`);
    ids.clean = (await find('clean'))?.id;
    ids.leaky = (await find('leaky'))?.id;
    ids.vulnerable = (await find('vulnerable'))?.id;
    expect(ids.clean && ids.leaky && ids.vulnerable, 'artifacts not found');
  });

  await scenario('artifact detail: findings table with filters, secrets by location, export', async (open) => {
    const tab = open(await openPage(browser, target, 'admin'));
    await signIn(tab, 'admin', ADMIN_PASSWORD);
    await tab.page.goto(`/artifacts/${ids.vulnerable}`);
    await tab.page.getByRole('table', { name: 'Vulnerabilities' }).waitFor();
    const link = tab.page.getByRole('link', { name: 'CVE-2021-25900' });
    expect((await link.getAttribute('href'))?.startsWith('http'), 'CVE not linked');
    await tab.page.getByRole('checkbox', { name: 'Fix available' }).check();
    await tab.page.getByText('1 of 1 vulnerabilities shown').waitFor();
    const dl = tab.page.waitForEvent('download');
    await tab.page.getByRole('button', { name: 'Export CSV' }).click();
    const csv = readFileSync(await (await dl).path(), 'utf8');
    expect(csv.includes('CVE-2021-25900'), 'CSV export lacks the finding');
    await capture(tab, 'artifact-detail-quarantined');
    await captureNarrow(tab, 'artifact-detail-quarantined');
    await tab.page.goto(`/artifacts/${ids.leaky}`);
    await tab.page.getByRole('tab', { name: /Secrets/ }).click();
    await tab.page.getByText('app/config/credentials').first().waitFor();
    expect(!(await tab.page.content()).includes('Lw0kz8D3qT9mY5vR1nX7pJ2cB6hF4gK0sA3eW8uZ'), 'secret value on the page');
    await tab.page.goto(`/artifacts/${ids.clean}`);
    await tab.page.getByRole('heading', { name: 'clean@1.0.0' }).waitFor();
    await tab.page.getByText('Algorithm').waitFor();
    await capture(tab, 'artifact-detail-approved');
    await tab.page.goto('/artifacts?status=quarantined&sort=name&order=asc');
    await tab.page.getByRole('link', { name: 'leaky' }).waitFor();
    expect((await tab.page.getByRole('link', { name: 'clean' }).count()) === 0, 'status filter from the URL ignored');
    await tab.page.goto('/artifacts');
    await tab.page.getByRole('link', { name: 'clean' }).waitFor();
    await capture(tab, 'artifacts');
    await captureNarrow(tab, 'artifacts');
  });

  await scenario(
    'consumer finds and downloads the approved artifact (bytes compared); sees no upload or admin control',
    async (open) => {
      const tab = open(await openPage(browser, target, 'connie'));
      await signIn(tab, 'connie', PASSWORD);
      await tab.page.goto('/artifacts');
      await tab.page.getByLabel('Search by name').fill('clean');
      await tab.page.waitForURL(/q=clean/);
      await tab.page.getByRole('link', { name: 'clean' }).click();
      await tab.page.getByRole('heading', { name: 'clean@1.0.0' }).waitFor();
      expect((await tab.page.getByRole('group', { name: 'Administration' }).count()) === 0, 'admin controls shown');
      expect((await tab.page.getByRole('link', { name: 'Upload' }).count()) === 0, 'upload shown');
      const dl = tab.page.waitForEvent('download');
      await tab.page.getByRole('button', { name: 'Download' }).click();
      const got = sha256(await (await dl).path());
      expect(got === sha256(files.clean), 'downloaded bytes differ');
    },
    { skip: pending.downloadLink ? 'pending: POST /api/artifacts/{id}/download-link is not in this server yet' : undefined },
  );

  await scenario('consumer: forced admin URL shows "Not allowed"; quarantined artifacts are invisible', async (open) => {
    const tab = open(await openPage(browser, target, 'connie'));
    tab.allow((m, p, s) => m === 'GET' && p === `/api/artifacts/${ids.leaky}` && s === 404);
    await signIn(tab, 'connie', PASSWORD);
    await tab.page.goto('/users');
    await tab.page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    await capture(tab, 'not-allowed');
    await tab.page.goto('/artifacts');
    await tab.page.getByRole('link', { name: 'clean' }).waitFor();
    expect((await tab.page.getByRole('link', { name: 'leaky' }).count()) === 0, 'consumer sees a quarantined artifact');
    await tab.page.goto(`/artifacts/${ids.leaky}`);
    await tab.page.getByRole('heading', { name: 'Page not found' }).waitFor();
    // API tokens: created and shown once.
    await tab.page.goto('/tokens');
    await tab.page.getByLabel('Name').fill('ci-pull');
    await tab.page.getByRole('button', { name: 'Create token' }).click();
    await tab.page.getByText('Copy it now: it is shown only once.').waitFor();
    await tab.page.getByRole('table', { name: 'API tokens' }).getByText('ci-pull').waitFor();
    await capture(tab, 'tokens');
  });

  await scenario('admin creates a user, releases the quarantined artifact with a justification, creates an exception', async (open) => {
    const tab = open(await openPage(browser, target, 'admin'));
    await signIn(tab, 'admin', ADMIN_PASSWORD);
    const { page } = tab;
    await page.goto('/users');
    await page.getByRole('button', { name: 'Create user' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Username').fill('newbie');
    await dialog.getByLabel('Initial password').fill(PASSWORD);
    await dialog.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByRole('table', { name: 'Users' }).getByText('newbie').waitFor();
    await capture(tab, 'users');
    await page.goto(`/artifacts/${ids.leaky}`);
    await page.getByRole('button', { name: 'Release' }).click();
    await page.getByRole('dialog').getByLabel('Justification').fill('Test credentials from the vendor docs, not a real key.');
    await page.getByRole('dialog').getByRole('button', { name: 'Release' }).click();
    await page.getByText('approved', { exact: true }).first().waitFor({ timeout: 30_000 });
    await page.goto(`/artifacts/${ids.vulnerable}`);
    await page.getByRole('button', { name: 'Create exception' }).click();
    const exc = page.getByRole('dialog');
    expect((await exc.getByLabel(/Vulnerability id/).inputValue()) === 'CVE-2021-25900', 'exception not pre-filled');
    await exc.getByLabel('Justification').fill('Not reachable: insert_many is never called.');
    await exc.getByRole('button', { name: 'Create exception' }).click();
    await exc.waitFor({ state: 'detached' });
    await page.goto('/policy');
    await page.getByRole('table', { name: 'Exceptions' }).getByText('CVE-2021-25900').waitFor();
    await capture(tab, 'policy');
  });

  await scenario('auditor filters, exports and verifies the audit log', async (open) => {
    const tab = open(await openPage(browser, target, 'audrey'));
    await signIn(tab, 'audrey', PASSWORD);
    const { page } = tab;
    await page.goto('/audit');
    await page.getByText(/Chain verified/).waitFor();
    await page.getByLabel('Action').fill('artifacts.release');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/audit/);
    await page
      .waitForFunction(() => document.querySelectorAll('table[aria-label="Audit entries"] tbody tr').length === 1, null, { timeout: 15_000 })
      .catch(async () => {
        throw new Error(`expected one release entry, got ${await page.locator('table[aria-label="Audit entries"] tbody tr').count()}`);
      });
    await page.getByRole('table', { name: 'Audit entries' }).getByText('artifacts.release').first().waitFor();
    const dl = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export NDJSON' }).click();
    const lines = readFileSync(await (await dl).path(), 'utf8').trim().split('\n');
    expect(lines.length >= 1 && lines.every((l) => JSON.parse(l).action === 'artifacts.release'), 'export does not follow the filter');
    await page.getByRole('button', { name: 'Clear' }).click();
    await capture(tab, 'audit');
  });

  await scenario('reload keeps the session; logout ends it', async (open) => {
    const tab = open(await openPage(browser, target, 'pat'));
    await signIn(tab, 'pat', PASSWORD);
    const { page } = tab;
    await page.goto('/artifacts');
    await page.getByRole('heading', { name: 'Artifacts' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Artifacts' }).waitFor();
    expect((await page.getByRole('heading', { name: 'Sign in to Arca' }).count()) === 0, 'signed out by a reload');
    // A second tab of the same browser shares the session.
    const second = await tab.context.newPage();
    await second.goto('/upload');
    await second.getByRole('heading', { name: 'Upload an artifact' }).waitFor();
    await capture({ ...tab, page: second }, 'upload');
    await second.close();
    await page.getByRole('button', { name: /Account/ }).click();
    await page.getByRole('menuitem', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Arca' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in to Arca' }).waitFor();
  });

  await browser.close();
  writeFileSync(join(OUT, 'axe.json'), JSON.stringify(axeReport, null, 2));
  writeFileSync(join(OUT, 'summary.json'), JSON.stringify({ target, via, servesWeb, pending, results }, null, 2));
  const passed = results.filter((r) => r.status === 'passed').length;
  const failed = results.filter((r) => r.status === 'failed').length;
  const skipped = results.filter((r) => r.status === 'skipped').length;
  console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exitCode = failed ? 1 : 0;
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  // Open sockets and child pipes would keep node alive: stop everything explicitly.
  .finally(() => process.exit());
