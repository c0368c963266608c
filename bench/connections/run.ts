/**
 * bench/connections: long-lived connections and job workers through reloads,
 * graft against PM2 (cluster mode, its documented graceful pattern), the same
 * apps (this folder, plain .mjs, no graft import), 2 workers each, in one run.
 *
 * 1. WebSocket (ws-echo.mjs): N clients each sending a numbered message every
 *    50 ms, each answered 100 ms later, through R reloads: messages the server
 *    read and never answered, abnormal closes (not 1000/1001), the time from a
 *    reload command to the old processes gone.
 * 2. Socket.IO (socketio-app.mjs), default transports; graft with --sticky,
 *    PM2 as a user runs it (cluster mode has no sticky sessions): connect
 *    errors and lost acks over a steady phase (per minute), then per reload.
 * 3. BullMQ (bull-worker.mjs): J jobs of 100-300 ms, a batch before each of R
 *    reloads: jobs lost, run twice, stalled, taken after their worker's drain
 *    began, from the records each job leaves in Redis (127.0.0.1:6379).
 *
 *   node --import tsx bench/connections/run.ts [--clients N] [--reloads N] [--quick] ...
 *
 * Everything on 127.0.0.1; every phase is bounded in time; every process,
 * client and queue started here is stopped or removed on the way out.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { io, type Socket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { isAlive, onCleanup, runMain, tempDir } from '../lib/cleanup.js';
import { Graft } from '../lib/graft-driver.js';
import { log } from '../lib/log.js';
import { parseOptions } from '../lib/options.js';
import { Pm2 } from '../lib/pm2-driver.js';
import { host, markdownTable, num, packageVersion, resultsHead, times, writeResults } from '../lib/report.js';
import { max, mean, ratio } from '../lib/stats.js';
import { sleep, waitUntil } from '../lib/wait.js';

// ---------------------------------------------------------------- configuration

const APPS = ['ws', 'socketio', 'bullmq'] as const;
type App = (typeof APPS)[number];

const { values, quick, resultsPath } = parseOptions('connections', {
  clients: { default: 20, quick: 5, min: 1, env: 'BENCH_CLIENTS', help: 'WebSocket and Socket.IO clients' },
  reloads: { default: 5, quick: 2, min: 1, env: 'BENCH_RELOADS', help: 'reloads per app, per supervisor' },
  steady: { default: 20, quick: 5, min: 1, env: 'BENCH_STEADY', unit: 'S', help: 'Socket.IO steady phase (connecting included) before its reloads' },
  jobs: { default: 1000, quick: 200, min: 1, env: 'BENCH_JOBS', help: 'BullMQ jobs of 100-300 ms' },
  feed: { default: 15, quick: 5, min: 1, env: 'BENCH_FEED', unit: 'S', help: 'BullMQ jobs are added evenly over this time, the reloads spread over it' },
  gap: { default: 1000, quick: 500, min: 0, env: 'BENCH_RELOAD_GAP_MS', unit: 'MS', help: 'pause once a reload is over (old processes gone, every client back)' },
  workers: { default: 2, min: 1, env: 'BENCH_WORKERS', help: 'workers under each supervisor' },
  apps: { type: 'string', default: APPS.join(','), help: `which apps, of ${APPS.join(',')}` },
});

const config = {
  clients: values.clients,
  reloads: values.reloads,
  steadyS: values.steady,
  jobs: values.jobs,
  feedS: values.feed,
  gapMs: values.gap,
  workers: values.workers,
  apps: values.apps.split(',').filter(Boolean) as App[],
  /** A WebSocket client's message interval; the app echoes after 100 ms. */
  wsIntervalMs: 50,
  /** A Socket.IO client's `work` interval, and how long it waits for an ack. */
  sioIntervalMs: 50,
  ackTimeoutMs: 5000,
  /** How long every client may take to be back on a live worker after a reload. */
  backWithinMs: 20_000,
  jobsWithinMs: 120_000,
};
for (const a of config.apps) if (!APPS.includes(a)) throw new Error(`--apps: unknown app ${JSON.stringify(a)} (of ${APPS.join(',')})`);

const PEERS = ['graft', 'PM2'] as const;
type PeerName = (typeof PEERS)[number];
const redisAt = { host: '127.0.0.1', port: 6379 };

// ------------------------------------------------------ the two supervisors

interface Reload {
  ok: boolean;
  /** Reload command issued -> command returned. */
  commandMs: number;
  /** Reload command issued -> every process of the old generation gone. */
  oldGoneMs: number | undefined;
  /** Every client was back on a live worker within backWithinMs (apps with clients). */
  back?: boolean;
  note?: string;
}

/** One app under graft or PM2, reloaded the same way: the command, then its old processes gone. */
interface Peer {
  name: PeerName;
  port: number;
  reload(): Promise<Reload>;
  /** Old workers killed for outliving graft's graceful timeout or PM2's --kill-timeout. */
  killed(): number;
  /** Old workers still alive. */
  leftovers(): number[];
  stop(): Promise<void>;
}

