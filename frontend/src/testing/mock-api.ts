/**
 * An in-memory Arca for unit tests (MSW handlers). The refresh-token model mirrors the
 * server: a browser-wide cookie jar (shared by every "tab"), rotation on each refresh,
 * and reuse of a rotated-away token revokes the whole family.
 */
import { delay, http, HttpResponse } from 'msw';
import type { Artifact, Role } from '@/api/types';
import { identityFor, makeArtifact } from './fixtures';

export interface MockState {
  role: Role;
  /** The browser's cookie jar: shared by every tab. */
  cookie: string | null;
  validRefresh: Set<string>;
  usedRefresh: Set<string>;
  familyRevoked: boolean;
  validAccess: Set<string>;
  refreshCalls: number;
  reuseDetected: boolean;
  accessTtl: number;
  refreshDelayMs: number;
  artifacts: Artifact[];
  seq: number;
  /** Set if anything fetched a download (the page must navigate instead). */
  downloadFetched: boolean;
}

export function newState(role: Role = 'admin'): MockState {
  return {
    role,
    cookie: null,
    validRefresh: new Set(),
    usedRefresh: new Set(),
    familyRevoked: false,
    validAccess: new Set(),
    refreshCalls: 0,
    reuseDetected: false,
    accessTtl: 900,
    refreshDelayMs: 20,
    artifacts: [],
    seq: 0,
    downloadFetched: false,
  };
}

export const state: { current: MockState } = { current: newState() };

