// crema's dashboard: listens to the run's events (Server-Sent Events from
// /events, the whole history first) and redraws its SVG charts.
'use strict';

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
let state;
function reset() {
  state = { start: null, display: [], test: [], snapshots: [], netLoaded: false };
}
reset();

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function fmt(v) {
  if (v === null || v === undefined || !isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

function niceTicks(lo, hi, n) {
  const span = hi - lo;
  const step0 = span / n;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => span / s <= n) || 10 * mag;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

// A line chart of `series` ([{name, points: [[x, y]...]}]) into element `id`.
function lineChart(id, series, yLabel) {
  const el = document.getElementById(id);
  el.dataset.points = series.length ? series[0].points.length : 0;
  const pts = series.flatMap(s => s.points).filter(p => isFinite(p[1]));
  if (!pts.length) {
    el.innerHTML = '<p class="empty">waiting for data…</p>';
    return;
  }
  const W = Math.max(el.clientWidth, 300), H = 250, L = 60, R = 14, T = 10, B = 36;
  let x0 = Math.min(...pts.map(p => p[0])), x1 = Math.max(...pts.map(p => p[0]));
  let y0 = Math.min(...pts.map(p => p[1])), y1 = Math.max(...pts.map(p => p[1]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const out = [`<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" class="line-chart">`];
  for (const t of niceTicks(y0, y1, 5)) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e4e4e4"/>`,
      `<text x="${L - 5}" y="${sy(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(x0, x1, 6)) {
    out.push(`<line x1="${sx(t)}" x2="${sx(t)}" y1="${T}" y2="${H - B}" stroke="#f0f0f0"/>`,
      `<text x="${sx(t)}" y="${H - B + 14}" text-anchor="middle">${fmt(t)}</text>`);
  }
  out.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#999"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 4}" text-anchor="middle">iterations</text>`,
    `<text transform="translate(12 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const p = s.points.filter(q => isFinite(q[1]));
    out.push(`<polyline class="series" data-name="${esc(s.name)}" fill="none" stroke="${c}" stroke-width="1.8" points="${p.map(q => `${sx(q[0]).toFixed(1)},${sy(q[1]).toFixed(1)}`).join(' ')}"/>`);
    if (p.length <= 60) {
      for (const q of p) out.push(`<circle cx="${sx(q[0]).toFixed(1)}" cy="${sy(q[1]).toFixed(1)}" r="2.2" fill="${c}"/>`);
    }
    const ly = T + 14 + 15 * i;
    out.push(`<line x1="${W - R - 170}" x2="${W - R - 150}" y1="${ly - 4}" y2="${ly - 4}" stroke="${c}" stroke-width="2"/>`,
      `<text x="${W - R - 145}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  el.innerHTML = out.join('');
}

function byName(events, prefix) {
  const m = new Map();
  for (const e of events) {
    for (const o of e.outputs || []) {
      const key = prefix(e) + o.name;
      if (!m.has(key)) m.set(key, []);
      m.get(key).push([e.iter, o.value]);
    }
  }
  return [...m].map(([name, points]) => ({ name, points }));
}

function render() {
  const d = state.display;
  const series = (f) => d.map(e => [e.iter, f(e)]);
  lineChart('chart-loss', [
    { name: 'loss', points: series(e => e.loss) },
    { name: 'smoothed (average_loss)', points: series(e => e.smoothed_loss) },
  ], 'loss');
  const multi = new Set(state.test.map(e => e.net)).size > 1;
  lineChart('chart-test', byName(state.test, e => multi ? `#${e.net} ` : ''), 'test output');
  lineChart('chart-lr', [{ name: 'learning rate', points: series(e => e.lr) }], 'lr');
  // Caffe's first display has no rate yet (0 iterations timed).
  lineChart('chart-speed', [{ name: 'iter/s', points: series(e => e.iters_per_s).filter((p, i) => i > 0 || p[1] > 0) }], 'iterations / s');
  lineChart('chart-wait', [{ name: 'ms per iteration', points: series(e => e.data_wait_ms) }], 'ms');
  renderLayers();
  renderSummary();
  const snaps = document.getElementById('snapshots');
  if (state.snapshots.length) {
    snaps.innerHTML = state.snapshots.map(s => `<li>iteration ${s.iter}: ` +
      (s.files || []).map(f => { const n = f.split(/[\\/]/).pop(); return `<a href="/files/${encodeURIComponent(n)}">${esc(n)}</a>`; }).join(', ') + '</li>').join('');
  }
}

function renderLayers() {
  const last = [...state.display].reverse().find(e => e.layers && e.layers.length);
  const el = document.getElementById('layer-times');
  if (!last) { el.innerHTML = '<p class="empty">timed at the next display iteration</p>'; return; }
  document.getElementById('layer-iter').textContent = `(iteration ${last.iter}; forward blue, backward orange)`;
  const max = Math.max(1e-9, ...last.layers.map(l => Math.max(l.forward_ms, l.backward_ms)));
  el.innerHTML = '<table class="layers"><tr><th>layer</th><th>type</th><th>forward ms</th><th>backward ms</th><th></th></tr>' +
    last.layers.map(l => `<tr data-layer="${esc(l.name)}"><td>${esc(l.name)}</td><td>${esc(l.type)}</td><td>${fmt(l.forward_ms)}</td><td>${fmt(l.backward_ms)}</td>` +
      `<td class="bar"><div class="f" style="width:${(100 * l.forward_ms / max).toFixed(1)}%"></div><div class="b" style="width:${(100 * l.backward_ms / max).toFixed(1)}%"></div></td></tr>`).join('') +
    '</table>';
}

function renderSummary() {
  const s = state.start, d = state.display[state.display.length - 1];
  const parts = [];
  if (s) parts.push(`<span>solver <b>${esc(s.solver)}</b></span>`);
  if (d) {
    parts.push(`<span>iteration <b id="iter">${d.iter}</b>${s ? ' of ' + s.max_iter : ''}</span>`,
      `<span>loss <b>${fmt(d.smoothed_loss)}</b></span>`, `<span>lr <b>${fmt(d.lr)}</b></span>`,
      `<span><b>${fmt(d.iters_per_s)}</b> iter/s</span>`, `<span>data wait <b>${fmt(d.data_wait_ms)}</b> ms/iter</span>`);
  }
  document.getElementById('summary').innerHTML = parts.join('');
}

function loadNet() {
  const rd = document.getElementById('rankdir').value;
  fetch(`/net.svg?rankdir=${rd}`).then(r => r.ok ? r.text() : Promise.reject(r.status)).then(t => {
    document.getElementById('net').innerHTML = t;
    state.netLoaded = true;
  }).catch(() => {});
}
document.getElementById('rankdir').addEventListener('change', loadNet);

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

function handle(ev) {
  switch (ev.event) {
    case 'start':
      state.start = ev;
      document.getElementById('net-name').textContent = (ev.net && ev.net.name) || '';
      loadNet();
      break;
    case 'display': state.display.push(ev); break;
    case 'test': state.test.push(ev); break;
    case 'snapshot': state.snapshots.push(ev); break;
  }
}

const status = document.getElementById('status');
const source = new EventSource('/events');
// Each connection replays the whole history first: start over on (re)connect.
source.onopen = () => { reset(); status.textContent = 'live'; status.className = 'status live'; };
source.onerror = () => { status.textContent = 'disconnected; retrying'; status.className = 'status down'; };
source.onmessage = (m) => {
  let ev;
  try { ev = JSON.parse(m.data); } catch (e) { return; }
  handle(ev);
  schedule();
};
window.addEventListener('resize', schedule);
