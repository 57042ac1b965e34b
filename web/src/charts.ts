// Small line charts (SVG made with createElementNS and setAttribute; colours from CSS
// classes) of an app's request rate, latency, CPU and memory. The server answers only the
// current numbers, so the page samples them while it is open and keeps the last hour of
// samples per app for as long as the tab lives.

import { h } from './dom';
import type { App } from './types';

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    el.setAttribute(k, String(v));
  }
  return el;
}

interface Sample {
  t: number; // ms
  requests?: number;
  p99Ms?: number;
  p50Ms?: number;
  cpuSeconds?: number;
  memoryBytes?: number;
}

const kWindowMs = 60 * 60 * 1000;
const samples = new Map<string, Sample[]>();

export function recordSample(app: App, now = Date.now()): void {
  const list = samples.get(app.id) ?? [];
  const r = app.requests as { total?: number; p50Ms?: number; p99Ms?: number } | null | undefined;
  list.push({
    t: now,
    requests: r?.total,
    p50Ms: r?.p50Ms,
    p99Ms: r?.p99Ms,
    cpuSeconds: app.stats?.cpuSeconds,
    memoryBytes: app.stats?.memoryBytes,
  });
  while (list.length > 0 && now - list[0].t > kWindowMs) {
    list.shift();
  }
  samples.set(app.id, list);
}

type Point = [number, number];

// Rate of a counter per second between samples; a counter that went down (a restart) starts
// over and is skipped.
function rate(list: Sample[], pick: (s: Sample) => number | undefined, scale = 1): Point[] {
  const out: Point[] = [];
  for (let i = 1; i < list.length; i++) {
    const a = pick(list[i - 1]);
    const b = pick(list[i]);
    const dt = (list[i].t - list[i - 1].t) / 1000;
    if (a === undefined || b === undefined || b < a || dt <= 0) {
      continue;
    }
    out.push([list[i].t, ((b - a) / dt) * scale]);
  }
  return out;
}

function gauge(list: Sample[], pick: (s: Sample) => number | undefined, scale = 1): Point[] {
  return list.flatMap((s) => {
    const v = pick(s);
    return v === undefined ? [] : [[s.t, v * scale] as Point];
  });
}

function fmt(v: number): string {
  if (v === 0) {
    return '0';
  }
  if (Math.abs(v) >= 100) {
    return v.toFixed(0);
  }
  if (Math.abs(v) >= 10) {
    return v.toFixed(1);
  }
  return v.toFixed(2);
}

function span(ms: number): string {
  return ms < 60000 ? `${Math.max(1, Math.round(ms / 1000))} s` : `${Math.round(ms / 60000)} min`;
}

// The x axis runs from the first sample (at most an hour ago) to now.
function chart(title: string, unit: string, points: Point[], now: number, since: number): HTMLElement {
  const W = 300;
  const H = 90;
  const last = points.length ? points[points.length - 1][1] : undefined;
  const figure = h(
    'figure',
    { class: 'chart' },
    h('figcaption', null, h('span', null, title), h('strong', null, last === undefined ? '—' : `${fmt(last)} ${unit}`)),
  );
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', preserveAspectRatio: 'none' });
  const desc = points.length < 2
    ? `${title}: not enough samples yet`
    : `${title} over the last ${span(now - since)}: now ${fmt(last ?? 0)} ${unit}, highest ${fmt(Math.max(...points.map((p) => p[1])))} ${unit}`;
  box.setAttribute('aria-label', desc);
  box.appendChild(svg('line', { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: 'chart-axis' }));
  if (points.length >= 2) {
    const width = Math.max(1, now - since);
    const max = Math.max(...points.map((p) => p[1])) || 1;
    const xy = points.map(([t, v]) => `${(((t - since) / width) * W).toFixed(1)},${(H - 2 - (v / max) * (H - 8)).toFixed(1)}`);
    box.appendChild(svg('polyline', { points: xy.join(' '), class: 'chart-line', fill: 'none' }));
  }
  figure.appendChild(box);
  if (points.length >= 2) {
    figure.appendChild(
      h('small', { class: 'chart-scale' }, `top ${fmt(Math.max(...points.map((p) => p[1])) || 1)} ${unit} · last ${span(now - since)}`),
    );
  }
  return figure;
}

export function charts(app: App, now = Date.now()): HTMLElement {
  const list = samples.get(app.id) ?? [];
  const since = list.length ? list[0].t : now;
  return h(
    'div',
    null,
    h('div', { class: 'charts' },
      chart('Requests', 'req/s', rate(list, (s) => s.requests), now, since),
      chart('Latency p99', 'ms', gauge(list, (s) => s.p99Ms), now, since),
      chart('CPU', '%', rate(list, (s) => s.cpuSeconds, 100), now, since),
      chart('Memory', 'MiB', gauge(list, (s) => s.memoryBytes, 1 / 1048576), now, since),
    ),
    h('p', { class: 'hint' },
      list.length > 1
        ? `Sampled every 5 s while this page is open (${span(now - since)} so far; the last hour is kept while the tab is open). Latency is the gateway’s p99 since the server started.`
        : 'Sampled every 5 s while this page is open: the lines appear after a few samples.'),
  );
}