async function startPeer(name: PeerName, app: string, options: { env?: NodeJS.ProcessEnv; graftArgs?: string[] } = {}): Promise<Peer> {
  const script = `bench/connections/${app}`;
  if (name === 'graft') {
    const g = await Graft.start({ entry: script, workers: config.workers, args: options.graftArgs ?? [], env: options.env ?? {} });
    let last: number | undefined;
    return {
      name,
      port: g.port,
      async reload() {
        const r = await g.reload();
        const t0 = r.command.startedAt;
        const rec: Reload = { ok: r.ok, commandMs: r.command.endedAt - t0, oldGoneMs: undefined };
        if (r.generation !== undefined) last = r.generation;
        if (!r.ok) rec.note = `exit ${r.command.code}${r.command.timedOut ? ' (timed out)' : ''}: ${(r.command.stderr || r.command.stdout).trim().slice(0, 300)}`;
        else if (r.previous !== undefined) {
          const gone = await g.gone(r.previous, 60_000);
          if (gone !== undefined) rec.oldGoneMs = gone - t0;
          else {
            rec.ok = false;
            rec.note = `generation ${r.previous} not gone 60 s after its reload`;
          }
        }
        return rec;
      },
      killed: () => g.killedAfterTimeout(),
      leftovers: () => (last !== undefined ? g.leftovers(last) : []),
      stop: () => g.stop(),
    };
  }
  const p = await Pm2.start({ app: app.replace(/\.mjs$/, ''), script, workers: config.workers, env: options.env ?? {} });
  return {
    name,
    port: p.port,
    async reload() {
      const r = await p.reload();
      const t0 = r.command.startedAt;
      const rec: Reload = {
        ok: r.ok,
        commandMs: r.command.endedAt - t0,
        oldGoneMs: r.oldGoneAt !== undefined ? Math.max(r.oldGoneAt, r.command.endedAt) - t0 : undefined,
      };
      if (!r.ok) {
        rec.note =
          `exit ${r.command.code}${r.command.timedOut ? ' (timed out)' : ''}; old pids ${r.oldPids.join(',')}; ` +
          `${r.confirmed ? 'confirmed gone' : `last jlist ${r.seen || '(empty)'}`}; ${(r.command.stderr || r.command.stdout).trim().slice(-200)}`;
      }
      return rec;
    },
    killed: () => p.killedAfterTimeout(),
    leftovers: () => p.leftovers(),
    stop: () => p.stop(),
  };
}

/** R reloads, each followed by `back` holding (every client on a live worker) and the gap. */
async function reloadAll(peer: Peer, what: string, back: () => boolean = () => true): Promise<Reload[]> {
  const out: Reload[] = [];
  for (let i = 0; i < config.reloads; i++) {
    const r = await peer.reload();
    const t = performance.now();
    r.back = await waitUntil(back, config.backWithinMs, 50);
    log(
      `${peer.name} ${what} reload ${i + 1}/${config.reloads}: ${r.ok ? 'ok' : 'FAILED'}, command ${num(r.commandMs)} ms, old gone ${num(r.oldGoneMs)} ms, ` +
        `${r.back ? `clients back ${num(performance.now() - t)} ms later` : `clients NOT all back ${config.backWithinMs / 1000} s later`}${r.note ? ` (${r.note})` : ''}`,
    );
    out.push(r);
    await sleep(config.gapMs);
  }
  return out;
}

/** What every app's table shows of its reloads. */
function reloadRows(runs: Array<{ reloads: Reload[]; killed: number; leftovers: number }>): string[][] {
  const gone = (rs: Reload[]) => rs.flatMap((r) => (r.oldGoneMs !== undefined ? [r.oldGoneMs] : []));
  const backRow = runs.some((r) => r.reloads.some((x) => x.back !== undefined))
    ? [[`… after which every client was back on a live worker within ${config.backWithinMs / 1000} s`, ...runs.map((r) => `${r.reloads.filter((x) => x.back).length}/${r.reloads.length}`)]]
    : [];
  return [
    ['reloads that succeeded', ...runs.map((r) => `${r.reloads.filter((x) => x.ok).length}/${r.reloads.length}`)],
    ...backRow,
    ['reload command → old processes gone, mean / max', ...runs.map((r) => `${num(mean(gone(r.reloads)))} / ${num(max(gone(r.reloads)))} ms`)],
    ['old workers killed for outliving the graceful / kill timeout', ...runs.map((r) => String(r.killed))],
    ['old workers still alive at the end', ...runs.map((r) => String(r.leftovers))],
  ];
}

/** `graft ÷ PM2: reload → old processes gone 0.20×` and what else the app compares. */
function ratioLine(runs: Array<{ name: PeerName; reloads: Reload[] }>, more: string[]): string[] {
  const g = runs.find((r) => r.name === 'graft');
  const p = runs.find((r) => r.name === 'PM2');
  if (!g || !p) return [];
  const gone = (rs: Reload[]) => mean(rs.flatMap((r) => (r.oldGoneMs !== undefined ? [r.oldGoneMs] : [])));
  return [`graft ÷ PM2: reload command → old processes gone ${x(gone(g.reloads), gone(p.reloads))}${more.map((m) => `; ${m}`).join('')}.`, ''];
}

function reloadNotes(name: string, reloads: Reload[]): string[] {
  const bad = reloads.filter((r) => !r.ok);
  return bad.length ? [`${name}: ${bad.length} reloads with a problem:`, '', ...bad.slice(0, 5).map((r) => `- ${r.note ?? 'failed'}`), ''] : [];
}

