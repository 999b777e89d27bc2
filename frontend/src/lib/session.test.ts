import { describe, expect, it, vi } from 'vitest';
import { api } from './api-client';
import { Session, setSession } from './session';
import { expireAccessTokens, makeArtifact, state } from '@/testing/mock-api';
import { FakeChannelHub, FakeLocks } from '@/testing/tabs';

const PASSWORD = 'correct-horse-battery-staple';

describe('session', () => {
  it('keeps the access token in memory only and loads the identity', async () => {
    const s = new Session({ locks: null, channel: null, helloWaitMs: 0 });
    await s.login('publisher', PASSWORD);
    expect(s.getSnapshot()).toMatchObject({ status: 'signed-in', identity: { username: 'publisher' } });
    expect(s.currentToken()).toMatch(/^access-/);
    expect(JSON.stringify({ ...localStorage })).not.toContain('access-');
    expect(JSON.stringify({ ...sessionStorage })).not.toContain('access-');
    s.dispose();
  });

  it('refreshes silently shortly before the access token expires', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      state.current.accessTtl = 60;
      state.current.refreshDelayMs = 0;
      const s = new Session({ locks: null, channel: null, helloWaitMs: 0 });
      await s.login('admin', PASSWORD);
      const first = s.currentToken();
      // Not yet: a refresh would waste a rotation.
      await vi.advanceTimersByTimeAsync(30_000);
      expect(state.current.refreshCalls).toBe(0);
      // 15 s margin (a quarter of 60 s) before expiry at the latest.
      await vi.advanceTimersByTimeAsync(16_000);
      expect(state.current.refreshCalls).toBe(1);
      expect(s.currentToken()).not.toBe(first);
      expect(s.getSnapshot().status).toBe('signed-in');
      s.dispose();
    } finally {
      vi.useRealTimers();
    }
  });

  it('concurrent 401s wait on one refresh, then retry', async () => {
    const s = new Session({ locks: null, channel: null, helloWaitMs: 0 });
    setSession(s);
    state.current.artifacts = [makeArtifact()];
    await s.login('admin', PASSWORD);
    expireAccessTokens();
    const results = await Promise.all([1, 2, 3, 4].map(() => api<{ total: number }>('/api/artifacts')));
    expect(results.every((r) => r.total === 1)).toBe(true);
    expect(state.current.refreshCalls).toBe(1);
    expect(state.current.reuseDetected).toBe(false);
  });

  it('a failed refresh signs out with a reason, without retry loops', async () => {
    const s = new Session({ locks: null, channel: null, helloWaitMs: 0 });
    setSession(s);
    await s.login('admin', PASSWORD);
    expireAccessTokens();
    state.current.familyRevoked = true;
    await expect(api('/api/artifacts')).rejects.toMatchObject({ status: 401 });
    expect(state.current.refreshCalls).toBe(1);
    expect(s.getSnapshot()).toMatchObject({ status: 'signed-out' });
    expect(s.getSnapshot().reason).toMatch(/expired/);
  });

  it('restores the session after a reload through the cookie', async () => {
    const first = new Session({ locks: null, channel: null, helloWaitMs: 0 });
    await first.login('auditor', PASSWORD);
    first.dispose();
    // A reload: memory is gone, the httpOnly cookie is still in the jar.
    const reloaded = new Session({ locks: null, channel: null, helloWaitMs: 0 });
    await reloaded.restore();
    expect(reloaded.getSnapshot()).toMatchObject({ status: 'signed-in', identity: { username: 'auditor' } });
    expect(state.current.refreshCalls).toBe(1);
  });

  it('shows the sign-in page when there is no session to restore', async () => {
    const s = new Session({ locks: null, channel: null, helloWaitMs: 0 });
    await s.restore();
    expect(s.getSnapshot()).toMatchObject({ status: 'signed-out', reason: null });
  });

  it('maps a lockout to a problem with retry_after', async () => {
    const s = new Session({ locks: null, channel: null, helloWaitMs: 0 });
    await expect(s.login('admin', 'locked')).rejects.toMatchObject({ status: 429, code: 'locked_out', retryAfter: 30 });
  });
});

describe('two tabs', () => {
  function twoTabs(withLock: boolean) {
    const hub = new FakeChannelHub();
    const locks = new FakeLocks();
    const tab = () => new Session({ locks: withLock ? locks : null, channel: hub.join(), helloWaitMs: 50 });
    return { a: tab(), b: tab(), hub, locks };
  }

  it('without coordination, two tabs refreshing at once trip reuse detection (the problem)', async () => {
    const { a, b } = twoTabs(false);
    await a.login('admin', PASSWORD);
    // Tab B restores from A's broadcast, not from a refresh.
    await b.restore();
    // Both decide to refresh at the same moment with the same cookie…
    state.current.refreshDelayMs = 30;
    const stale = state.current.cookie;
    state.current.cookie = stale;
    const [ra, rb] = await Promise.all([a.refresh({ force: true }), b.refresh({ force: true })]);
    // …one of them is a reuse of a rotated-away token: the family is revoked.
    expect(state.current.reuseDetected || ra === null || rb === null).toBe(true);
    a.dispose();
    b.dispose();
  });

  it('with the Web Lock and BroadcastChannel, only one tab refreshes and both keep working', async () => {
    const { a, b } = twoTabs(true);
    await a.login('admin', PASSWORD);
    await b.restore();
    expect(state.current.refreshCalls).toBe(0);
    expect(b.getSnapshot()).toMatchObject({ status: 'signed-in' });
    expect(b.currentToken()).toBe(a.currentToken());

    // The access token expires; both tabs hit a 401 at the same time.
    const old = a.currentToken();
    expireAccessTokens();
    const [ta, tb] = await Promise.all([a.handleUnauthorized(old), b.handleUnauthorized(old)]);
    expect(ta).not.toBeNull();
    expect(tb).not.toBeNull();
    expect(state.current.reuseDetected).toBe(false);
    // The loser of the race took the winner's token instead of sending the cookie again.
    expect(state.current.refreshCalls).toBe(1);
    expect(ta).toBe(tb);
    expect(a.getSnapshot().status).toBe('signed-in');
    expect(b.getSnapshot().status).toBe('signed-in');

    // Many more rounds: never a reuse.
    for (let i = 0; i < 5; i++) {
      const current = a.currentToken();
      expireAccessTokens();
      await Promise.all([a.handleUnauthorized(current), b.handleUnauthorized(current), a.refresh({ force: true }), b.refresh({ force: true })]);
    }
    expect(state.current.reuseDetected).toBe(false);
    expect(a.getSnapshot().status).toBe('signed-in');
    expect(b.getSnapshot().status).toBe('signed-in');
    a.dispose();
    b.dispose();
  });

  it('signing out in one tab signs out the other', async () => {
    const { a, b } = twoTabs(true);
    await a.login('admin', PASSWORD);
    await b.restore();
    await a.logout();
    await new Promise((r) => setTimeout(r, 10));
    expect(b.getSnapshot()).toMatchObject({ status: 'signed-out' });
    expect(b.currentToken()).toBeNull();
    a.dispose();
    b.dispose();
  });
});
