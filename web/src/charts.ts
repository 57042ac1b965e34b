// An app's last hour as small line charts: request rate (and 5xx), latency p50/p99, CPU and
// memory, from GET /v1/apps/{app}/stats (the server samples them every interval whether or
// not a page is open). The panel loads the whole window once, then asks only for points
// after the last one it has. SVG made with createElementNS and setAttribute; colours from
// CSS classes.

import { get, seg } from './api';
import { h, replace } from './dom';
import type { AppStats, StatsPoint } from './types';
import { every } from './ui';

const SVG = 'http://www.w3.org/2000/svg';

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    el.setAttribute(k, String(v));
  }
  return el;
}

type Point = [number, number]; // [ms, value]

interface Series {
  label: string;
  cls: string; // chart-line, chart-line-2, chart-line-limit
  points: Point[];
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

function minutes(ms: number): string {
  return ms < 60000 ? `${Math.max(1, Math.round(ms / 1000))} s` : `${Math.round(ms / 60000)} min`;
}

// One chart over [from, to]. A line breaks where points are further apart than `gapMs` (the
// app was stopped) rather than drawing a slope across the stop.
function chart(title: string, unit: string, series: Series[], from: number, to: number, gapMs: number): HTMLElement {
  const W = 300;
  const H = 90;
  const main = series[0].points;
  const last = main.length ? main[main.length - 1][1] : undefined;
  const all = series.flatMap((s) => s.points.map((p) => p[1]));
  const top = Math.max(0, ...all) || 1;
  const figure = h(
    'figure',
    { class: 'chart' },
    h('figcaption', null, h('span', null, title), h('strong', null, last === undefined ? '—' : `${fmt(last)} ${unit}`)),
  );
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', role: 'img', preserveAspectRatio: 'none' });
  const desc = main.length === 0
    ? `${title}: no data yet`
    : `${title} over the last ${minutes(to - from)}: now ${fmt(last ?? 0)} ${unit}, highest ${fmt(Math.max(...main.map((p) => p[1])))} ${unit}`;
  box.setAttribute('aria-label', desc);
  box.appendChild(svg('line', { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: 'chart-axis' }));
  const width = Math.max(1, to - from);
  const x = (t: number) => (((t - from) / width) * W).toFixed(1);
  const y = (v: number) => (H - 2 - (v / top) * (H - 8)).toFixed(1);
  for (const s of series) {
    let run: string[] = [];
    const flush = () => {
      if (run.length === 1) {
        run.push(run[0]); // a lone point still shows as a dot-sized line
      }
      if (run.length > 1) {
        box.appendChild(svg('polyline', { points: run.join(' '), class: s.cls, fill: 'none', 'data-series': s.label }));
      }
      run = [];
    };
    s.points.forEach(([t, v], i) => {
      if (i > 0 && t - s.points[i - 1][0] > gapMs) {
        flush();
      }
      run.push(`${x(t)},${y(v)}`);
    });
    flush();
  }
  figure.appendChild(box);
  const legend = series.length > 1 ? ` · ${series.map((s) => s.label).join(', ')}` : '';
  figure.appendChild(h('small', { class: 'chart-scale' }, `top ${fmt(top)} ${unit} · last ${minutes(to - from)}${legend}`));
  return figure;
}

interface Sample {
  t: number;
  p: StatsPoint;
}

function pick(list: Sample[], f: (p: StatsPoint) => number | null): Point[] {
  return list.flatMap(({ t, p }) => {
    const v = f(p);
    return v === null || v === undefined ? [] : [[t, v] as Point];
  });
}

export interface StatsPanel {
  el: HTMLElement;
  // Fetches the points since the last one (after a lifecycle action, say).
  update(): Promise<void>;
}

// The plots of app `name`; polls while the page is shown.
export function statsPanel(name: string, onDispose: (f: () => void) => void): StatsPanel {
  const el = h('div', { class: 'stats' });
  let list: Sample[] = [];
  let intervalMs = 10000;
  let windowMs = 3600000;
  let loaded = false;
  let fetchedAt = 0;

  const render = () => {
    const now = Date.now();
    // The x axis spans what there is, at least 5 minutes and at most the window.
    const first = list.length ? list[0].t - intervalMs : now;
    const from = Math.max(now - windowMs, Math.min(first, now - 5 * 60000));
    const gap = intervalMs * 2.5;
    const hasErrors = list.some(({ p }) => p.errors > 0);
    const requestSeries: Series[] = [{ label: 'requests', cls: 'chart-line', points: pick(list, (p) => p.rps) }];
    if (hasErrors) {
      requestSeries.push({ label: '5xx', cls: 'chart-line-bad', points: pick(list, (p) => (p.seconds > 0 ? p.errors / p.seconds : null)) });
    }
    const limit = pick(list, (p) => (p.memoryLimitBytes === null ? null : p.memoryLimitBytes / 1048576));
    replace(
      el,
      h('div', { class: 'charts' },
        chart('Requests', 'req/s', requestSeries, from, now, gap),
        chart('Latency', 'ms', [
          { label: 'p99', cls: 'chart-line', points: pick(list, (p) => (p.requests > 0 ? p.p99Ms : null)) },
          { label: 'p50', cls: 'chart-line-2', points: pick(list, (p) => (p.requests > 0 ? p.p50Ms : null)) },
        ], from, now, gap),
        chart('CPU', '%', [{ label: 'cpu', cls: 'chart-line', points: pick(list, (p) => (p.cpuCores === null ? null : p.cpuCores * 100)) }], from, now, gap),
        chart('Memory', 'MiB', [
          { label: 'used', cls: 'chart-line', points: pick(list, (p) => (p.memoryBytes === null ? null : p.memoryBytes / 1048576)) },
          { label: 'limit', cls: 'chart-line-limit', points: limit },
        ], from, now, gap),
      ),
      h('p', { class: 'hint' },
        !loaded
          ? 'Loading the last hour…'
          : list.length
            ? `One point every ${intervalMs / 1000} s, kept for an hour by the server (a restart of the server starts over). Latency is of the requests in each interval, through the gateway.`
            : `No points yet: the server records one every ${intervalMs / 1000} s while the app runs.`),
    );
  };

  const update = async () => {
    fetchedAt = Date.now();
    const since = list.length ? list[list.length - 1].p.time : undefined;
    const stats = await get<AppStats>(`/v1/apps/${seg(name)}/stats`, { query: since ? { since } : undefined });
    intervalMs = stats.intervalSeconds * 1000;
    windowMs = stats.windowSeconds * 1000;
    const fresh = stats.points.map((p) => ({ t: Date.parse(p.time), p }));
    const known = list.length ? list[list.length - 1].t : -Infinity;
    list = list.concat(fresh.filter((s) => s.t > known));
    const now = Date.now();
    list = list.filter((s) => now - s.t < windowMs);
    loaded = true;
    render();
  };

  render();
  update().catch(() => {});
  // Every 5 s, asking only once the server has had time for a new point.
  every(5000, async () => {
    if (Date.now() - fetchedAt >= intervalMs - 500) {
      await update();
    }
  }, onDispose);
  return { el, update };
}