const perReload = (n: number) => (n / config.reloads).toFixed(1);
const x = (a: number | undefined, b: number | undefined) => times(ratio(a, b), { small: 0.1, smallDigits: 3 });
const counts = (xs: Array<string | number>) => {
  const m = new Map<string, number>();
  for (const v of xs) m.set(String(v), (m.get(String(v)) ?? 0) + 1);
  return [...m].map(([k, n]) => `${k} ×${n}`).join(', ') || '-';
};

/**
 * What the servers read: the apps append `<client> <message> [<readyState>]` to
 * READS_DIR/<pid> as they read each message. client -> message -> readyState ('' if not recorded).
 */
function readsIn(dir: string): Map<string, Map<number, string>> {
  const out = new Map<string, Map<number, string>>();
  for (const file of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) {
      const [client, n, state] = line.split(' ');
      if (!client || n === undefined) continue;
      let m = out.get(client);
      if (!m) out.set(client, (m = new Map()));
      m.set(Number(n), state ?? '');
    }
  }
  return out;
}

// ------------------------------------------------------------- 1. WebSocket

interface WsConnection {
  /** `<client>.<connection>`, in the URL's `c` parameter: the app records its reads under it. */
  key: string;
  pid: number;
  opened: boolean;
  sent: number;
  echoed: Set<number>;
  closeCode: number | undefined;
  /** Closed by this client at the end, not by the server. */
  ours: boolean;
}

/**
 * A client as an app writes one: a numbered message every 50 ms on each
 * connection, reconnecting at once when the server closes it (100 ms after a
 * connection attempt that failed).
 */
class WsClient {
  readonly connections: WsConnection[] = [];
  sending = true;
  private socket: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly url: string,
    private readonly id: number,
  ) {
    this.connect();
  }

  private connect(): void {
    const key = `${this.id}.${this.connections.length}`;
    const socket = new WebSocket(`${this.url}?c=${key}`);
    this.socket = socket;
    const c: WsConnection = { key, pid: 0, opened: false, sent: 0, echoed: new Set(), closeCode: undefined, ours: false };
    this.connections.push(c);
    socket.on('open', () => (c.opened = true));
    socket.on('message', (data) => {
      const [kind, value] = String(data).split(' ');
      const n = Number(value);
      if (kind === 'echo') c.echoed.add(n);
      else if (kind === 'hello') {
        c.pid = n;
        clearInterval(this.timer);
        this.timer = setInterval(() => {
          if (this.sending && socket.readyState === WebSocket.OPEN) socket.send(String(++c.sent));
        }, config.wsIntervalMs);
      }
    });
    socket.on('close', (code) => {
      clearInterval(this.timer);
      c.closeCode = code;
      if (this.stopped) return;
      if (c.opened) this.connect();
      else setTimeout(() => this.stopped || this.connect(), 100);
    });
    socket.on('error', () => {});
  }

  /** Connected and greeted by a worker that is alive. */
  get live(): boolean {
    const c = this.connections.at(-1);
    return c !== undefined && c.pid > 0 && this.socket?.readyState === WebSocket.OPEN && isAlive(c.pid);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    const c = this.connections.at(-1);
    if (c) c.ours = true;
    this.socket?.close(1000);
  }
}

interface WsRun {
  name: PeerName;
  reloads: Reload[];
  killed: number;
  leftovers: number;
  sent: number;
  /** Read by the app (its record). */
  read: number;
  /** Read by the app and never answered. */
  lost: number;
  /** … of which it read once the socket was closing (readyState 2: the server's close frame sent). */
  lostClosing: number;
  /** Sent, never read: the connection closed before the app read it (a client resends). */
  notRead: number;
  serverCloses: number;
  abnormal: number;
  codes: number[];
  failedConnects: number;
}

async function wsRun(name: PeerName): Promise<WsRun> {
  const readsDir = tempDir('bench-connections-reads-');
  const peer = await startPeer(name, 'ws-echo.mjs', { env: { READS_DIR: readsDir } });
  const clients: WsClient[] = [];
  try {
    const url = `ws://127.0.0.1:${peer.port}/`;
    for (let i = 0; i < config.clients; i++) clients.push(new WsClient(url, i));
    if (!(await waitUntil(() => clients.every((c) => c.live), 30_000))) throw new Error(`${name}: WebSocket clients did not all connect within 30 s`);
    await sleep(1000);
    const reloads = await reloadAll(peer, 'ws', () => clients.every((c) => c.live));
    // Stop sending, let the last echoes (100 ms) arrive, then count.
    for (const c of clients) c.sending = false;
    await sleep(1000);
    const reads = readsIn(readsDir);
    const run: WsRun = { name, reloads, killed: peer.killed(), leftovers: peer.leftovers().length, sent: 0, read: 0, lost: 0, lostClosing: 0, notRead: 0, serverCloses: 0, abnormal: 0, codes: [], failedConnects: 0 };
    for (const conn of clients.flatMap((c) => c.connections)) {
      const read = reads.get(conn.key) ?? new Map<number, string>();
      run.sent += conn.sent;
      run.read += read.size;
      for (const [n, state] of read) {
        if (conn.echoed.has(n)) continue;
        run.lost++;
        if (state === '2') run.lostClosing++;
      }
      run.notRead += conn.sent - read.size;
      if (!conn.opened) run.failedConnects += conn.closeCode !== undefined ? 1 : 0;
      else if (conn.closeCode !== undefined && !conn.ours) {
        run.serverCloses++;
        run.codes.push(conn.closeCode);
        if (conn.closeCode !== 1000 && conn.closeCode !== 1001) run.abnormal++;
      }
    }
    log(`${name} ws: sent ${run.sent}, read ${run.read}, lost ${run.lost} (${run.lostClosing} read while closing), not read ${run.notRead}, closes ${counts(run.codes)}, failed connects ${run.failedConnects}`);
    return run;
  } finally {
    for (const c of clients) c.stop();
    await peer.stop();
  }
}

