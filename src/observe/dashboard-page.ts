/**
 * The live status page as one HTML document: CSS and script inline, no
 * external asset, no framework. The script opens the event stream at
 * api/events (relative, so the page also works behind a path prefix) and
 * renders each state it receives; EventSource reconnects by itself.
 */
export function dashboardPage(service: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>graft · ${escapeHtml(service)}</title>
<style>${STYLE}</style>
</head>
<body>
<header class="top">
  <div class="brand"><span class="mark">g</span><span class="name">graft</span><span class="sep">/</span><span id="service">${escapeHtml(service)}</span></div>
  <div class="conn"><span id="live-dot" class="dot"></span><span id="live">connecting…</span><span class="muted" id="updated"></span></div>
</header>
<main>
  <section class="cards">
    <div class="card"><div class="label">Generation</div><div class="big" id="generation">–</div><div class="sub" id="generation-sub"></div></div>
    <div class="card"><div class="label">Workers</div><div class="big" id="workers-count">–</div><div class="sub" id="workers-sub"></div></div>
    <div class="card"><div class="label">Config version</div><div class="big" id="config-version">–</div><div class="sub mono" id="config-sub"></div></div>
    <div class="card"><div class="label">Master</div><div class="big" id="master-state">–</div><div class="sub" id="master-sub"></div></div>
    <div class="card"><div class="label">Last reload</div><div class="big" id="last-reload">–</div><div class="sub" id="last-reload-sub"></div></div>
  </section>
  <div id="alerts"></div>
  <section class="panel">
    <h2>Workers</h2>
    <table id="workers">
      <thead><tr><th>PID</th><th>Gen</th><th>#</th><th>State</th><th>Uptime</th><th>Memory (RSS)</th><th class="num">In-flight</th><th class="num">Served</th><th class="num">Restarts</th><th>Config</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <div class="columns">
    <section class="panel">
      <h2>Config history</h2>
      <table id="history"><thead><tr><th>Version</th><th>When</th><th>Source</th><th>Changed</th><th>Outcome</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="panel">
      <h2>Recent reloads</h2>
      <table id="reloads"><thead><tr><th>When</th><th>Asked by</th><th>Generation</th><th class="num">Duration</th><th>Outcome</th></tr></thead><tbody></tbody></table>
      <h2 class="second">Recent swaps</h2>
      <table id="swaps"><thead><tr><th>When</th><th>Source</th><th>Modules</th><th class="num">Duration</th><th>Outcome</th></tr></thead><tbody></tbody></table>
    </section>
  </div>
</main>
<footer id="footer" class="muted"></footer>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
:root { --bg: #f5f6f8; --panel: #fff; --line: #e4e7ec; --text: #1d2433; --muted: #6b7385; --accent: #0f766e;
  --ok: #15803d; --ok-bg: #dcfce7; --warn: #b45309; --warn-bg: #fef3c7; --bad: #b91c1c; --bad-bg: #fee2e2; --info: #1d4ed8; --info-bg: #dbeafe; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif; }
.mono, td.mono { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.top { display: flex; align-items: center; justify-content: space-between; padding: 14px 28px; background: #111827; color: #f3f4f6; }
.brand { display: flex; align-items: center; gap: 10px; font-size: 17px; font-weight: 600; }
.mark { display: inline-grid; place-items: center; width: 28px; height: 28px; border-radius: 7px; background: var(--accent); color: #fff; font-weight: 700; }
.sep { color: #6b7280; font-weight: 400; }
.conn { display: flex; align-items: center; gap: 8px; font-size: 13px; }
.conn .muted { color: #9ca3af; margin-left: 6px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: #9ca3af; }
.dot.live { background: #22c55e; box-shadow: 0 0 0 3px rgba(34,197,94,.25); }
.dot.down { background: #f59e0b; }
main { padding: 22px 28px 8px; max-width: 1400px; margin: 0 auto; }
.cards { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 14px; margin-bottom: 16px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; min-width: 0; }
.label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; font-weight: 600; }
.big { font-size: 26px; font-weight: 650; margin-top: 4px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.sub { color: var(--muted); font-size: 12.5px; margin-top: 2px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px 6px; margin-bottom: 16px; min-width: 0; overflow-x: auto; }
.columns { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
.columns .panel { margin-bottom: 16px; }
h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 2px 0 10px; }
h2.second { margin-top: 18px; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-weight: 600; font-size: 12px; color: var(--muted); padding: 6px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
td { padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
tbody tr:last-child td { border-bottom: 0; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.empty { color: var(--muted); font-style: italic; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.b-ok { color: var(--ok); background: var(--ok-bg); } .b-warn { color: var(--warn); background: var(--warn-bg); }
.b-bad { color: var(--bad); background: var(--bad-bg); } .b-info { color: var(--info); background: var(--info-bg); }
.err { color: var(--bad); font-size: 12px; margin-top: 2px; max-width: 420px; overflow-wrap: anywhere; display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
.good { color: var(--ok); } .failed { color: var(--bad); }
.num-left { font-variant-numeric: tabular-nums; }
.mem { display: flex; align-items: center; gap: 8px; }
.bar { width: 70px; height: 6px; border-radius: 3px; background: #eef0f3; overflow: hidden; }
.bar i { display: block; height: 100%; background: var(--accent); }
tr.old td { color: var(--muted); }
.alert { background: var(--bad-bg); color: var(--bad); border: 1px solid #fecaca; border-radius: 10px; padding: 10px 14px; margin-bottom: 16px; font-weight: 500; }
footer { padding: 4px 28px 22px; max-width: 1400px; margin: 0 auto; font-size: 12px; }
@media (max-width: 1000px) { .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); } .columns { grid-template-columns: 1fr; } }
`;

const SCRIPT = `
'use strict';
const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return m + 'm' + String(s % 60).padStart(2, '0') + 's';
  const h = Math.floor(m / 60);
  if (h < 48) return h + 'h' + String(m % 60).padStart(2, '0') + 'm';
  return Math.floor(h / 24) + 'd' + String(h % 24).padStart(2, '0') + 'h';
}
const seconds = (ms) => ms < 1000 ? Math.round(ms) + ' ms' : (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
const mb = (bytes) => bytes > 0 ? (bytes / 1048576).toFixed(1) + ' MB' : '–';
function ago(iso, now) {
  const ms = Math.max(0, now - Date.parse(iso));
  return ms < 1500 ? 'just now' : duration(ms) + ' ago';
}
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });
const badge = (text, kind) => '<span class="badge b-' + kind + '">' + esc(text) + '</span>';
const STATE = { ready: 'ok', starting: 'info', draining: 'warn', exited: 'bad' };
const OUTCOME = { ok: 'ok', failed: 'bad', abandoned: 'warn', reload: 'info', unchanged: 'info' };
function rows(id, items, cols, render) {
  const body = $(id).tBodies[0];
  body.innerHTML = items.length ? items.map(render).join('') : '<tr><td class="empty" colspan="' + cols + '">none yet</td></tr>';
}
function render(s) {
  const m = s.status.master;
  const now = Date.parse(s.at);
  const live = s.status.workers.filter((w) => w.generation === m.generation && w.state !== 'exited');
  const ready = live.filter((w) => w.state === 'ready').length;
  $('generation').textContent = m.generation ?? '–';
  const old = s.status.workers.filter((w) => w.generation !== m.generation).length;
  $('generation-sub').textContent = m.reloading ? 'reload in progress' : old ? old + ' worker(s) of older generations draining' : 'master generation ' + (m.masterGeneration ?? 1);
  $('workers-count').textContent = ready + ' / ' + m.desired;
  $('workers-sub').textContent = m.crashLoop ? 'crash loop: replacements throttled' : ready === m.desired ? 'all ready' : (m.desired - ready) + ' not ready';
  if (m.config) {
    $('config-version').textContent = 'v' + m.config.version;
    $('config-sub').textContent = m.config.hash.slice(0, 12) + ' · ' + m.config.source;
  }
  $('master-state').textContent = m.state;
  $('master-sub').textContent = 'pid ' + m.pid + ' · up ' + duration(m.uptimeMs) + (m.busy ? ' · running ' + m.busy + (m.queued ? ' (+' + m.queued + ')' : '') : '');
  const r = m.lastReload;
  $('last-reload').innerHTML = r ? '<span class="' + (r.outcome === 'ok' ? 'good' : 'failed') + '">' + esc(r.outcome) + '</span>' : '–';
  $('last-reload-sub').textContent = r ? ago(r.at, now) + ' · ' + r.reason + (r.outcome === 'ok' ? ' → gen ' + r.generation : '') : 'none since start';
  const alerts = [];
  if (m.crashLoop) alerts.push('Workers are crash-looping (GRAFT_CRASH_LOOP): replacements are throttled; see the master log.');
  const latest = s.history[0];
  if (m.config && latest && !latest.accepted) alerts.push('Config v' + latest.version + ' was rejected (' + (latest.code || 'error') + '): the live config stays v' + m.config.version + '. The config history below says why.');
  $('alerts').innerHTML = alerts.map((a) => '<div class="alert">' + esc(a) + '</div>').join('');
  const maxRss = Math.max(1, ...s.status.workers.map((w) => w.rss));
  rows('workers', s.status.workers, 10, (w) =>
    '<tr class="' + (w.generation === m.generation ? '' : 'old') + '" data-pid="' + w.pid + '" data-generation="' + w.generation + '">' +
    '<td class="num-left">' + w.pid + '</td><td>' + w.generation + '</td><td>' + w.index + '</td><td>' + badge(w.state, STATE[w.state] || 'info') + '</td>' +
    '<td>' + duration(w.uptimeMs) + '</td><td><div class="mem"><div class="bar"><i style="width:' + Math.round((w.rss / maxRss) * 100) + '%"></i></div>' + mb(w.rss) + '</div></td>' +
    '<td class="num">' + w.inFlight + '</td><td class="num">' + w.served + '</td><td class="num">' + w.restarts + '</td><td>' + (w.configVersion ? 'v' + w.configVersion : '–') + '</td></tr>');
  rows('history', s.history, 5, (h) => {
    const changed = h.changed.length ? h.changed.slice(0, 4).join(', ') + (h.changed.length > 4 ? ' +' + (h.changed.length - 4) : '') : '–';
    const outcome = h.accepted ? badge(h.mode === 'reload' ? 'applied (reload)' : 'applied', 'ok') : badge('rejected', 'bad') + '<div class="err" title="' + esc((h.code ? h.code + ': ' : '') + (h.error || '')) + '">' + esc((h.code ? h.code + ': ' : '') + (h.error || '')) + '</div>';
    return '<tr><td>v' + h.version + '</td><td title="' + esc(h.at) + '">' + clock(h.at) + '</td><td>' + esc(h.source) + '</td><td class="mono">' + esc(changed) + '</td><td>' + outcome + '</td></tr>';
  });
  rows('reloads', s.activity.reloads, 5, (e) => {
    const gens = e.outcome === 'ok' ? (e.previous !== undefined ? e.previous + ' → ' : '') + e.generation : 'stayed ' + (e.generation ?? '–');
    const outcome = badge(e.outcome, OUTCOME[e.outcome] || 'info') + (e.error ? '<div class="err">' + esc((e.code ? e.code + ': ' : '') + e.error) + '</div>' : '');
    return '<tr><td title="' + esc(e.at) + '">' + clock(e.at) + '</td><td>' + esc(e.reason) + '</td><td>' + esc(gens) + '</td><td class="num">' + seconds(e.durationMs) + '</td><td>' + outcome + '</td></tr>';
  });
  rows('swaps', s.activity.swaps, 5, (e) => {
    const outcome = badge(e.outcome, OUTCOME[e.outcome] || 'info') + (e.error ? '<div class="err">' + esc((e.code ? e.code + ': ' : '') + e.error) + '</div>' : '');
    return '<tr><td title="' + esc(e.at) + '">' + clock(e.at) + '</td><td>' + esc(e.source) + '</td><td class="mono">' + esc(e.modules.join(', ') || '–') + '</td><td class="num">' + seconds(e.durationMs) + '</td><td>' + outcome + '</td></tr>';
  });
  $('updated').textContent = 'updated ' + clock(s.at);
  $('footer').textContent = 'graft ' + s.graft.version + ' · node ' + s.graft.node + ' · port ' + m.port + ' · ' + m.entry + ' · read-only';
}
function connect() {
  const events = new EventSource('api/events');
  events.onopen = () => { $('live').textContent = 'live'; $('live-dot').className = 'dot live'; };
  events.onmessage = (e) => { $('live').textContent = 'live'; $('live-dot').className = 'dot live'; render(JSON.parse(e.data)); };
  events.onerror = () => { $('live').textContent = 'reconnecting…'; $('live-dot').className = 'dot down'; };
}
connect();
`;
