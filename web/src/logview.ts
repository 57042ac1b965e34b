// A scrolling log: one row per line, text only, kept to the last `max` lines. Follows the
// end while the reader is at the bottom; stays put once they scroll up.

import { h, replace } from './dom';
import type { LogLine } from './types';

export interface LogView {
  el: HTMLElement;
  add(line: LogLine): void;
  clear(): void;
  setStatus(text: string): void;
}

export function logView(label: string, opts: { max?: number; empty?: string } = {}): LogView {
  const max = opts.max ?? 5000;
  const body = h('div', {
    class: 'log',
    role: 'log',
    'aria-live': 'off',
    'aria-label': label,
    tabindex: '0',
  });
  const status = h('p', { class: 'log-status', role: 'status' });
  const placeholder = h('div', { class: 'log-empty' }, opts.empty ?? 'No lines yet.');
  body.appendChild(placeholder);
  let lines = 0;
  const el = h('div', { class: 'log-wrap' }, status, body);
  return {
    el,
    add(line: LogLine) {
      const atEnd = body.scrollHeight - body.scrollTop - body.clientHeight < 24;
      if (lines === 0) {
        placeholder.remove();
      }
      const time = line.time ? new Date(line.time) : null;
      const tag = line.step ?? (line.stream && line.stream !== 'stdout' ? line.stream : '');
      body.appendChild(
        h(
          'div',
          { class: `log-line${line.stream === 'stderr' ? ' log-stderr' : ''}` },
          time && !Number.isNaN(time.getTime())
            ? h('span', { class: 'log-time', title: line.time }, time.toLocaleTimeString())
            : null,
          tag ? h('span', { class: 'log-tag' }, tag) : null,
          h('span', { class: 'log-text' }, line.line),
        ),
      );
      lines += 1;
      if (lines > max) {
        body.firstElementChild?.remove();
        lines -= 1;
      }
      if (atEnd) {
        body.scrollTop = body.scrollHeight;
      }
    },
    clear() {
      replace(body, placeholder);
      lines = 0;
    },
    setStatus(text: string) {
      status.textContent = text;
    },
  };
}
