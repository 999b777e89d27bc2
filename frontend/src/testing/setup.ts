import '@testing-library/jest-dom/vitest';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { cleanup, configure } from '@testing-library/react';
import { server } from './server';
import { newState, state } from './mock-api';
import { setSession } from '@/lib/session';

// findBy*/waitFor wait up to 5 s (not 1 s): on a loaded two-core machine the lazy pages,
// MUI and the mocked API took longer than a second to render (a test never waits longer
// than it needs to).
configure({ asyncUtilTimeout: 5000 });

beforeAll(() => {
  server.listen({ onUnhandledRequest: 'error' });
  // Node's fetch needs absolute URLs; the page uses same-origin paths.
  const patched = globalThis.fetch;
  globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
    patched(typeof input === 'string' && input.startsWith('/') ? new URL(input, window.location.origin).toString() : input, init)) as typeof fetch;
});
afterEach(() => {
  cleanup();
  server.resetHandlers();
  state.current = newState();
  setSession(null);
  sessionStorage.clear();
  localStorage.clear();
});
afterAll(() => server.close());

// jsdom has no matchMedia: a 1280 px wide, light-scheme window.
Object.defineProperty(window, 'matchMedia', {
  writable: true,
  value: (query: string) => ({
    matches: /min-width/.test(query),
    media: query,
    onchange: null,
    addEventListener: () => undefined,
    removeEventListener: () => undefined,
    addListener: () => undefined,
    removeListener: () => undefined,
    dispatchEvent: () => false,
  }),
});