function wsReport(runs: WsRun[]): string[] {
  const col = (f: (r: WsRun) => string) => runs.map(f);
  const lines = [
    `### 1. WebSocket (ws): ${config.clients} clients, a numbered message every ${config.wsIntervalMs} ms each, echoed after 100 ms, ${config.reloads} reloads`,
    '',
    markdownTable(
      ['', ...runs.map((r) => r.name)],
      [
        ...reloadRows(runs),
        ['messages sent', ...col((r) => String(r.sent))],
        ['… read by the app (its own record)', ...col((r) => String(r.read))],
        ['**messages lost**: read by the app, never answered', ...col((r) => `**${r.lost}**`)],
        ['… per reload', ...col((r) => perReload(r.lost))],
        ['… per client per reload', ...col((r) => (r.lost / config.reloads / config.clients).toFixed(1))],
        ["… read once the socket was closing (readyState CLOSING: the server's close frame already sent) ²", ...col((r) => String(r.lostClosing))],
        ['sent, never read: the connection closed first (a client resends) ¹', ...col((r) => `${r.notRead} (${perReload(r.notRead)} per reload)`)],
        ['connections closed by the server (clients moved)', ...col((r) => `${r.serverCloses} (${perReload(r.serverCloses)} per reload)`)],
        ['**abnormal closes** (code not 1000/1001)', ...col((r) => `**${r.abnormal}**`)],
        ['… per reload', ...col((r) => perReload(r.abnormal))],
        ['close codes', ...col((r) => counts(r.codes))],
        ['failed connection attempts', ...col((r) => String(r.failedConnects))],
      ],
    ),
    '',
  ];
  const g = runs.find((r) => r.name === 'graft');
  const p = runs.find((r) => r.name === 'PM2');
  if (g && p) lines.push(...ratioLine(runs, [`messages lost ${g.lost} vs ${p.lost}`, `abnormal closes ${g.abnormal} vs ${p.abnormal}`]));
  lines.push(
    '¹ A message still on its way when the connection closed, never handed to the app: a client must resend it, ' +
      'as with any restarting server. Not taken, so not counted as lost.',
    '² The app\'s `ws.send()` on a closing socket is dropped by `ws`: a message handed to the app after the server\'s close frame can never be answered.',
    '',
  );
  if (g && g.lostClosing > 0) {
    lines.push(
      `graft: ${g.lostClosing} of its ${g.lost} lost messages reached the app after graft's drain had sent the 1001 close frame. ` +
        "Its drain (src/worker/http-drain.ts, goAway) pauses the socket, waits until the app has written nothing for 1 s, then resumes the socket and closes with 1001; " +
        "`ws` then parses the frames the client sent during the pause and emits them as messages on the CLOSING socket: the app takes them and its answers are dropped. " +
        'So the messages a client sends in the drain\'s quiet second are not left unread, as the README says, but taken and never answered.',
      '',
    );
  }
  for (const r of runs) lines.push(...reloadNotes(`${r.name} (ws)`, r.reloads));
  return lines;
}

// ------------------------------------------------------------- 2. Socket.IO

interface Ask {
  n: number;
  at: number;
  answered: boolean;
  settled: boolean;
}

/**
 * A Socket.IO client as an app writes one: default transports (long polling,
 * then the WebSocket upgrade), reconnection left to the library; while
 * connected, an acked `work` every 50 ms (the ack waits 5 s). Each client
 * comes from its own address (X-Forwarded-For, as behind a proxy), which
 * graft's --sticky routes by when a request carries no session yet; PM2 ignores it.
 */
class SioClient {
  readonly socket: Socket;
  pid = 0;
  readonly connectErrors: number[] = [];
  readonly disconnects: Array<{ at: number; reason: string }> = [];
  readonly asks: Ask[] = [];
  /** Ticks (one per interval) with and without a connection. */
  ticks = 0;
  offline = 0;
  private n = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    url: string,
    readonly id: number,
  ) {
    const address = `10.0.${Math.floor(id / 200)}.${(id % 200) + 1}`;
    this.socket = io(url, { forceNew: true, extraHeaders: { 'x-forwarded-for': address }, query: { c: String(id) } });
    this.socket.on('connect_error', () => this.connectErrors.push(performance.now()));
    this.socket.on('disconnect', (reason) => {
      this.pid = 0;
      this.disconnects.push({ at: performance.now(), reason });
    });
    this.socket.on('hello', (h: { pid: number }) => (this.pid = h.pid));
    this.timer = setInterval(() => {
      this.ticks++;
      if (this.socket.connected) void this.work();
      else this.offline++;
    }, config.sioIntervalMs);
  }

  private async work(): Promise<void> {
    const ask: Ask = { n: ++this.n, at: performance.now(), answered: false, settled: false };
    this.asks.push(ask);
    try {
      await this.socket.timeout(config.ackTimeoutMs).emitWithAck('work', ask.n);
      ask.answered = true;
    } catch {
      // an ask never answered: counted from `asks`
    } finally {
      ask.settled = true;
    }
  }

  /** Connected and greeted by a worker that is alive. */
  get live(): boolean {
    return this.socket.connected && this.pid > 0 && isAlive(this.pid);
  }

  /** No more asks. */
  quiet(): void {
    clearInterval(this.timer);
  }

  close(): void {
    clearInterval(this.timer);
    this.socket.close();
  }
}

