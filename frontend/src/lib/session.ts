/**
 * The signed-in session: the access token in memory only, the refresh token only in the
 * httpOnly `arca_refresh` cookie (never read here).
 *
 * - Silent refresh shortly before the access token expires, and once on a 401.
 * - One refresh at a time per tab (callers share the in-flight promise) and across tabs:
 *   a Web Lock (`arca-refresh`) serialises refreshes, so the cookie each one sends is the
 *   newest in the shared cookie jar (a rotated-away token is never sent twice, which would
 *   revoke the whole session family), and the winner hands the new access token to the
 *   other tabs over `BroadcastChannel('arca-auth')`; a tab that waited on the lock and
 *   already got a fresh token that way does not refresh at all.
 * - A new tab first asks the others for their token, then falls back to a refresh.
 */
import { ApiProblem, networkProblem, problemFromResponse } from './problem';

export interface Identity {
  id: string;
  username: string;
  roles: string[];
  permissions: string[];
}

export interface AccessToken {
  value: string;
  /** Unix ms. */
  expiresAt: number;
  /** Seconds the server granted; drives the refresh margin. */
  lifetime: number;
}

export type SessionStatus = 'restoring' | 'signed-in' | 'signed-out';

export interface SessionSnapshot {
  status: SessionStatus;
  identity: Identity | null;
  /** Why the user was signed out (shown on the sign-in page). */
  reason: string | null;
}

type Message =
  | { type: 'token'; token: AccessToken; login?: boolean }
  | { type: 'hello' }
  | { type: 'logout'; reason: string | null };

export interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

export interface ChannelLike {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
  close(): void;
}

export interface SessionDeps {
  fetch: typeof fetch;
  locks: LockManagerLike | null;
  channel: ChannelLike | null;
  now: () => number;
  /** How long a new tab waits for a sibling's token before refreshing itself. */
  helloWaitMs: number;
  /** How long the refreshing tab keeps the lock after broadcasting the new token. */
  handoffMs: number;
}

function defaultDeps(): SessionDeps {
  const nav = typeof navigator !== 'undefined' ? (navigator as Navigator & { locks?: LockManager }) : undefined;
  const locks: LockManagerLike | null = nav?.locks
    ? { request: (name, cb) => nav.locks!.request(name, { mode: 'exclusive' }, cb) as Promise<never> }
    : null;
  const channel = typeof BroadcastChannel !== 'undefined' ? new BroadcastChannel('arca-auth') : null;
  return {
    fetch: (...args) => fetch(...args),
    locks,
    channel: channel as ChannelLike | null,
    now: () => Date.now(),
    helloWaitMs: 150,
    handoffMs: 100,
  };
}

/** Refresh this long before expiry: a quarter of the lifetime, at most 60 s. */
function marginMs(token: AccessToken): number {
  return Math.min(60_000, (token.lifetime * 1000) / 4);
}

export class Session {
  private token: AccessToken | null = null;
  private snapshot: SessionSnapshot = { status: 'restoring', identity: null, reason: null };
  private listeners = new Set<() => void>();
  private inflight: Promise<AccessToken | null> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private helloWaiter: ((token: AccessToken) => void) | null = null;
  private deps: SessionDeps;
  /** Counts refresh requests this tab sent (tests read it). */
  refreshCount = 0;

  constructor(deps: Partial<SessionDeps> = {}) {
    this.deps = { ...defaultDeps(), ...deps };
    this.deps.channel?.addEventListener('message', (event) => this.onMessage(event.data as Message));
  }

