// Seawall's dashboard: one Server-Sent Events stream, standard APIs only.
// The stream starts with the full view ("snapshot") and then sends, each
// second, what changed ("tick"). Every value from the server is escaped
// before it reaches the page.
'use strict';

const $ = (sel) => document.querySelector(sel);
// put replaces an element's content only when it changed, so that a
// button being clicked, focus and selection survive the ticks.
const put = (el, html) => { if (el._html !== html) { el._html = html; el.innerHTML = html; } };
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const rank = { down: 0, degraded: 1, ok: 2 };
const shapes = { down: '■', degraded: '▲', ok: '●' };
const breakerShapes = { open: '■', 'half-open': '◆', closed: '●', disabled: '–' };
const keep = 180; // history points: 15 minutes of 5 s steps

let csrf = '';
let es = null;
let view = null; // the snapshot, kept current by the ticks
let selected = '';
let serverSkew = 0; // server clock minus ours, in ms
let lastTick = 0;

async function api(method, path) {
  const opts = { method, credentials: 'same-origin', headers: {} };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf;
  const r = await fetch(path, opts);
  const body = r.headers.get('Content-Type')?.includes('json') ? await r.json() : null;
  if (!r.ok) throw new Error((body && (body.detail || body.title)) || r.status + ' ' + r.statusText);
  return body;
}

async function start() {
  let s = null;
  try { s = await api('GET', '/dashboard/session'); } catch (e) { /* Seawall away: try again below */ }
  if (!s) { $('#live').textContent = 'Seawall does not answer; trying again…'; setTimeout(start, 2000); return; }
  if (!s.logged_in) { showLogin(''); return; }
  csrf = s.csrf;
  showMain();
  connect();
}

function showLogin(msg) {
  if (es) { es.close(); es = null; }
  view = null;
  $('#main').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = msg;
  $('#live').textContent = 'logged out';
}

function showMain() {
  $('#login').hidden = true;
  $('#main').hidden = false;
  $('#logout').hidden = false;
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const r = await fetch('/login', { method: 'POST', credentials: 'same-origin', body: new URLSearchParams({ token: $('#token').value }) });
  $('#token').value = '';
  if (!r.ok) { showLogin('That is not the admin token.'); return; }
  csrf = (await r.json()).csrf;
  showMain();
  connect();
});

$('#logout').addEventListener('click', async () => {
  await fetch('/logout', { method: 'POST', credentials: 'same-origin' });
  showLogin('');
});

function connect() {
  if (es) es.close();
  $('#live').textContent = 'connecting…';
  es = new EventSource('/dashboard/stream');
  es.addEventListener('snapshot', (e) => {
    const v = JSON.parse(e.data);
    v.byName = new Map(v.upstreams.map((c) => [c.name, c]));
    view = v;
    clock(v.at);
    render();
    if (window.seawallFirstRender === undefined) window.seawallFirstRender = performance.now();
  });
  es.addEventListener('tick', (e) => {
    if (!view) return;
    apply(JSON.parse(e.data));
    render();
  });
  es.onerror = () => {
    $('#live').textContent = 'reconnecting…';
    if (es.readyState === EventSource.CLOSED) setTimeout(start, 2000); // refused: logged out, or Seawall restarted
  };
}

function clock(at) {
  lastTick = Date.now();
  serverSkew = Date.parse(at) - lastTick;
}
const now = () => Date.now() + serverSkew;

function apply(t) {
  clock(t.at);
  for (const c of t.upstreams || []) view.byName.set(c.name, c);
  for (const n of t.removed || []) { view.byName.delete(n); delete view.history[n]; }
  for (const [n, p] of Object.entries(t.points || {})) {
    const h = view.history[n] ||= { end: 0, rps: [], p50_ms: [], p99_ms: [], failing: [] };
    if (p[0] <= h.end) continue;
    h.end = p[0];
    [h.rps, h.p50_ms, h.p99_ms, h.failing].forEach((col, i) => { col.push(p[i + 1]); if (col.length > keep) col.shift(); });
  }
  if (t.incidents) view.incidents = t.incidents;
  if (t.events) {
    const seen = new Set(view.events.map((e) => e.id));
    for (const e of t.events) if (!seen.has(e.id)) view.events.push(e);
    if (view.events.length > 200) view.events.splice(0, view.events.length - 200);
  }
  if (t.cluster) view.cluster = t.cluster;
}