interface SioWindow {
  seconds: number;
  asked: number;
  connectErrors: number;
  disconnects: string[];
  /** Never acked within 5 s. */
  lost: number;
  /** … of which the app had read (its own record): taken and never answered. */
  lostRead: number;
}

interface SioRun {
  name: PeerName;
  reloads: Reload[];
  killed: number;
  leftovers: number;
  steady: SioWindow;
  during: SioWindow;
  offlineShare: number;
  workersSeen: number;
  connectedAtEnd: number;
}

async function sioRun(name: PeerName): Promise<SioRun> {
  const readsDir = tempDir('bench-connections-reads-');
  const peer = await startPeer(name, 'socketio-app.mjs', { env: { READS_DIR: readsDir }, graftArgs: ['--sticky'] });
  const clients: SioClient[] = [];
  const pids = new Set<number>();
  try {
    const url = `http://127.0.0.1:${peer.port}`;
    const t0 = performance.now();
    for (let i = 0; i < config.clients; i++) clients.push(new SioClient(url, i));
    for (const c of clients) c.socket.on('hello', (h: { pid: number }) => pids.add(h.pid));
    await sleep(config.steadyS * 1000);
    const t1 = performance.now();
    log(`${name} socket.io: steady ${config.steadyS} s over, ${clients.filter((c) => c.live).length}/${clients.length} clients connected`);
    const reloads = await reloadAll(peer, 'socket.io', () => clients.every((c) => c.live));
    const t2 = performance.now();
    const connectedAtEnd = clients.filter((c) => c.live).length;
    for (const c of clients) c.quiet();
    await waitUntil(() => clients.every((c) => c.asks.every((a) => a.settled)), config.ackTimeoutMs + 5000);
    const reads = readsIn(readsDir);
    const window = (from: number, to: number): SioWindow => {
      const inside = (at: number) => at >= from && at < to;
      const asks = clients.flatMap((c) => c.asks.filter((a) => inside(a.at)).map((a) => ({ ...a, read: reads.get(String(c.id))?.has(a.n) ?? false })));
      const lost = asks.filter((a) => !a.answered);
      return {
        seconds: (to - from) / 1000,
        asked: asks.length,
        connectErrors: clients.reduce((n, c) => n + c.connectErrors.filter(inside).length, 0),
        disconnects: clients.flatMap((c) => c.disconnects.filter((d) => inside(d.at)).map((d) => d.reason)),
        lost: lost.length,
        lostRead: lost.filter((a) => a.read).length,
      };
    };
    const run: SioRun = {
      name,
      reloads,
      killed: peer.killed(),
      leftovers: peer.leftovers().length,
      steady: window(t0, t1),
      during: window(t1, t2),
      offlineShare: clients.reduce((n, c) => n + c.offline, 0) / Math.max(1, clients.reduce((n, c) => n + c.ticks, 0)),
      workersSeen: pids.size,
      connectedAtEnd,
    };
    for (const [label, w] of [['steady', run.steady], ['reloads', run.during]] as const) {
      log(`${name} socket.io ${label}: asked ${w.asked}, lost ${w.lost} (read ${w.lostRead}), connect errors ${w.connectErrors}, disconnects ${counts(w.disconnects)}`);
    }
    return run;
  } finally {
    for (const c of clients) c.close();
    await peer.stop();
  }
}