function problem(status: number, code: string, detail: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return HttpResponse.json(
    { type: `urn:arca:problem:${code}`, title: status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Error', status, code, detail, ...extra },
    { status, headers: { 'Content-Type': 'application/problem+json', ...headers } },
  );
}

function issue(s: MockState) {
  s.seq += 1;
  const access = `access-${s.seq}`;
  const refresh = `refresh-${s.seq}`;
  s.validAccess.add(access);
  s.validRefresh.add(refresh);
  s.cookie = refresh;
  return HttpResponse.json({ access_token: access, token_type: 'Bearer', expires_in: s.accessTtl, refresh_token: refresh });
}

function authed(request: Request): boolean {
  const token = request.headers.get('Authorization')?.replace(/^Bearer /, '');
  return !!token && state.current.validAccess.has(token);
}

/** Expires every access token (as if the clock passed their expiry). */
export function expireAccessTokens() {
  state.current.validAccess.clear();
}

export const handlers = [
  http.post('*/api/auth/login', async ({ request }) => {
    const body = (await request.json()) as { username: string; password: string };
    if (body.password === 'locked') return problem(429, 'locked_out', 'too many failed sign-ins; try again in 30 s', { retry_after: 30 }, { 'Retry-After': '30' });
    if (body.password !== 'correct-horse-battery-staple') return problem(401, 'invalid_credentials', 'invalid username or password');
    state.current.role = body.username as Role;
    return issue(state.current);
  }),
  http.post('*/api/auth/refresh', async () => {
    const s = state.current;
    s.refreshCalls += 1;
    // What the browser sends is read when the request leaves.
    const presented = s.cookie;
    await delay(s.refreshDelayMs);
    if (!presented || s.familyRevoked) return problem(401, 'invalid_refresh_token', 'a refresh token is required');
    if (s.usedRefresh.has(presented)) {
      s.reuseDetected = true;
      s.familyRevoked = true;
      s.validRefresh.clear();
      s.validAccess.clear();
      return problem(401, 'refresh_token_reused', 'refresh token reused; the session is revoked');
    }
    if (!s.validRefresh.has(presented)) return problem(401, 'invalid_refresh_token', 'unknown refresh token');
    s.validRefresh.delete(presented);
    s.usedRefresh.add(presented);
    return issue(s);
  }),
  http.post('*/api/auth/logout', () => {
    state.current.cookie = null;
    state.current.validRefresh.clear();
    return new HttpResponse(null, { status: 204 });
  }),
  http.get('*/api/auth/me', ({ request }) => {
    if (!authed(request)) return problem(401, 'invalid_token', 'expired');
    return HttpResponse.json(identityFor(state.current.role));
  }),
  http.get('*/api/artifacts', ({ request }) => {
    if (!authed(request)) return problem(401, 'invalid_token', 'expired');
    const url = new URL(request.url);
    const status = url.searchParams.get('status');
    let items = state.current.artifacts;
    if (state.current.role === 'consumer') items = items.filter((a) => a.status === 'approved');
    if (status) items = items.filter((a) => a.status === status);
    const perPage = Number(url.searchParams.get('per_page') ?? 25);
    return HttpResponse.json({ items: items.slice(0, perPage), total: items.length, page: 1, per_page: perPage });
  }),
  http.get('*/api/artifacts/:id', ({ request, params }) => {
    if (!authed(request)) return problem(401, 'invalid_token', 'expired');
    const a = state.current.artifacts.find((x) => x.id === params.id);
    return a ? HttpResponse.json(a) : problem(404, 'not_found', 'no such artifact');
  }),
  http.get('*/api/artifacts/:id/events', () => HttpResponse.json([])),
  http.get('*/api/artifacts/:id/signatures', () => HttpResponse.json([])),
  http.get('*/api/artifacts/:id/signature', () => problem(404, 'not_found', 'not signed')),
  http.get('*/api/artifacts/:id/scan-results', ({ params }) =>
    HttpResponse.json({
      artifact_id: params.id,
      status: 'quarantined',
      policy_reasons: [],
      scan: null,
      findings: { vulnerabilities: [], secrets: [], licenses: [], archive: { kind: 'tar', unsafe_links: [], unsafe_link_count: 0, unsupported_format: null } },
    }),
  ),
  // Dashboard and download-link endpoints.
  http.get('*/api/stats', ({ request }) => {
    if (!authed(request)) return problem(401, 'invalid_token', 'expired');
    const s = state.current;
    const audit = s.role === 'admin' || s.role === 'auditor';
    const by_status: Record<string, number> = {};
    for (const a of s.artifacts) by_status[a.status] = (by_status[a.status] ?? 0) + 1;
    return HttpResponse.json({
      by_status,
      findings: { critical: 1, high: 3, medium: 5, low: 2, unknown: 0, secrets: 1, licenses: 4 },
      recent_uploads: s.artifacts.slice(0, 5),
      recent_denials: audit ? [{ ts: Date.UTC(2025, 0, 1), actor: 'connie', action: 'artifacts.download', target: 'artifact:a-q', client_ip: '10.0.0.9' }] : null,
      dead_letters: audit ? 2 : null,
    });
  }),
  http.get('*/api/scanner', () =>
    HttpResponse.json({ trivy_version: '0.74.0', db_updated_at: '2026-01-01T00:00:00Z', db_age_hours: 30, db_stale: true, last_update_error: null }),
  ),
  http.post('*/api/artifacts/:id/download-link', ({ request, params }) => {
    if (!authed(request)) return problem(401, 'invalid_token', 'expired');
    const a = state.current.artifacts.find((x) => x.id === params.id);
    if (!a) return problem(404, 'not_found', 'no such artifact');
    if (a.status !== 'approved') return problem(409, 'not_approved', `the artifact is ${a.status}`);
    return HttpResponse.json({ url: `/api/download-links/tok-${a.id}`, expires_at: Date.now() + 60_000 });
  }),
  http.get('*/api/download-links/:token', () => {
    state.current.downloadFetched = true;
    return new HttpResponse('bytes', { headers: { 'Content-Disposition': 'attachment' } });
  }),
  http.get('*/api/users', () => HttpResponse.json([])),
  http.get('*/api/tokens', () => HttpResponse.json([])),
  http.get('*/api/audit-logs', () => HttpResponse.json({ entries: [], next_cursor: null })),
  http.get('*/api/audit-logs/verify', () => HttpResponse.json({ valid: true, entries: 0, head: '' })),
  http.get('*/api/events/dead-letters', () => HttpResponse.json([])),
  http.get('*/api/policy', () =>
    HttpResponse.json({ max_severity: 'MEDIUM', block_secrets: true, license_deny: [], fail_closed: true, require_publisher_signature: false, block_unsafe_links: true, block_unsupported_archives: true }),
  ),
  http.get('*/api/exceptions', () => HttpResponse.json([])),
];

export { makeArtifact };