function ago(ts) {
  if (!ts) return '';
  let s = Math.max(0, Math.round((now() - Date.parse(ts)) / 1000));
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60); s %= 60;
  if (m < 60) return m + 'm ' + s + 's';
  return Math.floor(m / 60) + 'h ' + (m % 60) + 'm';
}
const fmt = (v, d = 1) => (v === undefined || v === null ? '–' : Number(v).toFixed(d).replace(/\.0+$/, ''));
const pct = (v) => (v === undefined || v === null ? '–' : Math.round(v * 100) + '%');
const sorted = () => [...view.byName.values()].sort((a, b) => rank[a.health] - rank[b.health] || a.name.localeCompare(b.name));

function failing(tr) {
  let all = 0; let bad = 0;
  for (const [k, v] of Object.entries(tr.answers || {})) { all += v; if (k === '429' || k.startsWith('5')) bad += v; }
  for (const v of Object.values(tr.seawall || {})) { all += v; bad += v; }
  return all ? bad / all : 0;
}

// vendorRate is the calls a second made to the vendor in the last step,
// retries included: what its rate limit counts.
const vendorRate = (tr) => tr.calls_ps || 0;

function limiterText(c) {
  const l = c.rate_limit || {};
  const parts = [];
  if (l.effective_per_second) parts.push(fmt(l.effective_per_second) + '/s' + (l.adaptive ? ' learned' : ''));
  else parts.push(l.adaptive ? 'no limit until a 429' : 'unlimited');
  if (c.paused_for_seconds > 0) parts.push('paused ' + Math.ceil(c.paused_for_seconds) + 's' + (l.pause_reason ? ' (' + l.pause_reason + ')' : ''));
  if (l.scope === 'global') parts.push('global');
  if (l.degraded) parts.push(l.degraded);
  return parts.join(', ');
}

function render() {
  const list = sorted();
  $('#live').textContent = 'live · ' + new Date(now()).toLocaleTimeString();
  $('#ups-count').textContent = '(' + list.length + ')';
  put($('#ups tbody'), list.map((c) => {
    const tr = c.traffic || {};
    const q = c.usage?.quota;
    const jobs = c.jobs ? Object.entries(c.jobs.by_state).filter(([s]) => s === 'queued' || s === 'running' || s === 'retrying').reduce((n, [, v]) => n + v, 0) : null;
    return `<tr data-upstream="${esc(c.name)}" data-health="${esc(c.health)}"${c.name === selected ? ' class="selected"' : ''}>
      <td class="health ${esc(c.health)}">${shapes[c.health] || ''} ${esc(c.health.toUpperCase())}</td>
      <td><button type="button" class="name" data-action="select" data-name="${esc(c.name)}">${esc(c.name)}</button></td>
      <td class="why hide-narrow">${esc((c.why || []).join('; '))}</td>
      <td class="state ${esc(c.breaker)}" data-field="breaker">${breakerShapes[c.breaker] || ''} ${esc(c.breaker)}${c.breaker_since && c.breaker !== 'closed' ? ' ' + ago(c.breaker_since) : ''}</td>
      <td class="num">${fmt(tr.rps)}</td>
      <td class="num">${pct(failing(tr))}</td>
      <td class="num">${fmt(tr.p50_ms)} / ${fmt(tr.p99_ms)}</td>
      <td class="hide-narrow">${esc(limiterText(c))}</td>
      <td class="num hide-narrow">${c.cache ? pct(c.cache.hit_ratio) : '–'}</td>
      <td class="num hide-narrow">${jobs === null ? '–' : jobs + (c.jobs.dead ? ' · ' + c.jobs.dead + ' dead' : '')}</td>
      <td class="num hide-narrow">${esc(c.usage?.today?.billable ?? 0)}${q && q.daily ? ' of ' + esc(q.daily) : ''}</td>
    </tr>`;
  }).join(''));
  renderDetail();
  renderIncidents();
  renderEvents();
  renderCluster();
}