function sioReport(runs: SioRun[]): string[] {
  const col = (f: (r: SioRun) => string) => runs.map(f);
  const perMin = (n: number, w: SioWindow) => (w.seconds ? ((n * 60) / w.seconds).toFixed(1) : '-');
  const lines = [
    `### 2. Socket.IO: ${config.clients} clients, default transports, an acked message every ${config.sioIntervalMs} ms while connected (ack timeout ${config.ackTimeoutMs / 1000} s); ` +
      `${config.steadyS} s steady (connecting included), then ${config.reloads} reloads`,
    '',
    markdownTable(
      ['', ...runs.map((r) => (r.name === 'graft' ? 'graft --sticky' : 'PM2 (no sticky sessions)'))],
      [
        ...reloadRows(runs),
        [`**steady** (${config.steadyS} s): acks asked`, ...col((r) => String(r.steady.asked))],
        ['… **connect errors** (per minute)', ...col((r) => `**${r.steady.connectErrors}** (${perMin(r.steady.connectErrors, r.steady)})`)],
        ['… disconnects (per minute)', ...col((r) => `${r.steady.disconnects.length} (${perMin(r.steady.disconnects.length, r.steady)})`)],
        ['… **lost acks** (per minute)', ...col((r) => `**${r.steady.lost}** (${perMin(r.steady.lost, r.steady)})`)],
        ['… … of which the app had read', ...col((r) => String(r.steady.lostRead))],
        ['**during the reloads**: seconds, acks asked', ...col((r) => `${num(r.during.seconds, 1)} s, ${r.during.asked}`)],
        ['… **connect errors** per reload (total)', ...col((r) => `**${perReload(r.during.connectErrors)}** (${r.during.connectErrors})`)],
        ['… disconnects per reload (total)', ...col((r) => `${perReload(r.during.disconnects.length)} (${r.during.disconnects.length})`)],
        ['… **lost acks** per reload (total)', ...col((r) => `**${perReload(r.during.lost)}** (${r.during.lost})`)],
        ['… … of which the app had read: taken, never answered', ...col((r) => `${perReload(r.during.lostRead)} (${r.during.lostRead})`)],
        ['… … of which it never read (sent as the connection closed) ¹', ...col((r) => `${perReload(r.during.lost - r.during.lostRead)} (${r.during.lost - r.during.lostRead})`)],
        ['disconnect reasons, whole run', ...col((r) => counts([...r.steady.disconnects, ...r.during.disconnects]))],
        ['share of client time without a connection', ...col((r) => `${(100 * r.offlineShare).toFixed(1)}%`)],
        ['workers that greeted a client', ...col((r) => String(r.workersSeen))],
        ['clients on a live worker after the last reload', ...col((r) => `${r.connectedAtEnd}/${config.clients}`)],
      ],
    ),
    '',
    '¹ Socket.IO resends nothing by itself (without its `retries` option): a message written as the server closed the connection is lost to the app ' +
      'although no server took it. The app\'s own record of what it read tells the two apart.',
    '',
  ];
  const g = runs.find((r) => r.name === 'graft');
  const p = runs.find((r) => r.name === 'PM2');
  if (g && p) {
    // After the table, before its footnote.
    lines.splice(
      4,
      0,
      ...ratioLine(runs, [
        `steady connect errors ${g.steady.connectErrors} vs ${p.steady.connectErrors}`,
        `lost acks per reload ${perReload(g.during.lost)} vs ${perReload(p.during.lost)}`,
        `time without a connection ${x(g.offlineShare, p.offlineShare)}`,
      ]),
    );
  }
  for (const r of runs) lines.push(...reloadNotes(`${r.name} (Socket.IO)`, r.reloads));
  return lines;
}

// ---------------------------------------------------------------- 3. BullMQ

interface BullRun {
  name: PeerName;
  reloads: Reload[];
  killed: number;
  leftovers: number;
  completed: number;
  /** Never completed within the bound. */
  lost: number;
  neverRan: number;
  twice: number;
  stalled: number;
  failed: string[];
  /** Taken by a worker after its drain (SIGINT/SIGTERM) began. */
  late: number;
  /** The most of those one worker took: BullMQ's close() lets a fetch already on its way land, at most one per slot. */
  lateMost: number;
  /** Started before their worker's drain began, finished after. */
  inHand: number;
  processes: number;
  seconds: number;
}

/** bull-worker.mjs's BullMQ `concurrency`: the jobs one worker runs at once. */
const BULL_SLOTS = 8;

