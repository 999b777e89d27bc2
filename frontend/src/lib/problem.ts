/** An RFC 9457 problem document as Arca sends it (`application/problem+json`). */
export class ApiProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  readonly retryAfter: number | undefined;
  readonly requestId: string | undefined;
  /** Every other member of the document (e.g. `reasons`, `policy`). */
  readonly extra: Record<string, unknown>;

  constructor(init: {
    status: number;
    code: string;
    title: string;
    detail: string;
    retryAfter?: number | undefined;
    requestId?: string | undefined;
    extra?: Record<string, unknown>;
  }) {
    super(init.detail || init.title);
    this.name = 'ApiProblem';
    this.status = init.status;
    this.code = init.code;
    this.title = init.title;
    this.detail = init.detail;
    this.retryAfter = init.retryAfter;
    this.requestId = init.requestId;
    this.extra = init.extra ?? {};
  }
}

export function isProblem(e: unknown): e is ApiProblem {
  return e instanceof ApiProblem;
}

const STATUS_TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Too large',
  422: 'Unprocessable',
  429: 'Too many requests',
  500: 'Server error',
  502: 'Bad gateway',
  503: 'Service unavailable',
};

/** Builds an ApiProblem from any failed response: problem+json, other JSON, or text. */
export async function problemFromResponse(response: Response): Promise<ApiProblem> {
  const headerRetry = response.headers.get('Retry-After');
  const requestId = response.headers.get('X-Request-Id') ?? undefined;
  let body: unknown = undefined;
  try {
    const text = await response.text();
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const doc = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
  const str = (k: string) => (typeof doc[k] === 'string' ? (doc[k] as string) : undefined);
  const retryBody = typeof doc.retry_after === 'number' ? doc.retry_after : undefined;
  const retryHeader = headerRetry && /^\d+$/.test(headerRetry) ? Number(headerRetry) : undefined;
  const { type: _t, title: _ti, status: _s, detail: _d, code: _c, retry_after: _r, ...extra } = doc;
  return new ApiProblem({
    status: response.status,
    code: str('code') ?? `http_${response.status}`,
    title: str('title') ?? STATUS_TITLES[response.status] ?? `HTTP ${response.status}`,
    detail: str('detail') ?? (response.statusText || 'The server refused the request.'),
    retryAfter: retryBody ?? retryHeader,
    requestId,
    extra,
  });
}

export function networkProblem(e: unknown): ApiProblem {
  return new ApiProblem({
    status: 0,
    code: 'network_error',
    title: 'Network error',
    detail: `Arca could not be reached (${e instanceof Error ? e.message : String(e)}). Check your connection and retry.`,
  });
}

/** Human text for the codes people meet at sign-in and elsewhere. */
export function describeProblem(p: ApiProblem): { title: string; detail: string } {
  const wait = p.retryAfter !== undefined ? ` Try again in ${formatWait(p.retryAfter)}.` : '';
  switch (p.code) {
    case 'invalid_credentials':
      return { title: 'Wrong username or password', detail: 'Check both and try again. Repeated failures lock the account for a while.' };
    case 'locked_out':
    case 'account_locked':
      return { title: 'Account temporarily locked', detail: `Too many failed sign-ins.${wait || ' Try again later.'}` };
    case 'rate_limited':
      return { title: 'Too many requests', detail: `${p.detail}.${wait}`.replace('..', '.') };
    case 'ip_not_allowed':
      return { title: 'Your network is not allowed', detail: 'Arca does not accept requests from your IP address. Ask an administrator to add it to the allowlist.' };
    case 'ip_not_allowed_for_role':
      return { title: 'Not allowed from this network', detail: 'Your role may only be used from specific networks. Connect from an allowed network or ask an administrator.' };
    case 'scanner_unavailable':
      return { title: 'Scanner unavailable', detail: p.detail || 'The vulnerability scanner is not available right now; retry later.' };
    case 'not_approved': {
      const status = typeof p.extra.artifact_status === 'string' ? p.extra.artifact_status.replace(/_/g, ' ') : null;
      return {
        title: 'Not downloadable',
        detail: status ? `The artifact is ${status}: only approved artifacts can be downloaded. ${p.detail}` : p.detail,
      };
    }
    case 'interactive_session_required':
      return { title: 'Sign in interactively', detail: p.detail || 'This action needs a signed-in session, not an API token.' };
    default:
      return { title: p.title, detail: p.detail + (p.code === 'locked_out' ? '' : wait) };
  }
}

export function formatWait(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const m = Math.ceil(seconds / 60);
  return m < 60 ? `${m} min` : `${Math.ceil(m / 60)} h`;
}