function spark(cols, label) {
  const [a, b] = cols;
  const n = Math.max(a.length, 2);
  const top = Math.max(1e-9, ...a, ...(b || []));
  const line = (s) => s.map((v, i) => `${((i / (n - 1)) * 300).toFixed(1)},${(46 - (v / top) * 44).toFixed(1)}`).join(' ');
  return `<svg class="spark" viewBox="0 0 300 48" preserveAspectRatio="none" role="img" aria-label="${esc(label)}">
    <polyline class="a" points="${line(a)}"/>${b ? `<polyline class="b" points="${line(b)}"/>` : ''}</svg>`;
}

function renderDetail() {
  const c = view.byName.get(selected);
  $('#detail').hidden = !c;
  const d = $('#detail-body');
  if (!c) { put(d, ''); return; }
  const h = view.history[c.name] || { rps: [], p50_ms: [], p99_ms: [], failing: [] };
  const tr = c.traffic || {};
  const l = c.rate_limit || {};
  const u = c.usage || {};
  const answers = Object.entries(tr.answers || {}).map(([k, v]) => `${esc(k)}: ${fmt(v)}/s`).join(', ') || 'none';
  const refused = Object.entries(tr.refused || {}).map(([k, v]) => `${esc(k)}: ${fmt(v)}/s`).join(', ') || 'none';
  const own = Object.entries(tr.seawall || {}).map(([k, v]) => `${esc(k)}: ${fmt(v)}/s`).join(', ') || 'none';
  const zones = {};
  for (const e of c.endpoints || []) (zones[e.zone || '(no zone)'] ||= []).push(e);
  const eps = Object.entries(zones).map(([z, list]) => `
    <h3>Zone ${esc(z)} ${z !== '(no zone)' ? `<button type="button" data-action="shift-zone" data-zone="${esc(z)}">Shift traffic away from zone ${esc(z)}</button>` : ''}</h3>
    <div class="scroll"><table><thead><tr><th>Endpoint</th><th>State</th><th>Why</th><th class="num hide-narrow">calls</th><th class="num hide-narrow">failing</th><th class="num hide-narrow">p90 ms</th><th></th></tr></thead><tbody>
    ${list.map((e) => `<tr data-endpoint="${esc(e.url)}"><td class="url">${esc(e.url)}</td>
      <td class="state ${esc(e.state)}" data-field="endpoint-state">${e.state === 'healthy' ? '●' : '■'} ${esc(e.state)}${e.shifted ? ' (shifted)' : ''}</td>
      <td data-field="endpoint-reason">${esc(e.reason || '')}</td><td class="num hide-narrow">${esc(e.calls)}</td><td class="num hide-narrow">${pct(e.failure_rate)}</td>
      <td class="num hide-narrow">${fmt(e.p90_ms)}</td>
      <td><button type="button" data-action="shift-endpoint" data-endpoint="${esc(e.url)}">Shift away</button></td></tr>`).join('')}
    </tbody></table></div>`).join('');
  const shifts = (c.shifts || []).map((s) => `<li>${esc(s.zone ? 'zone ' + s.zone : s.endpoint)} until ${esc(new Date(s.until).toLocaleTimeString())}
    <button type="button" data-action="end-shift" data-id="${esc(s.id)}">End shift ${esc(s.id)}</button></li>`).join('');
  const jobs = c.jobs ? Object.entries(c.jobs.by_state).map(([s, n]) => `${esc(s)}: ${esc(n)}`).join(', ') : '';
  const q = u.quota;
  put(d, `<h2>${esc(c.name)} <span class="health ${esc(c.health)}">${shapes[c.health]} ${esc(c.health)}</span>
      <button type="button" data-action="select" data-name="">Close</button></h2>
    <p>${esc(c.url)}${c.zone ? ' · this Seawall is in zone ' + esc(c.zone) : ''}</p>
    <p>${esc((c.why || []).join('; '))}</p>
    <div class="grid">
      <div class="box"><h3>Requests a second (15 min)</h3>${spark([h.rps])}</div>
      <div class="box"><h3>Latency p50 (solid) and p99 (dashed), ms</h3>${spark([h.p50_ms, h.p99_ms], 'latency')}</div>
      <div class="box"><dl>
        <dt>Breaker</dt><dd class="state ${esc(c.breaker)}">${breakerShapes[c.breaker] || ''} ${esc(c.breaker)}${c.breaker_since ? ' for ' + ago(c.breaker_since) : ''}</dd>
        <dt>Vendor answers</dt><dd>${answers}</dd>
        <dt>Seawall refused</dt><dd>${refused}</dd>
        <dt>Seawall answered</dt><dd>${own}</dd>
      </dl></div>
      <div class="box"><dl>
        <dt>Rate</dt><dd>${l.configured_per_second ? fmt(l.configured_per_second) + '/s configured, ' : ''}${l.effective_per_second ? fmt(l.effective_per_second) + '/s now' : 'no limit now'}${l.adaptive ? ' (learned from the vendor\'s 429s)' : ''}</dd>
        <dt>Use</dt><dd>${vendorRate(tr) ? fmt(vendorRate(tr)) + ' calls/s to the vendor' + (l.effective_per_second ? ', ' + pct(vendorRate(tr) / l.effective_per_second) + ' of the rate' : '') : 'no calls to the vendor'}</dd>
        <dt>Scope</dt><dd>${esc(l.scope || 'local')}${l.degraded ? ' — ' + esc(l.degraded) : ''}</dd>
        <dt>Pause</dt><dd>${c.paused_for_seconds > 0 ? Math.ceil(c.paused_for_seconds) + 's left: ' + esc(l.pause_reason) : 'none'}</dd>
        <dt>Vendor quota</dt><dd>${l.quota_remaining >= 0 ? esc(l.quota_remaining) + ' left' : 'not stated'}</dd>
      </dl></div>
      <div class="box"><dl>
        <dt>Cache hits (5 min)</dt><dd>${c.cache ? pct(c.cache.hit_ratio) + ' of ' + fmt(c.cache.lookups, 0) + ', ' + fmt(c.cache.stale, 0) + ' stale' : 'no cached calls'}</dd>
        <dt>Jobs</dt><dd>${jobs || 'none'}${c.jobs?.oldest ? '; oldest waiting ' + ago(c.jobs.oldest) : ''}</dd>
        <dt>Dead letters</dt><dd>${c.jobs?.dead || 0} ${c.jobs?.dead ? '<button type="button" data-action="replay">Replay dead letters</button>' : ''}</dd>
      </dl></div>
      <div class="box"><dl>
        <dt>Calls today</dt><dd>${esc(u.today?.billable ?? 0)} billable, ${saved(u.today)} saved${u.today?.spent ? ', ' + esc(u.today.spent) + ' ' + esc(u.currency) : ''}</dd>
        <dt>This month</dt><dd>${esc(u.this_month?.billable ?? 0)} billable${u.this_month?.spent ? ', ' + esc(u.this_month.spent) + ' ' + esc(u.currency) : ''}</dd>
        <dt>Quota</dt><dd>${q ? pct(q.share) + ' used' + (q.daily ? ` (${esc(q.used_today)} of ${esc(q.daily)} today)` : '') + (q.monthly ? ` (${esc(q.used_this_month)} of ${esc(q.monthly)} this month)` : '') : 'none'}</dd>
        ${u.cluster ? `<dt>Cluster</dt><dd>${esc(JSON.stringify(u.cluster))}</dd>` : ''}
      </dl></div>
    </div>
    ${eps ? '<h3>Endpoints by zone</h3>' + eps : ''}
    ${shifts ? '<h3>Shifts in force</h3><ul>' + shifts + '</ul>' : ''}`);
}

