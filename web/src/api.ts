// Calls to Kiln's REST API (/v1) with the session cookie. Every call other than a GET sends
// X-Kiln-CSRF: 1, which a cross-site form cannot send, so the cookie alone never authorizes
// a change. Errors come back as ApiError with the server's code, message and hint. A 401
// anywhere but at sign-in means the session ended: onSessionExpired's handler takes over.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint: string = '',
    readonly requestId: string = '',
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface Page<T> {
  data: T[];
  has_more: boolean;
  next_cursor: string | null;
}

export interface Workspace {
  id: string;
  slug: string;
  name: string;
}

export interface Session {
  workspace: Workspace;
  key: { id: string; name: string; scopes: string[] };
  expiresAt: string | null;
}

type ExpiredHandler = () => void;
let expiredHandler: ExpiredHandler = () => {};

// `handler` runs when a call answers 401 (the session expired or was signed out elsewhere).
export function onSessionExpired(handler: ExpiredHandler): void {
  expiredHandler = handler;
}

export function notifySessionExpired(): void {
  expiredHandler();
}

export interface CallOptions {
  body?: unknown; // JSON-encoded, or sent as is when FormData/Blob
  query?: Record<string, string | number | boolean | undefined | null>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  noExpire?: boolean; // a 401 is this call's own answer (sign-in), not an expired session
}

export function withQuery(path: string, query?: CallOptions['query']): string {
  if (!query) {
    return path;
  }
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== '') {
      params.set(k, String(v));
    }
  }
  const qs = params.toString();
  return qs ? `${path}${path.includes('?') ? '&' : '?'}${qs}` : path;
}

// Encodes one path segment (an app name, an id) so it cannot change the path.
export function seg(value: string): string {
  return encodeURIComponent(value);
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = `HTTP_${response.status}`;
  let message = `the server answered ${response.status} ${response.statusText}`.trim();
  let hint = '';
  let requestId = response.headers.get('X-Request-Id') ?? '';
  try {
    const body = await response.json();
    if (body && typeof body === 'object' && body.error) {
      code = String(body.error.code ?? code);
      message = String(body.error.message ?? message);
      hint = String(body.error.hint ?? '');
      requestId = String(body.error.requestId ?? requestId);
    }
  } catch {
    // not JSON (a proxy's error page): keep the status line
  }
  return new ApiError(response.status, code, message, hint, requestId);
}

// Sends a request and answers the raw Response when it succeeded (2xx).
export async function send(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
  if (method !== 'GET' && method !== 'HEAD') {
    headers['X-Kiln-CSRF'] = '1';
  }
  let body: BodyInit | undefined;
  if (opts.body instanceof FormData || opts.body instanceof Blob) {
    body = opts.body;
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let response: Response;
  try {
    response = await fetch(withQuery(path, opts.query), {
      method,
      headers,
      body,
      credentials: 'same-origin',
      signal: opts.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') {
      throw e;
    }
    throw new ApiError(
      0,
      'NETWORK',
      'cannot reach the Kiln server',
      'check that `kiln server` is running, then try again',
    );
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && !opts.noExpire) {
      notifySessionExpired();
    }
    throw error;
  }
  return response;
}

// Sends a request and answers the JSON envelope's `data`.
export async function call<T>(method: string, path: string, opts: CallOptions = {}): Promise<T> {
  const response = await send(method, path, opts);
  if (response.status === 204) {
    return undefined as T;
  }
  const body = await response.json();
  return body.data as T;
}

export function get<T>(path: string, opts: CallOptions = {}): Promise<T> {
  return call<T>('GET', path, opts);
}

// A list call: answers the whole page (data, has_more, next_cursor).
export async function list<T>(path: string, opts: CallOptions = {}): Promise<Page<T>> {
  const response = await send('GET', path, opts);
  return (await response.json()) as Page<T>;
}

export function post<T>(path: string, body?: unknown, opts: CallOptions = {}): Promise<T> {
  return call<T>('POST', path, { ...opts, body });
}

export function put<T>(path: string, body?: unknown, opts: CallOptions = {}): Promise<T> {
  return call<T>('PUT', path, { ...opts, body });
}

export function patch<T>(path: string, body?: unknown, opts: CallOptions = {}): Promise<T> {
  return call<T>('PATCH', path, { ...opts, body });
}

export function del<T>(path: string, opts: CallOptions = {}): Promise<T> {
  return call<T>('DELETE', path, opts);
}

// ---- Sign-in sessions ----

export function getSession(): Promise<Session> {
  return get<Session>('/v1/auth/session', { noExpire: true });
}

export function signIn(apiKey: string): Promise<Session> {
  return post<Session>('/v1/auth/session', { apiKey }, { noExpire: true });
}

export function signOut(): Promise<void> {
  return del<void>('/v1/auth/session', { noExpire: true });
}
