/**
 * The one API client: adds the bearer token, refreshes once on a 401 (sharing the
 * session's single refresh), and turns every failure into a typed `ApiProblem`.
 * Response types come from the generated OpenAPI types (`src/api`).
 */
import { ApiProblem, networkProblem, problemFromResponse } from './problem';
import { getSession } from './session';

export type QueryValue = string | number | boolean | null | undefined;

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  query?: Record<string, QueryValue>;
  body?: unknown;
  signal?: AbortSignal;
  /** Send the bearer token (default true). */
  auth?: boolean;
  headers?: Record<string, string>;
}

export function buildUrl(path: string, query?: Record<string, QueryValue>): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

async function send(path: string, options: RequestOptions, token: string | null): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    return await fetch(buildUrl(path, options.query), {
      method: options.method ?? 'GET',
      headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : null,
      signal: options.signal ?? null,
      credentials: 'same-origin',
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw networkProblem(e);
  }
}

/** Sends a request and returns the raw successful response. */
export async function apiResponse(path: string, options: RequestOptions = {}): Promise<Response> {
  const session = getSession();
  const useAuth = options.auth ?? true;
  let token = useAuth ? await session.validToken() : null;
  let response = await send(path, options, token);
  if (response.status === 401 && useAuth) {
    const retried = await session.handleUnauthorized(token);
    if (retried) {
      token = retried;
      response = await send(path, options, token);
    }
  }
  if (!response.ok) throw await problemFromResponse(response);
  return response;
}

/** Sends a request and parses its JSON answer (undefined for 204). */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await apiResponse(path, options);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiProblem({ status: response.status, code: 'bad_response', title: 'Unexpected answer', detail: 'The server answered something that is not JSON.' });
  }
}

export const apiClient = {
  get: <T>(path: string, query?: Record<string, QueryValue>, signal?: AbortSignal) => api<T>(path, { query, signal }),
  post: <T>(path: string, body?: unknown, query?: Record<string, QueryValue>) => api<T>(path, { method: 'POST', body: body ?? {}, query }),
  put: <T>(path: string, body: unknown) => api<T>(path, { method: 'PUT', body }),
  delete: <T>(path: string) => api<T>(path, { method: 'DELETE' }),
};

/**
 * Starts a browser download by navigating to a same-origin, single-use link (download or
 * export links): the answer is `Content-Disposition: attachment`, so the bytes stream to
 * disk and never pass through page memory.
 */
export function navigateTo(url: string): void {
  const a = document.createElement('a');
  a.href = url;
  a.download = '';
  a.rel = 'noopener';
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
}