async function bullRun(name: PeerName): Promise<BullRun> {
  const queueName = `bench-connections-${process.pid}-${name.toLowerCase()}`;
  const keys = [`${queueName}:runs`, `${queueName}:started`, `${queueName}:closing`, `${queueName}:finished`];
  const redis = new Redis(redisAt);
  const queue = new Queue(queueName, { connection: redisAt });
  const events = new QueueEvents(queueName, { connection: redisAt });
  let removed: Promise<void> | undefined;
  const remove = () =>
    (removed ??= (async () => {
      await events.close().catch(() => undefined);
      await queue.obliterate({ force: true }).catch((err: unknown) => log(`obliterate ${queueName}: ${String(err)}`));
      await queue.close().catch(() => undefined);
      await redis.del(...keys).catch(() => undefined);
      redis.disconnect();
    })());
  onCleanup(remove);
  let peer: Peer | undefined;
  try {
    await events.waitUntilReady();
    const completed = new Set<string>();
    const failed: string[] = [];
    let stalled = 0;
    events.on('completed', ({ jobId }) => completed.add(jobId));
    events.on('failed', ({ jobId, failedReason }) => failed.push(`${jobId}: ${failedReason}`));
    events.on('stalled', () => stalled++);
    peer = await startPeer(name, 'bull-worker.mjs', { env: { QUEUE: queueName } });
    const t0 = performance.now();
    // A steady inflow, as a live queue has: the jobs added every 100 ms over feedS (below
    // what 2 workers take), so every old generation holds jobs when its drain begins,
    // however long a supervisor's reload takes to get there. The reloads are spread over the same time.
    const feedMs = config.feedS * 1000;
    let added = 0;
    const feeding = (async () => {
      for (let k = 1; added < config.jobs; k++) {
        const count = Math.min(config.jobs, Math.round((config.jobs * k * 100) / feedMs)) - added;
        await queue.addBulk(Array.from({ length: count }, (_, j) => ({ name: 'job', data: { ms: 100 + (((added + j) * 37) % 201) } })));
        added += count;
        await sleep(Math.max(0, t0 + k * 100 - performance.now()));
      }
    })();
    const reloads: Reload[] = [];
    for (let i = 0; i < config.reloads; i++) {
      await sleep(Math.max(0, t0 + ((i + 0.25) * feedMs) / config.reloads - performance.now()));
      const r = await peer.reload();
      log(`${name} bullmq reload ${i + 1}/${config.reloads}: ${r.ok ? 'ok' : `FAILED ${r.note}`}, command ${num(r.commandMs)} ms, old gone ${num(r.oldGoneMs)} ms; ${completed.size}/${added} jobs done`);
      reloads.push(r);
    }
    await feeding;
    if (!(await waitUntil(() => completed.size >= config.jobs, config.jobsWithinMs, 100))) log(`${name} bullmq: only ${completed.size}/${config.jobs} jobs completed within ${config.jobsWithinMs / 1000} s`);
    const seconds = (performance.now() - t0) / 1000;
    const runs = await redis.hgetall(keys[0]!);
    const started = await redis.hgetall(keys[1]!);
    const closing = await redis.hgetall(keys[2]!);
    const finished = await redis.hgetall(keys[3]!);
    const lateBy = new Map<string, number>();
    for (const v of Object.values(started)) {
      const [who, at] = v.split(' ');
      if (closing[who!] !== undefined && Number(at) > Number(closing[who!])) lateBy.set(who!, (lateBy.get(who!) ?? 0) + 1);
    }
    const late = [...lateBy.values()].reduce((a, b) => a + b, 0);
    // Started before its worker's drain began and finished after: the reloads hit running jobs.
    const inHand = Object.entries(started).filter(([id, v]) => {
      const [who, at] = v.split(' ');
      const close = closing[who!];
      return close !== undefined && Number(at) <= Number(close) && Number(finished[id] ?? Infinity) > Number(close);
    }).length;
    const run: BullRun = {
      name,
      reloads,
      killed: peer.killed(),
      leftovers: peer.leftovers().length,
      completed: completed.size,
      lost: config.jobs - completed.size,
      neverRan: config.jobs - Object.keys(runs).length,
      twice: Object.values(runs).filter((n) => n !== '1').length,
      stalled,
      failed,
      late,
      lateMost: Math.max(0, ...lateBy.values()),
      inHand,
      processes: new Set(Object.values(started).map((v) => v.split(' ')[0])).size,
      seconds,
    };
    log(`${name} bullmq: completed ${run.completed}/${config.jobs}, ran twice ${run.twice}, stalled ${run.stalled}, failed ${failed.length}, late ${late}, in hand at a drain ${inHand}, ${run.processes} processes ran jobs`);
    return run;
  } finally {
    await peer?.stop();
    await remove();
  }
}

function bullReport(runs: BullRun[]): string[] {
  const col = (f: (r: BullRun) => string) => runs.map(f);
  const lines = [
    `### 3. BullMQ: ${config.jobs} jobs of 100-300 ms (concurrency ${BULL_SLOTS} per worker) added evenly over ${config.feedS} s (every 100 ms), ` +
      `${config.reloads} reloads spread over the same time (the i-th at (i + 0.25) × ${num(config.feedS / config.reloads, 1)} s, or when the previous one is over)`,
    '',
    markdownTable(
      ['', ...runs.map((r) => r.name)],
      [
        ...reloadRows(runs),
        ['jobs completed', ...col((r) => `${r.completed}/${config.jobs}`)],
        [`**jobs lost** (not completed ${config.jobsWithinMs / 1000} s after the last reload)`, ...col((r) => `**${r.lost}**`)],
        ['… of which never started', ...col((r) => String(r.neverRan))],
        ['**jobs run twice** (or more)', ...col((r) => `**${r.twice}**`)],
        ['**jobs stalled** (a worker went with the job in hand)', ...col((r) => `**${r.stalled}**`)],
        ['jobs failed', ...col((r) => String(r.failed.length))],
        ["jobs taken by a worker after its drain began (after its SIGINT/SIGTERM)", ...col((r) => String(r.late))],
        [`… the most by one worker (BullMQ's close lets a fetch already on its way land: at most ${BULL_SLOTS}, one per slot)`, ...col((r) => String(r.lateMost))],
        ['jobs in hand when their worker\'s drain began (started before it, finished after)', ...col((r) => String(r.inHand))],
        ['worker processes that ran jobs', ...col((r) => String(r.processes))],
        ['first job added → all jobs done', ...col((r) => `${num(r.seconds, 1)} s`)],
      ],
    ),
    '',
  ];
  const g = runs.find((r) => r.name === 'graft');
  const p = runs.find((r) => r.name === 'PM2');
  if (g && p) lines.push(...ratioLine(runs, [`jobs lost / run twice / stalled ${g.lost}/${g.twice}/${g.stalled} vs ${p.lost}/${p.twice}/${p.stalled}`]));
  for (const r of runs) {
    if (r.failed.length) lines.push(`${r.name}: failed jobs: ${r.failed.slice(0, 5).join('; ')}`, '');
    lines.push(...reloadNotes(`${r.name} (BullMQ)`, r.reloads));
  }
  return lines;
}

// -------------------------------------------------------------------- main

interface Goal {
  ok: boolean;
  text: string;
}

