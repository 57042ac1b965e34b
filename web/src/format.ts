// How times, durations and sizes read on the page.

import { h } from './dom';

export function duration(ms: number | undefined | null): string {
  if (ms === undefined || ms === null) {
    return '';
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  const s = ms / 1000;
  if (s < 60) {
    return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m} min ${Math.round(s % 60)} s`;
  }
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) {
    return '';
  }
  const t = Date.parse(iso);
  if (Number.isNaN(t)) {
    return iso;
  }
  const s = Math.round((now - t) / 1000);
  const future = s < 0;
  const a = Math.abs(s);
  let text: string;
  if (a < 5) {
    return 'just now';
  } else if (a < 60) {
    text = `${a} s`;
  } else if (a < 3600) {
    text = `${Math.floor(a / 60)} min`;
  } else if (a < 86400) {
    text = `${Math.floor(a / 3600)} h`;
  } else {
    text = `${Math.floor(a / 86400)} d`;
  }
  return future ? `in ${text}` : `${text} ago`;
}

// A <time> element saying how long ago, with the exact time as its tooltip.
export function timeEl(iso: string | null | undefined): HTMLElement | string {
  if (!iso) {
    return '—';
  }
  const date = new Date(iso);
  return h('time', { datetime: iso, title: date.toLocaleString() }, ago(iso));
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) {
    return '—';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${v.toFixed(u === 0 || v >= 10 ? 0 : 1)} ${units[u]}`;
}

// A status shown as a coloured badge (the class picks the colour; the word is the meaning).
export function badge(status: string): HTMLElement {
  const safe = status.replace(/[^a-z_]/gi, '');
  return h('span', { class: `badge badge-${safe}` }, status.replace(/_/g, ' '));
}

export function shortId(id: string | null | undefined): string {
  if (!id) {
    return '';
  }
  const under = id.indexOf('_');
  return under >= 0 && id.length > under + 9 ? id.slice(0, under + 9) : id;
}
