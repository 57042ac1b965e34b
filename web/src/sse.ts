// Server-Sent Event streams: follow() wraps EventSource (GET streams: deployment, template
// and app logs) and keeps it connected across a server restart; postStream() reads an SSE
// answer to a POST (exec) from fetch, which EventSource cannot send.

import { ApiError, getSession, notifySessionExpired, send, type CallOptions } from './api';

export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface FollowHandlers {
  // Called on every (re)connection before any event: the server replays the stream from its
  // start (log lines so far), so a view clears what it showed.
  open?: () => void;
  events: Record<string, (data: unknown) => void>;
  state?: (state: StreamState) => void;
  // Called when the server ends the stream with an `error` event (the operation failed, e.g.
  // the deployment or app is gone); the stream is closed, as a new one would fail the same way.
  failed?: (error: ApiError) => void;
}

export interface Stream {
  close(): void;
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

// The ApiError of a stream's `error` event (data: the API's error envelope).
export function streamError(data: unknown): ApiError {
  const e = (data as { error?: Record<string, unknown> } | null)?.error ?? {};
  return new ApiError(
    0,
    String(e.code ?? 'STREAM_ERROR'),
    String(e.message ?? 'the stream ended with an error'),
    String(e.hint ?? ''),
    String(e.requestId ?? ''),
  );
}

// Follows the SSE stream at `url` until close(). EventSource retries by itself after a
// dropped connection; when it gives up (the server answered an error, e.g. while it was
// restarting or the session ended), this checks the session (a 401 signs the page out) and
// opens a new one after a pause.
export function follow(url: string, handlers: FollowHandlers): Stream {
  let source: EventSource | null = null;
  let closed = false;
  let retryTimer = 0;
  let retries = 0;

  const setState = (s: StreamState) => handlers.state?.(s);

  const connect = () => {
    if (closed) {
      return;
    }
    source = new EventSource(url, { withCredentials: true });
    source.onopen = () => {
      retries = 0;
      setState('open');
      handlers.open?.();
    };
    source.onerror = (event) => {
      if (closed || !source) {
        return;
      }
      // The server's own `event: error` arrives here too (same event name), as a message.
      if (event instanceof MessageEvent) {
        const error = streamError(parse(event.data));
        stream.close();
        handlers.failed?.(error);
        return;
      }
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        setState('reconnecting');
        retries += 1;
        const delay = Math.min(30000, 1000 * 2 ** Math.min(retries, 5));
        retryTimer = window.setTimeout(async () => {
          try {
            await getSession();
          } catch (e) {
            if (e instanceof ApiError && e.status === 401) {
              notifySessionExpired();
              return;
            }
          }
          connect();
        }, delay);
      } else {
        setState('reconnecting');
      }
    };
    for (const [name, handler] of Object.entries(handlers.events)) {
      source.addEventListener(name, (event) => handler(parse((event as MessageEvent).data)));
    }
  };

  const stream: Stream = {
    close() {
      if (closed) {
        return;
      }
      closed = true;
      window.clearTimeout(retryTimer);
      source?.close();
      source = null;
      setState('closed');
    },
  };
  setState('connecting');
  connect();
  return stream;
}

// POSTs `body` asking for an SSE answer and calls `onEvent` for each event until the stream
// ends. Errors before the stream starts throw ApiError.
export async function postStream(
  path: string,
  body: unknown,
  onEvent: (name: string, data: unknown) => void,
  opts: CallOptions = {},
): Promise<void> {
  const response = await send('POST', path, {
    ...opts,
    body,
    headers: { ...opts.headers, Accept: 'text/event-stream' },
  });
  if (!response.body) {
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let name = 'message';
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      break;
    }
    buffer += value;
    let newline: number;
    while ((newline = buffer.search(/\r?\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer[newline] === '\r' ? 2 : 1));
      if (line === '') {
        if (data.length > 0) {
          onEvent(name, parse(data.join('\n')));
        }
        name = 'message';
        data = [];
      } else if (line.startsWith(':')) {
        // comment (keep-alive)
      } else {
        const colon = line.indexOf(':');
        const key = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) {
          value = value.slice(1);
        }
        if (key === 'event') {
          name = value;
        } else if (key === 'data') {
          data.push(value);
        }
      }
    }
  }
}