function renderIncidents() {
  const list = view.incidents || [];
  put($('#incidents'), list.length ? list.map((i) => `<div class="box" data-incident="${esc(i.id)}">
    <h3><span class="sev-${esc(i.severity)}">${esc(i.severity)}</span> · ${esc(i.upstream)} · open for ${ago(i.opened)}</h3>
    <p>${esc(i.summary)}</p><p class="muted">held open by: ${esc((i.conditions || []).join(', ') || 'nothing (quiet period)')}</p>
    <ol class="events">${view.events.filter((e) => e.incident === i.id).slice(-20).map((e) => `<li>${esc(new Date(e.time).toLocaleTimeString())} <span class="sev-${esc(e.severity)}">${esc(e.type)}</span> ${esc(e.summary)}</li>`).join('')}</ol>
  </div>`).join('') : '<p class="muted">None.</p>');
}

function renderEvents() {
  put($('#events'), view.events.slice(-50).reverse().map((e) => `<li data-type="${esc(e.type)}">${esc(new Date(e.time).toLocaleTimeString())}
    <span class="sev-${esc(e.severity)}">${esc(e.severity)}</span> <strong>${esc(e.type)}</strong> ${esc(e.upstream || '')} ${esc(e.summary)}</li>`).join(''));
}

function renderCluster() {
  const c = view.cluster;
  $('#cluster-s').hidden = !c || !c.shared;
  if (!c || !c.shared) return;
  put($('#cluster'), `<p>Redis ${c.redis_up ? '● up' : '■ DOWN'}${c.error ? ': ' + esc(c.error) : ''}${(c.disagree || []).length ? ' · ▲ replicas disagree on ' + esc(c.disagree.join(', ')) : ''}</p>
    <table><thead><tr><th>Replica</th><th>Zone</th><th>Version</th></tr></thead><tbody>
    ${(c.replicas || []).map((r) => `<tr><td>${esc(r.id)}${r.id === c.self ? ' (this one)' : ''}</td><td>${esc(r.zone)}</td><td>${esc(r.version)}</td></tr>`).join('')}
    </tbody></table>`);
}