  // ---- React binding -------------------------------------------------------------
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): SessionSnapshot => this.snapshot;

  private set(next: Partial<SessionSnapshot>) {
    this.snapshot = { ...this.snapshot, ...next };
    this.listeners.forEach((l) => l());
  }

  /** The current access token, if any (may be near expiry; see `validToken`). */
  currentToken(): string | null {
    return this.token?.value ?? null;
  }

  private fresh(token: AccessToken | null): token is AccessToken {
    return token !== null && token.expiresAt - this.deps.now() > marginMs(token) / 2;
  }

  /** A token good for the next request: refreshes first when it is about to expire. */
  async validToken(): Promise<string | null> {
    if (this.token && this.token.expiresAt - this.deps.now() > 5_000) return this.token.value;
    if (this.snapshot.status === 'signed-out') return null;
    const token = await this.refresh();
    return token?.value ?? null;
  }

  // ---- lifecycle -----------------------------------------------------------------
  /** On start: take a sibling tab's token, else restore the session through the cookie. */
  async restore(): Promise<void> {
    const fromSibling = await this.askSiblings();
    if (fromSibling) {
      this.adopt(fromSibling);
    } else {
      try {
        await this.refresh();
      } catch {
        // network trouble: refresh() already set the state
      }
    }
    if (this.token) await this.loadIdentity();
    else if (this.snapshot.status === 'restoring') this.set({ status: 'signed-out' });
  }

  private askSiblings(): Promise<AccessToken | null> {
    const channel = this.deps.channel;
    if (!channel) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.helloWaiter = null;
        resolve(null);
      }, this.deps.helloWaitMs);
      this.helloWaiter = (token) => {
        clearTimeout(timer);
        this.helloWaiter = null;
        resolve(token);
      };
      channel.postMessage({ type: 'hello' } satisfies Message);
    });
  }

  async login(username: string, password: string): Promise<void> {
    let response: Response;
    try {
      response = await this.deps.fetch('/api/auth/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ username, password }),
      });
    } catch (e) {
      throw networkProblem(e);
    }
    if (!response.ok) throw await problemFromResponse(response);
    const body = (await response.json()) as { access_token: string; expires_in: number };
    const token = this.tokenFrom(body);
    this.adopt(token);
    this.broadcast({ type: 'token', token, login: true });
    await this.loadIdentity();
  }

  async logout(): Promise<void> {
    const value = this.token?.value;
    try {
      if (value) {
        await this.deps.fetch('/api/auth/logout', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { Authorization: `Bearer ${value}` },
        });
      }
    } catch {
      // signed out locally all the same
    } finally {
      this.signOut(null, true);
    }
  }

  /** Called when a request made with `usedToken` got a 401: refresh once, unless a newer token exists. */
  async handleUnauthorized(usedToken: string | null): Promise<string | null> {
    if (this.token && this.token.value !== usedToken && this.fresh(this.token)) return this.token.value;
    if (this.snapshot.status === 'signed-out') return null;
    try {
      const token = await this.refresh({ force: true });
      return token?.value ?? null;
    } catch {
      return null;
    }
  }

  /**
   * One refresh for every caller in this tab, serialised across tabs by the Web Lock.
   * Resolves null when the session is over (401 from the server).
   */
  refresh(options: { force?: boolean } = {}): Promise<AccessToken | null> {
    if (this.inflight) return this.inflight;
    const before = this.token;
    const run = async (): Promise<AccessToken | null> => {
      // While we waited for the lock another tab may have refreshed and sent us its token.
      if (this.token && this.token.value !== before?.value && this.fresh(this.token)) return this.token;
      if (!options.force && before === null && this.token === null && this.snapshot.status === 'signed-out') return null;
      let response: Response;
      try {
        this.refreshCount += 1;
        response = await this.deps.fetch('/api/auth/refresh', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: '{}',
        });
      } catch (e) {
        throw networkProblem(e);
      }
      if (response.status === 401) {
        const problem = await problemFromResponse(response);
        const reason =
          before === null
            ? null
            : problem.code === 'refresh_token_reused'
              ? 'Your session was ended because its refresh token was used twice. Sign in again.'
              : 'Your session has expired. Sign in again.';
        this.signOut(reason, before !== null);
        return null;
      }
      if (!response.ok) throw await problemFromResponse(response);
      const body = (await response.json()) as { access_token: string; expires_in: number };
      const token = this.tokenFrom(body);
      this.adopt(token);
      this.broadcast({ type: 'token', token });
      // Hold the lock a moment so the other tabs get the token before they get the lock:
      // a tab that waited then finds a fresh token and sends no refresh of its own.
      if (this.deps.channel && this.deps.locks) await new Promise((r) => setTimeout(r, this.deps.handoffMs));
      return token;
    };
    const locked = this.deps.locks ? this.deps.locks.request('arca-refresh', run) : run();
    this.inflight = locked.finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private tokenFrom(body: { access_token: string; expires_in: number }): AccessToken {
    return { value: body.access_token, expiresAt: this.deps.now() + body.expires_in * 1000, lifetime: body.expires_in };
  }

  private adopt(token: AccessToken) {
    this.token = token;
    this.schedule(token);
  }

  private schedule(token: AccessToken) {
    if (this.timer) clearTimeout(this.timer);
    // A little jitter so that tabs with the same token do not all wake at once.
    const jitter = Math.random() * Math.min(5_000, marginMs(token) / 4);
    const delay = Math.max(1_000, token.expiresAt - this.deps.now() - marginMs(token) - jitter);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.token === token) void this.refresh().catch(() => this.schedule(token));
    }, delay);
  }

  private async loadIdentity(): Promise<void> {
    const value = this.token?.value;
    if (!value) return;
    try {
      const response = await this.deps.fetch('/api/auth/me', {
        credentials: 'same-origin',
        headers: { Authorization: `Bearer ${value}`, Accept: 'application/json' },
      });
      if (!response.ok) throw await problemFromResponse(response);
      const identity = (await response.json()) as Identity;
      this.set({ status: 'signed-in', identity, reason: null });
    } catch (e) {
      if (e instanceof ApiProblem && e.status === 401) this.signOut('Your session has expired. Sign in again.', false);
      else throw e;
    }
  }

  private signOut(reason: string | null, tell: boolean) {
    this.token = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.set({ status: 'signed-out', identity: null, reason });
    if (tell) this.broadcast({ type: 'logout', reason });
  }

  private broadcast(message: Message) {
    try {
      this.deps.channel?.postMessage(message);
    } catch {
      // a closed channel: nothing to tell
    }
  }

  private onMessage(message: Message) {
    switch (message.type) {
      case 'hello':
        if (this.fresh(this.token)) this.broadcast({ type: 'token', token: this.token });
        break;
      case 'token': {
        if (this.helloWaiter) {
          this.helloWaiter(message.token);
          return;
        }
        if (this.token?.value === message.token.value) return;
        const isNewer = !this.token || message.token.expiresAt >= this.token.expiresAt;
        if (!isNewer && !message.login) return;
        const wasSignedIn = this.snapshot.status === 'signed-in';
        this.adopt(message.token);
        if (message.login || !wasSignedIn) void this.loadIdentity().catch(() => undefined);
        break;
      }
      case 'logout':
        if (this.snapshot.status !== 'signed-out') this.signOut(message.reason ?? 'You signed out in another tab.', false);
        break;
    }
  }

  /** Stops timers and the channel (tests). */
  dispose() {
    if (this.timer) clearTimeout(this.timer);
    this.deps.channel?.close();
  }
}

let current: Session | null = null;

/** The one session of this page (created on first use). */
export function getSession(): Session {
  current ??= new Session();
  return current;
}

/** Tests: install a session with fake dependencies. */
export function setSession(next: Session | null): void {
  current?.dispose();
  current = next;
}