function goals(ws: WsRun[], sio: SioRun[], bull: BullRun[]): Goal[] {
  const out: Goal[] = [];
  const good = (r: Reload) => r.ok && r.back !== false;
  const okReloads = (rs: Reload[]) => `${rs.filter(good).length}/${rs.length} reloads ok${rs.some((r) => r.back !== undefined) ? ' (every client back on a live worker after it)' : ''}`;
  const allOk = (rs: Reload[]) => rs.every(good);
  const w = ws.find((r) => r.name === 'graft');
  if (w) out.push({ ok: w.lost === 0 && w.abnormal === 0 && w.killed === 0 && allOk(w.reloads), text: `graft, ws: 0 messages lost (${w.lost}), 0 abnormal closes (${w.abnormal}), 0 killed (${w.killed}), ${okReloads(w.reloads)}` });
  const s = sio.find((r) => r.name === 'graft');
  if (s) {
    const errors = s.steady.connectErrors + s.during.connectErrors;
    out.push({
      ok: errors === 0 && s.steady.lost === 0 && s.during.lostRead === 0 && s.killed === 0 && allOk(s.reloads),
      text: `graft --sticky, Socket.IO: 0 connect errors (${errors}), 0 lost acks steady (${s.steady.lost}), 0 acks read and never answered in reloads (${s.during.lostRead}), 0 killed (${s.killed}), ${okReloads(s.reloads)}`,
    });
  }
  const b = bull.find((r) => r.name === 'graft');
  if (b) {
    out.push({
      ok: b.lost === 0 && b.twice === 0 && b.stalled === 0 && b.failed.length === 0 && b.lateMost <= BULL_SLOTS && allOk(b.reloads),
      text: `graft, BullMQ: 0 jobs lost (${b.lost}), run twice (${b.twice}), stalled (${b.stalled}), failed (${b.failed.length}); after its drain began a worker takes only what BullMQ's close lets land, at most one per slot (${b.late} in all, at most ${b.lateMost} by one worker, ${BULL_SLOTS} slots); ${okReloads(b.reloads)}`,
    });
  }
  return out;
}

async function main(): Promise<void> {
  log(`config: ${JSON.stringify(config)}`);
  const ws: WsRun[] = [];
  const sio: SioRun[] = [];
  const bull: BullRun[] = [];
  for (const peer of PEERS) if (config.apps.includes('ws')) ws.push(await wsRun(peer));
  for (const peer of PEERS) if (config.apps.includes('socketio')) sio.push(await sioRun(peer));
  for (const peer of PEERS) if (config.apps.includes('bullmq')) bull.push(await bullRun(peer));

  const lines: string[] = [];
  if (ws.length) lines.push(...wsReport(ws));
  if (sio.length) lines.push(...sioReport(sio));
  if (bull.length) lines.push(...bullReport(bull));
  const met = goals(ws, sio, bull);
  lines.push('### Goals (graft)', '', ...met.map((g) => `- ${g.ok ? 'PASS' : 'FAIL'}: ${g.text}`), '');

  const machine = host();
  const header = resultsHead(
    'connections',
    ['ws', 'socket.io', 'socket.io-client', 'bullmq', 'ioredis', 'pm2'].map((p) => `${p} ${packageVersion(p)}`),
    [
      `machine: ${machine.cores} cores (${machine.model}), ${machine.memoryGb} GB, shared with other work; ` +
        'the clients run in the benchmark process on the same cores as the servers, so absolute times are noise: read counts and ratios.',
      `apps: bench/connections/ws-echo.mjs, socketio-app.mjs, bull-worker.mjs, plain .mjs with no graft import, the same file under both, ${config.workers} workers each; ` +
        'each one, only under PM2 (`pm_id` set), adds what PM2\'s docs ask of an app: `process.send(\'ready\')` for --wait-ready (once listening; the job worker once connected to Redis) ' +
        "and a SIGINT handler: the servers `server.close(() => process.exit(0))`, the job worker BullMQ's documented `worker.close()` (it has it for SIGTERM too, which graft sends)",
      'for the accounting only, the ws and Socket.IO apps append every message they read to a file of their own (appendFileSync, in the message handler, under both supervisors), ' +
        'so a message the app took and never answered (lost) is told from one it never read (the connection closed first; a client resends)',
      `graft: \`graft start <app> -w ${config.workers}\` (Socket.IO: \`--sticky\`), default drain; reload = \`graft reload\`; old processes gone = the old generation's "generation retired" line and its worker pids dead (polled every 10 ms)`,
      `PM2: \`pm2 start <app> -i ${config.workers} --wait-ready --listen-timeout 10000 --kill-timeout 5000\` in an isolated PM2_HOME (cluster mode: no sticky sessions for Socket.IO); reload = \`pm2 reload <name>\`; ` +
        'old processes gone = old pids dead (polled every 10 ms after the command returned) and absent from `pm2 jlist`',
      `after each reload the benchmark waits for every client to be back on a live worker (at most ${config.backWithinMs / 1000} s), then ${config.gapMs} ms`,
    ],
  );
  const full = `${header}\n${lines.join('\n')}`;
  console.log(full);
  writeResults(resultsPath, full);
  if (!quick && met.some((g) => !g.ok)) process.exitCode = 1;
}

await runMain(main);
