/**
 * The one API client: adds the bearer token, refreshes once on a 401 (sharing the
 * session's single refresh), and turns every failure into a typed `ApiProblem`.
 * Response types come from the generated OpenAPI types (`src/api`).
 */
import { ApiProblem, networkProblem, problemFromResponse } from './problem';
import { getSession } from './session';
import type { paths } from '@/api/schema';

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

// ---- typed calls: paths, parameters, bodies and answers from the OpenAPI document -------

export type HttpMethod = 'get' | 'post' | 'put' | 'delete';

/** Paths of the document that have an operation for `M`. */
export type ApiPath<M extends HttpMethod> = {
  [P in keyof paths]: paths[P][M] extends { responses: unknown } ? P : never;
}[keyof paths];

type Operation<P extends keyof paths, M extends HttpMethod> = paths[P][M];
type Json<S> = S extends { content: { 'application/json': infer J } } ? J : undefined;
type Success<O> = O extends { responses: infer R }
  ? R extends { 200: infer S }
    ? Json<S>
    : R extends { 201: infer S }
      ? Json<S>
      : R extends { 202: infer S }
        ? Json<S>
        : undefined
  : never;
type PathParams<O> = O extends { parameters: { path: infer X } } ? X : undefined;
type QueryParams<O> = O extends { parameters: { query?: infer Q } } ? ([Q] extends [never] ? undefined : Q) : undefined;
type Body<O> = O extends { requestBody: { content: { 'application/json': infer B } } }
  ? { body: B }
  : O extends { requestBody?: { content: { 'application/json': infer B } } }
    ? { body?: B }
    : { body?: undefined };

/** The successful answer of `M path`, as the document declares it. */
export type ApiAnswer<P extends keyof paths, M extends HttpMethod> = Success<Operation<P, M>>;

/** What a call takes: path parameters (required when the path has some), query, JSON body. */
export type CallOptions<P extends keyof paths, M extends HttpMethod> = {
  query?: QueryParams<Operation<P, M>>;
  signal?: AbortSignal;
} & Body<Operation<P, M>> &
  (PathParams<Operation<P, M>> extends undefined ? { params?: undefined } : { params: PathParams<Operation<P, M>> });

type Args<P extends keyof paths, M extends HttpMethod> = object extends CallOptions<P, M> ? [options?: CallOptions<P, M>] : [options: CallOptions<P, M>];

/** Fills `{name}` segments of a path template. */
export function fillPath(template: string, params?: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params?.[name];
    if (value === undefined) throw new Error(`${template}: missing path parameter ${name}`);
    return encodeURIComponent(String(value));
  });
}

/**
 * One typed call: `call('get', '/api/artifacts/{id}', { params: { id } })` answers an
 * `Artifact`. A path, parameter or body the server's document does not have fails the
 * typecheck, so an API change that breaks the page breaks the build.
 */
export function call<M extends HttpMethod, P extends ApiPath<M>>(method: M, path: P, ...[options]: Args<P, M>): Promise<ApiAnswer<P, M>> {
  const o = (options ?? {}) as { params?: Record<string, string | number>; query?: Record<string, QueryValue>; body?: unknown; signal?: AbortSignal };
  const hasBody = method === 'post' || method === 'put';
  return api<ApiAnswer<P, M>>(fillPath(path, o.params), {
    method: method.toUpperCase() as RequestOptions['method'],
    query: o.query,
    body: hasBody ? (o.body ?? {}) : undefined,
    signal: o.signal,
  });
}

/** The signature of `call`, for code that takes it as a dependency (the upload engine). */
export type ApiCall = typeof call;

export const apiClient = {
  get: <P extends ApiPath<'get'>>(path: P, ...args: Args<P, 'get'>) => call('get', path, ...args),
  post: <P extends ApiPath<'post'>>(path: P, ...args: Args<P, 'post'>) => call('post', path, ...args),
  put: <P extends ApiPath<'put'>>(path: P, ...args: Args<P, 'put'>) => call('put', path, ...args),
  delete: <P extends ApiPath<'delete'>>(path: P, ...args: Args<P, 'delete'>) => call('delete', path, ...args),
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