// Every action is confirmed on the page first, then sent with the CSRF
// token; what it did shows in the timeline, from the stream.
function confirmThen(text, fn) {
  $('#confirm-text').textContent = text;
  $('#confirm').hidden = false;
  $('#confirm-yes').onclick = async () => {
    $('#confirm').hidden = true;
    try { notice(await fn()); } catch (e) { notice('Refused: ' + e.message); }
  };
  $('#confirm-no').onclick = () => { $('#confirm').hidden = true; };
  $('#confirm-yes').focus();
}

function notice(text) {
  const n = $('#notice');
  n.textContent = text;
  n.hidden = false;
}

const saved = (f) => (f ? (f.saved_by_cache || 0) + (f.saved_by_dedup || 0) + (f.saved_by_failing_fast || 0) : 0);
const q = (o) => new URLSearchParams(o).toString();

document.addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-action]');
  if (!b) return;
  const up = selected;
  switch (b.dataset.action) {
    case 'select':
      selected = b.dataset.name === selected ? '' : b.dataset.name;
      render();
      break;
    case 'shift-zone':
      confirmThen(`Shift ${up}'s traffic away from zone ${b.dataset.zone} for 1 hour?`, async () => {
        const s = await api('POST', '/admin/shifts?' + q({ upstream: up, zone: b.dataset.zone, for: '1h' }));
        return `Shift ${s.id}: ${up} zone ${b.dataset.zone} until ${new Date(s.until).toLocaleTimeString()}.`;
      });
      break;
    case 'shift-endpoint':
      confirmThen(`Shift ${up}'s traffic away from ${b.dataset.endpoint} for 1 hour?`, async () => {
        const s = await api('POST', '/admin/shifts?' + q({ upstream: up, endpoint: b.dataset.endpoint, for: '1h' }));
        return `Shift ${s.id}: ${b.dataset.endpoint} until ${new Date(s.until).toLocaleTimeString()}.`;
      });
      break;
    case 'end-shift':
      confirmThen(`End shift ${b.dataset.id}?`, async () => {
        await api('DELETE', '/admin/shifts/' + encodeURIComponent(b.dataset.id));
        return `Shift ${b.dataset.id} ended.`;
      });
      break;
    case 'replay':
      confirmThen(`Replay ${up}'s dead letters now?`, async () => {
        const r = await api('POST', '/admin/dead/replay?' + q({ upstream: up }));
        return `${r.replayed} dead letters replayed.`;
      });
      break;
  }
});

document.addEventListener('submit', (ev) => {
  const f = ev.target.closest('form[data-action="purge"]');
  if (!f) return;
  ev.preventDefault();
  const up = selected;
  const path = new FormData(f).get('path') || '/';
  confirmThen(`Purge ${up}'s cached answers under ${path}?`, async () => {
    const r = await api('POST', '/admin/cache/purge?' + q({ upstream: up, path }));
    return `${r.purged} cached answers purged.`;
  });
});

// A page left open shows how stale it is when the stream stops.
setInterval(() => {
  if (view && lastTick && Date.now() - lastTick > 5000) $('#live').textContent = 'no update for ' + Math.round((Date.now() - lastTick) / 1000) + 's — reconnecting…';
}, 1000);

start();
