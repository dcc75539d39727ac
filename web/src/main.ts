// The playground page: one xterm.js terminal on one /ws connection (docs/PROTOCOL.md) at a
// time, reconnecting by itself when the connection drops, and a bar outside the terminal
// grid that says what the connection is doing, shows the server's notices and holds the
// page's few options.
//
// Tests drive the page through window.playground (see the Playground interface).

import { Terminal, type ITheme } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { Unicode11Addon } from '@xterm/addon-unicode11';
import { WebLinksAddon } from '@xterm/addon-web-links';
import '@xterm/xterm/css/xterm.css';
import './style.css';
import { installCspShims } from './csp';
import { BAR_KEYS, keyAction, osc52Text, withCtrl } from './keys';
import {
  MAX_FONT,
  MIN_FONT,
  STORAGE_KEY,
  fromQuery,
  fromStorage,
  resolve,
  withoutParams,
  type Options,
  type ThemeChoice,
} from './options';
import {
  Client,
  CloseCode,
  Server,
  afterClose,
  binaryInputFrames,
  clampSize,
  decodeText,
  frame,
  initFrame,
  inputFrames,
  parseExit,
  parseNotice,
  parseObject,
  parseSession,
  readRefusal,
  resizeFrame,
  wsURL,
  type AfterClose,
  type ExitInfo,
  type InitMessage,
  type Notice,
  type Offer,
  type Refusal,
  type SessionInfo,
} from './protocol';

/** What the page knows about its connection; tests read it as window.playground.state. */
export interface State {
  /** connecting, connected, reconnecting (a retry is scheduled) or ended (waiting for the person). */
  phase: 'connecting' | 'connected' | 'reconnecting' | 'ended';
  /** The socket is open and init has been sent. */
  connected: boolean;
  /** phase is "ended", and all output that came before has been written to the terminal. */
  ended: boolean;
  /** The EXIT payload of the current session, or null. */
  exit: ExitInfo | null;
  /** The SESSION payload of the current connection, or null before it arrives. */
  session: SessionInfo | null;
  /** The close code and reason of the last socket, or null/"" while it is open. */
  closeCode: number | null;
  closeReason: string;
  /** The latest NOTICE received (or the page's own), or null. */
  notice: Notice | null;
  /** PAUSE has been sent and RESUME not yet (flow control). */
  paused: boolean;
  /** Following a session read-only (?watch=KEY). */
  watching: boolean;
  /** The route this connection named (/ws?route=ID), "" for none. */
  route: string;
  /** Why the last handshake failed, as /readyz said, or null. */
  refusal: Refusal | null;
  /** Handshakes that failed in a row (reset by one that opens). */
  refusals: number;
  /** The text the status bar shows. */
  status: string;
  /** Which renderer draws the terminal, and whether the choice is made (WebGL loads on demand). */
  renderer: 'webgl' | 'dom';
  rendererReady: boolean;
  /** OUTPUT bytes received over all connections. */
  bytesOut: number;
  /** Connections opened so far, and how many of them reattached with a resume key. */
  connections: number;
  resumes: number;
  /** Reconnects tried since the last connection that worked. */
  attempt: number;
  /** performance.now() when the first output was drawn (xterm parsed it), or null. */
  firstOutputAt: number | null;
}

export interface Playground {
  term: Terminal;
  state: State;
  options: Options;
  /** The whole active buffer as text: each line trimmed right, joined with \n, trimmed right. */
  text(): string;
  /**
   * echoProbe sends text as typed input and resolves with the milliseconds until its
   * echo has been parsed by xterm (measurement for tests and benchmarks).
   */
  echoProbe(text: string, timeoutMs?: number): Promise<number>;
}

declare global {
  interface Window {
    playground: Playground;
  }
}

// Before xterm creates anything: route its dynamic CSS through the CSSOM (see csp.ts).
installCspShims(document);

// ?token= is for the server, which turns it into an HttpOnly cookie when it serves this
// page; the page drops it from the address bar so it is not bookmarked, shared or kept
// in the history.
const params = new URLSearchParams(location.search);
if (params.has('token')) history.replaceState(history.state, '', withoutParams(location.href, ['token']));

// The first connection's token is fetched at once, while the terminal is being built.
let firstToken: Promise<string> | null = fetchToken();

// Flow control, ttyd-like: count the bytes handed to term.write that xterm has not yet
// parsed. Above HIGH_WATER the page asks the server to PAUSE, which stops it reading
// the pty, so a program that prints without end blocks instead of filling the
// browser's memory; below LOW_WATER it sends RESUME. The gap between the two keeps the
// page from sending a PAUSE/RESUME pair per frame. Half a MiB is a few tens of
// milliseconds of xterm's parsing: enough to keep it busy, small enough to stay
// responsive to Ctrl-C.
const HIGH_WATER = 512 * 1024;
const LOW_WATER = 128 * 1024;

// Typed input is held until the session's first output (see holdInput), at most this long.
const HOLD_INPUT_MS = 3000;

// Per tab (sessionStorage): the session's resume key, and the route id of the server
// that holds it (SESSION's "route"), so that a refresh or a reconnect goes back to it.
const RESUME_KEY = 'playground.resume';
const ROUTE_KEY = 'playground.route';
const HINT_KEY = 'playground.hinted';

const darkTheme: ITheme = {
  background: '#1e1e1e',
  foreground: '#d4d4d4',
  cursor: '#aeafad',
  selectionBackground: '#264f78',
};
const lightTheme: ITheme = {
  background: '#ffffff',
  foreground: '#1f1f1f',
  cursor: '#1f1f1f',
  cursorAccent: '#ffffff',
  selectionBackground: '#add6ff',
  black: '#000000',
  red: '#cd3131',
  green: '#107c10',
  yellow: '#8a6d00',
  blue: '#0451a5',
  magenta: '#bc05bc',
  cyan: '#0e7490',
  white: '#555555',
  brightBlack: '#666666',
  brightRed: '#c72e0f',
  brightGreen: '#14840a',
  brightYellow: '#7a6400',
  brightBlue: '#0451a5',
  brightMagenta: '#a100a1',
  brightCyan: '#0e6b80',
  brightWhite: '#7f7f7f',
};

// Storage can throw (disabled cookies, a full quota): the page works without it.
function load(store: () => Storage, key: string): string | null {
  try {
    return store().getItem(key);
  } catch {
    return null;
  }
}
function save(store: () => Storage, key: string, value: string | null): void {
  try {
    if (value === null) store().removeItem(key);
    else store().setItem(key, value);
  } catch {
    // Not remembered; nothing else to do.
  }
}
const local = () => localStorage;
const perTab = () => sessionStorage;

// ?watch=KEY follows a session read-only; ?route=ID names the server that holds it
// (a shared watch link carries both; the page keeps the route up to date from SESSION).
const watchKey = params.get('watch') ?? '';
let watchRoute = watchKey ? (params.get('route') ?? '') : '';
const fromURL = fromQuery(params);
const options: Options = resolve(fromStorage(load(local, STORAGE_KEY)), fromURL);
function saveOptions(): void {
  save(local, STORAGE_KEY, JSON.stringify(options));
}
if (Object.keys(fromURL).length > 0) saveOptions();

const state: State = {
  phase: 'connecting',
  connected: false,
  ended: false,
  exit: null,
  session: null,
  closeCode: null,
  closeReason: '',
  notice: null,
  paused: false,
  watching: watchKey !== '',
  route: '',
  refusal: null,
  refusals: 0,
  status: 'Connecting…',
  renderer: 'dom',
  rendererReady: false,
  bytesOut: 0,
  connections: 0,
  resumes: 0,
  attempt: 0,
  firstOutputAt: null,
};

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html lacks #${id}`);
  return el as T;
}

const bar = byId('bar');
const statusText = byId('status-text');
const noticeText = byId('notice');
const noticeAction = byId<HTMLButtonElement>('notice-action');
const retryButton = byId<HTMLButtonElement>('retry');
const restartButton = byId<HTMLButtonElement>('restart');
const fontSmaller = byId<HTMLButtonElement>('font-smaller');
const fontLarger = byId<HTMLButtonElement>('font-larger');
const themeButton = byId<HTMLButtonElement>('theme');
const readerButton = byId<HTMLButtonElement>('screen-reader');
const shareButton = byId<HTMLButtonElement>('share');
const keybar = byId('keybar');
const terminalBox = byId('terminal');
const modeBadge = byId('mode');

// A watcher's page says so, beside the status and in the layout (style.css).
document.documentElement.dataset.mode = state.watching ? 'watch' : 'own';
modeBadge.hidden = !state.watching;

// ---- the terminal ----

const prefersLight = matchMedia('(prefers-color-scheme: light)');
function currentTheme(): ITheme {
  const light = options.theme === 'light' || (options.theme === 'auto' && prefersLight.matches);
  document.documentElement.dataset.theme = light ? 'light' : 'dark';
  return light ? lightTheme : darkTheme;
}
let serverTheme: ITheme = {}; // colours a server's SET_PREFERENCES set, over ours

const term = new Terminal({
  allowProposedApi: true, // unicode11's activeVersion
  cursorBlink: true,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace',
  fontSize: options.fontSize,
  scrollback: 5000,
  theme: currentTheme(),
  screenReaderMode: options.screenReader,
  disableStdin: state.watching,
});
const fit = new FitAddon();
term.loadAddon(fit);
term.loadAddon(new Unicode11Addon());
term.unicode.activeVersion = '11'; // emoji and CJK two cells wide, as current programs assume
term.loadAddon(new WebLinksAddon());
term.open(terminalBox);

// refit sizes the terminal to its box. A watcher's terminal has the size of the session
// it follows instead (SESSION's columns and rows, sent again when the owner resizes),
// which it cannot change: its box scrolls when the terminal is larger.
function refit(): void {
  if (!state.watching) fit.fit();
}
function followSize(info: SessionInfo | null): void {
  if (!info?.columns || !info.rows) return;
  if (term.cols !== info.columns || term.rows !== info.rows) term.resize(info.columns, info.rows);
}
refit();

// The WebGL renderer is faster under heavy output; it loads on demand, and the DOM
// renderer (xterm's own) stays when WebGL is missing or its context is lost. It is
// loaded once the first output is drawn (or after a second without any): its code and
// its GL context take a few hundred milliseconds of the main thread on a slow machine,
// which are better spent after the prompt is there than before.
let webglQueued = false;
function queueWebGL(): void {
  if (webglQueued) return;
  webglQueued = true;
  setTimeout(() => void useWebGL(), 0);
}
setTimeout(queueWebGL, 1000);
// softwareWebGL reports whether WebGL here is drawn by the CPU (SwiftShader, llvmpipe:
// a machine or VM without a GPU). There the DOM renderer is much faster: measured in
// headless chromium, it drew 6 MB/s of output with a keystroke's echo in 6 ms, where
// software WebGL drew 1.4 MB/s with echoes of seconds (BenchmarkPageEchoUnderOutput).
function softwareWebGL(): boolean {
  try {
    const gl = document.createElement('canvas').getContext('webgl2');
    if (!gl) return false; // no WebGL2 at all: the addon will say so
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return /swiftshader|llvmpipe|softpipe|software/i.test(renderer);
  } catch {
    return false;
  }
}

async function useWebGL(): Promise<void> {
  // ?renderer=dom or ?renderer=webgl overrides the choice (tests, odd GPUs).
  const want = params.get('renderer');
  if (want === 'dom' || (want !== 'webgl' && softwareWebGL())) {
    state.renderer = 'dom';
    state.rendererReady = true;
    return;
  }
  try {
    const { WebglAddon } = await import('@xterm/addon-webgl');
    const webgl = new WebglAddon();
    term.loadAddon(webgl); // throws without WebGL2
    state.renderer = 'webgl';
    webgl.onContextLoss(() => {
      webgl.dispose();
      state.renderer = 'dom';
    });
  } catch (err) {
    console.info('playground: WebGL renderer unavailable, using the DOM renderer:', err);
    state.renderer = 'dom';
  }
  state.rendererReady = true;
}

// ---- the bar: status, notices, buttons ----

function setPhase(phase: State['phase'], text: string, kind: string = phase): void {
  state.phase = phase;
  state.status = text;
  statusText.textContent = text;
  bar.dataset.state = kind;
}

let noticeTimer: ReturnType<typeof setTimeout> | undefined;
let noticeHandler: (() => void) | null = null;

/** showNotice shows a notice beside the status; with an action, a button runs it. */
function showNotice(n: Notice | null, action?: { label: string; run: () => void }, ttlMs = 0): void {
  clearTimeout(noticeTimer);
  state.notice = n;
  noticeText.textContent = n ? n.text : '';
  noticeText.title = n ? n.text : ''; // the whole text, where the bar cuts it short
  noticeText.dataset.level = n ? n.level : '';
  noticeHandler = action ? action.run : null;
  noticeAction.textContent = action ? action.label : '';
  noticeAction.hidden = !action;
  if (n && ttlMs > 0) noticeTimer = setTimeout(() => showNotice(null), ttlMs);
}
noticeAction.addEventListener('click', () => {
  const run = noticeHandler;
  showNotice(null);
  run?.();
  term.focus();
});

function connectedText(): string {
  const verb = state.watching ? 'Watching, read-only' : 'Connected';
  return state.session?.id ? `${verb} · session ${state.session.id}` : verb;
}

// ---- the connection ----

// The socket in use; replaced by a reconnect. Handlers of an older socket check it
// so that late events from that socket cannot touch the new one's state.
let socket: WebSocket | null = null;
let pending = 0; // bytes written to xterm and not yet parsed
let retryTimer: ReturnType<typeof setTimeout> | undefined;
let countdownTimer: ReturnType<typeof setInterval> | undefined;
let resetOnAttach = false; // the next session's output repaints a cleared terminal
let requestedEnv = ''; // the env this connection's init asked for
let failingSince: number | null = null; // Date.now() of the first of the handshakes failing in a row
let progressNotice: Notice | null = null; // a NOTICE that came before SESSION: the start's progress

// Input typed before the session's first output is held back until that output arrives.
// With no warm container, the shell is still starting when a quick person types: the
// pty's line discipline echoes the typeahead at once (cooked mode), and then bash's
// readline, once it has put the terminal in raw mode and printed the prompt, reads the
// same bytes and draws them again, so the line shows twice. Bash prints its prompt only
// after readline has taken the terminal, so input sent after the first output is echoed
// once, by readline. (The server could do the same for every client; see the report.)
// Keys typed while the page is still connecting are held the same way.
let held: Uint8Array[] | null = [];
let holdTimer: ReturnType<typeof setTimeout> | undefined;
function holdInput(): void {
  held ??= [];
  clearTimeout(holdTimer);
  holdTimer = setTimeout(releaseInput, HOLD_INPUT_MS);
}
function releaseInput(): void {
  clearTimeout(holdTimer);
  const frames = held;
  held = null;
  heldBytes = 0;
  if (frames) for (const f of frames) send(f);
}

function send(data: Uint8Array): void {
  // Nothing may go before init, which onopen sends itself; a watcher sends nothing else
  // at all (no INPUT, RESIZE, PAUSE or RESUME: the server would ignore them).
  if (state.watching) return;
  if (socket && state.connected && socket.readyState === WebSocket.OPEN) socket.send(data);
}

let ctrlArmed = false; // the key bar's sticky Ctrl
const MAX_HELD = 4 << 20; // bytes; a paste beyond it while connecting is cut here
let heldBytes = 0;
function sendInput(frames: Uint8Array[]): void {
  if (state.watching) return;
  if (held) {
    for (const f of frames) {
      if (heldBytes + f.length > MAX_HELD) break;
      heldBytes += f.length;
      held.push(f);
    }
    return;
  }
  if (state.connected) for (const f of frames) send(f);
}

// Probes of echoProbe waiting for their text in the output.
interface Probe {
  needle: string;
  seen: string;
  resolve: (ms: number) => void;
  t0: number;
}
const probes = new Set<Probe>();
const latin1 = new TextDecoder('latin1');

function writeOutput(ws: WebSocket, data: Uint8Array): void {
  const n = data.length;
  pending += n;
  state.bytesOut += n;
  let done: Probe[] = [];
  if (probes.size > 0) {
    const text = latin1.decode(data);
    for (const p of probes) {
      p.seen = (p.seen + text).slice(-(p.needle.length + text.length));
      if (p.seen.includes(p.needle)) done.push(p);
    }
    for (const p of done) probes.delete(p);
  }
  term.write(data, () => {
    pending -= n;
    if (state.firstOutputAt === null) {
      state.firstOutputAt = performance.now();
      queueWebGL();
    }
    for (const p of done) p.resolve(performance.now() - p.t0);
    done = [];
    if (state.paused && pending < LOW_WATER && ws === socket) {
      state.paused = false;
      send(frame(Client.RESUME));
    }
  });
  if (!state.watching && !state.paused && pending > HIGH_WATER) {
    state.paused = true;
    send(frame(Client.PAUSE));
  }
}

// afterOutput runs fn once xterm has parsed everything written so far, so that a test
// that sees state.ended finds the session's last output already in the buffer.
function afterOutput(fn: () => void): void {
  term.write('', fn);
}

// Preferences a server may set, with the type each must have. An allow-list, because
// some xterm options (windowOptions, linkHandler, documentOverride, ...) reach beyond
// the look of the terminal.
const preferenceTypes: Record<string, string> = {
  fontSize: 'number',
  fontFamily: 'string',
  lineHeight: 'number',
  letterSpacing: 'number',
  cursorBlink: 'boolean',
  cursorStyle: 'string',
  scrollback: 'number',
  drawBoldTextInBrightColors: 'boolean',
  minimumContrastRatio: 'number',
  theme: 'object',
};

function applyPreferences(prefs: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(prefs)) {
    if (preferenceTypes[key] !== typeof value || value === null) continue;
    // The person's own font size (?fontSize= or the buttons) wins over the server's.
    if (key === 'fontSize' && 'fontSize' in fromStorage(load(local, STORAGE_KEY))) continue;
    try {
      if (key === 'theme') {
        serverTheme = value as ITheme;
        term.options.theme = { ...currentTheme(), ...serverTheme };
      } else {
        (term.options as Record<string, unknown>)[key] = value;
      }
    } catch (err) {
      // xterm throws on values it cannot use (a bad colour): skip that one only.
      console.warn(`playground: preference ${key} ignored:`, err);
    }
  }
  refit(); // a new font size changes how many cells fit
}

function attached(ws: WebSocket): void {
  if (ws !== socket || !resetOnAttach) return;
  // A new session after one that ended or was lost starts on a clean terminal. A resume
  // or a watch is not cleared here: the server sends the screen as it is, beginning with
  // a full reset (ESC c), and draws it like any output.
  resetOnAttach = false;
  term.reset();
}

function onMessage(ws: WebSocket, data: ArrayBuffer | string): void {
  if (ws !== socket) return;
  // The server sends binary frames; a text frame is taken as its UTF-8 bytes.
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data);
  if (bytes.length === 0) return;
  const payload = bytes.subarray(1);
  switch (bytes[0]) {
    case Server.OUTPUT:
      attached(ws);
      state.attempt = 0; // this connection works
      writeOutput(ws, payload);
      releaseInput();
      break;
    case Server.SET_WINDOW_TITLE:
      document.title = decodeText(payload);
      break;
    case Server.SET_PREFERENCES: {
      const prefs = parseObject(payload);
      if (prefs) applyPreferences(prefs);
      break;
    }
    case Server.SESSION: {
      attached(ws);
      state.attempt = 0;
      const info = parseSession(payload);
      state.session = info;
      if (state.watching) {
        // Sent again whenever the owner resizes: follow the size; keep the route, and
        // the address bar's link, true to the server that holds the session.
        followSize(info);
        if (info?.route && info.route !== watchRoute) {
          watchRoute = info.route;
          const u = new URL(location.href);
          u.searchParams.set('route', watchRoute);
          history.replaceState(history.state, '', u.pathname + u.search + u.hash);
        }
      } else {
        save(perTab, RESUME_KEY, info?.resume ?? null);
        save(perTab, ROUTE_KEY, info?.resume && info.route ? info.route : null);
      }
      // The start's progress notices are done with once the session is there.
      if (progressNotice && state.notice === progressNotice) showNotice(null);
      progressNotice = null;
      shareButton.hidden = state.watching || !info?.watch;
      if (state.connected) setPhase('connected', connectedText());
      break;
    }
    case Server.EXIT: {
      state.exit = parseExit(payload);
      forgetSession(); // nothing left to resume
      break;
    }
    case Server.NOTICE: {
      const n = parseNotice(payload);
      if (n) showNotice(n);
      if (n && state.session === null) progressNotice = n;
      break;
    }
    default:
    // A command this page does not know: an extension of a newer server. Ignoring it
    // is what a ttyd client does with our extensions too.
  }
}

// onClose decides what comes next when a socket closed. opened says whether its
// handshake was accepted: a browser shows a refused one (HTTP 503 from a draining or
// full server, or no server at all) only as close 1006 before open, so the page asks
// /readyz why before it retries.
function onClose(ws: WebSocket, ev: CloseEvent, opened: boolean, route: string): void {
  if (ws !== socket) return;
  const hadSession = state.session !== null;
  state.connected = false;
  state.closeCode = ev.code;
  state.closeReason = ev.reason;
  releaseInputDropped();
  // An environment the server refused is not remembered for the next visit.
  if (!hadSession && requestedEnv && (ev.code === 1002 || ev.code === 1008) && options.env === requestedEnv) {
    options.env = '';
    saveOptions();
  }
  const refused = !opened && ev.code === CloseCode.ABNORMAL;
  // A server on its own turns a new session away after its init (1001 while it drains,
  // 1013 when full), not at the handshake: a refusal all the same.
  const turnedAway =
    opened && !hadSession && !state.watching && !resumeKey() && (ev.code === CloseCode.GOING_AWAY || ev.code === CloseCode.TRY_AGAIN_LATER);
  if (turnedAway) state.refusals++;
  afterOutput(() => {
    if (ws !== socket) return;
    void (async () => {
      let refusal: Refusal | undefined;
      if (refused) {
        state.refusals++;
        failingSince ??= Date.now();
        setPhase('reconnecting', state.connections > 1 ? 'Reconnecting…' : 'Connecting…', 'connecting');
        refusal = await probeReady();
        if (ws !== socket) return; // the person clicked, or another connect began
        state.refusal = refusal;
      }
      const next = afterClose(ev.code, ev.reason, {
        exit: state.exit,
        hasKey: !!resumeKey(),
        watching: state.watching,
        attempt: state.attempt,
        random: Math.random(),
        opened,
        session: hadSession,
        routed: route !== '',
        refusal,
        failingMs: failingSince === null ? 0 : Date.now() - failingSince,
      });
      follow(next);
    })();
  });
}

// probeReady asks /readyz why a handshake may have been refused.
async function probeReady(): Promise<Refusal> {
  try {
    const res = await fetch(new URL('readyz', location.href), { cache: 'no-store', signal: AbortSignal.timeout(5000) });
    return readRefusal(res.status, await res.text());
  } catch {
    return readRefusal(null, '');
  }
}

// forgetSession drops the tab's resume key and route: the session is over, or lost.
function forgetSession(): void {
  if (state.watching) return; // a watcher's key is its address's
  save(perTab, RESUME_KEY, null);
  save(perTab, ROUTE_KEY, null);
}

function releaseInputDropped(): void {
  clearTimeout(holdTimer);
  held = null; // typed into a connection that is gone; a reconnect must not replay it
  heldBytes = 0;
}

function resumeKey(): string {
  return load(perTab, RESUME_KEY) ?? '';
}

// follow does what afterClose decided.
function follow(next: AfterClose): void {
  clearTimers();
  switch (next.action) {
    case 'stop':
      if (next.forget) forgetSession();
      end(next.text, next.offer);
      return;
    case 'fresh':
      forgetSession();
      failingSince = null;
      showNotice({ level: 'warn', text: next.notice });
      scheduleConnect(next.delay, next.text);
      return;
    case 'resume':
      scheduleConnect(next.delay, next.text);
      return;
  }
}

function scheduleConnect(delay: number, why: string): void {
  state.attempt++;
  retryButton.textContent = 'Reconnect now';
  retryButton.hidden = false;
  restartButton.hidden = true;
  if (delay <= 0) {
    void connect();
    return;
  }
  const at = Date.now() + delay;
  const verb = state.connections > 0 && state.refusals === 0 ? 'reconnecting' : 'retrying';
  const tick = () => {
    const s = Math.max(1, Math.ceil((at - Date.now()) / 1000));
    setPhase('reconnecting', `${why} · ${verb} in ${s} s`);
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
  retryTimer = setTimeout(() => void connect(), delay);
}

function clearTimers(): void {
  clearTimeout(retryTimer);
  clearInterval(countdownTimer);
  retryTimer = countdownTimer = undefined;
}

// end shows why the session is over and what the person can do next.
function end(text: string, offer: Offer): void {
  state.ended = true;
  setPhase('ended', text, state.exit && state.exit.code === 0 && !state.exit.signal ? 'ended' : 'error');
  // A notice such as "idle: this session ends in 60 s" is stale now; the status says
  // why it ended. state.notice keeps the last one for whoever wants it.
  noticeText.textContent = '';
  noticeAction.hidden = true;
  term.options.disableStdin = true;
  term.options.cursorBlink = false;
  // "Start again" begins a new session; "Try again" and "Use it here" reconnect, with
  // the resume key when the tab has one.
  retryButton.hidden = offer === 'restart' || offer === 'own';
  retryButton.textContent = offer === 'takeback' ? 'Use it here' : 'Try again';
  restartButton.hidden = offer === 'retry';
  restartButton.textContent = state.watching ? 'Start your own session' : 'Start again';
  shareButton.hidden = true;
  // Enter now starts again instead of typing into a dead terminal.
  (retryButton.hidden ? restartButton : retryButton).focus();
}

async function fetchToken(): Promise<string> {
  // ttyd's /token; with auth off, or no /token at all, the token is "".
  try {
    const res = await fetch(new URL('token', location.href), { cache: 'no-store', signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return '';
    const body: unknown = await res.json();
    const token = (body as { token?: unknown } | null)?.token;
    return typeof token === 'string' ? token : '';
  } catch {
    return '';
  }
}

// connect opens /ws and sends init: with the tab's resume key when it has one (a
// refresh, or a dropped connection), which reattaches to the living session; without,
// which starts a new one. A resume or a watch names the route of the server that holds
// the session (/ws?route=ID), so that a proxy sends it there and a full or draining
// server still lets it in; a new session names none.
async function connect(): Promise<void> {
  clearTimers();
  const key = state.watching ? '' : resumeKey();
  const route = state.watching ? watchRoute : key ? (load(perTab, ROUTE_KEY) ?? '') : '';
  const again = state.connections > 0;
  setPhase(again ? 'reconnecting' : 'connecting', key && again ? 'Reconnecting…' : 'Connecting…', 'connecting');
  const old = socket;
  socket = null; // late events of the old socket are ignored from here on
  old?.close();
  const token = await (firstToken ?? fetchToken());
  firstToken = null;
  const ws = new WebSocket(wsURL(location.href, route), ['tty']);
  ws.binaryType = 'arraybuffer';
  socket = ws;
  state.connections++;
  Object.assign(state, { ended: false, exit: null, session: null, closeCode: null, closeReason: '', paused: false, route });
  // A new session after another clears the terminal; a resume or watch gets the screen.
  resetOnAttach = again && !key && !state.watching;
  progressNotice = null;
  let opened = false;
  ws.onopen = () => {
    if (ws !== socket) return;
    opened = true;
    failingSince = null;
    state.refusals = 0;
    state.refusal = null;
    const init: InitMessage = { AuthToken: token, ...clampSize(term.cols, term.rows) };
    if (key) {
      init.resume = key;
      state.resumes++;
    }
    if (watchKey) init.watch = watchKey;
    requestedEnv = options.env;
    if (requestedEnv) init.env = requestedEnv;
    ws.send(initFrame(init));
    state.connected = true;
    holdInput();
    term.options.disableStdin = state.watching;
    term.options.cursorBlink = true;
    retryButton.hidden = true;
    restartButton.hidden = true;
    setPhase('connected', connectedText());
    // A key whose keyup went elsewhere leaves xterm.js taking the next inserted text (an
    // on-screen keyboard's, an IME's) for that key's own and dropping it: the Enter of an
    // `exit`, whose keyup lands on "Start again" once the page has moved the focus there,
    // cost the new session its first typed line. Its keys are up by now.
    term.textarea?.dispatchEvent(new KeyboardEvent('keyup'));
    term.focus();
  };
  ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => onMessage(ws, ev.data);
  ws.onclose = (ev) => onClose(ws, ev, opened, route);
}

function startAgain(): void {
  forgetSession();
  state.attempt = 0;
  showNotice(null);
  void connect();
}

retryButton.addEventListener('click', () => {
  state.attempt = 0;
  void connect();
});
restartButton.addEventListener('click', () => {
  // A watcher's way on is a session of its own: the page without ?watch= and ?route=.
  if (state.watching) location.assign(withoutParams(location.href, ['watch', 'route']));
  else startAgain();
});

// The owner's read-only link: anyone who opens it follows this session and cannot type.
shareButton.addEventListener('click', () => {
  const key = state.session?.watch;
  if (!key) return;
  const u = new URL(location.href);
  u.search = '';
  u.hash = '';
  u.searchParams.set('watch', key);
  if (state.session?.route) u.searchParams.set('route', state.session.route);
  copyText(u.toString());
  showNotice({ level: 'info', text: `Read-only link copied (whoever opens it sees this terminal but cannot type): ${u}` }, undefined, 30_000);
  term.focus();
});
// Back online: no need to wait out the backoff.
addEventListener('online', () => {
  if (state.phase === 'reconnecting' && retryTimer !== undefined) void connect();
});

// ---- input ----

term.onData((data) => {
  if (ctrlArmed) {
    data = withCtrl(data);
    setCtrl(false);
  }
  sendInput(inputFrames(data));
});
term.onBinary((data) => sendInput(binaryInputFrames(data)));
term.onResize(({ cols, rows }) => {
  // The server refuses a pty of no size or over 1000 cells a side: resizeFrame clamps.
  if (cols > 0 && rows > 0) send(resizeFrame(cols, rows));
});
// A program's own title (OSC 0/2), as ttyd shows it.
term.onTitleChange((title) => {
  if (title) document.title = title;
});

// ---- copy and paste ----

// copyText puts text on the clipboard from within a user action. The copy command fires
// a copy event whose clipboardData the page fills: that works on plain-http origins,
// where navigator.clipboard does not exist.
function copyText(text: string): void {
  let done = false;
  const onCopy = (e: ClipboardEvent) => {
    if (!e.clipboardData) return;
    e.clipboardData.setData('text/plain', text);
    e.preventDefault();
    done = true;
  };
  document.addEventListener('copy', onCopy, true);
  try {
    document.execCommand('copy');
  } catch {
    // done stays false
  } finally {
    document.removeEventListener('copy', onCopy, true);
  }
  if (!done) void navigator.clipboard?.writeText(text).catch(() => undefined);
}

term.attachCustomKeyEventHandler((ev) => {
  switch (keyAction(ev, term.hasSelection())) {
    case 'copy':
      // Ctrl+C with a selection, and Ctrl+Shift+C: copy, send nothing. The selection
      // goes, so the next Ctrl+C interrupts as usual.
      if (ev.type === 'keydown') {
        ev.preventDefault();
        if (term.hasSelection()) {
          copyText(term.getSelection());
          term.clearSelection();
          showHint();
        }
      }
      return false;
    case 'paste-native':
      // Ctrl+V and Ctrl+Shift+V: not ^V. The browser's own paste lands in xterm's
      // textarea, where xterm honours bracketed paste; sendInput splits it into frames.
      return false;
    case 'focus-out':
      if (ev.type === 'keydown') {
        ev.preventDefault();
        fontSmaller.focus();
      }
      return false;
    default:
      return true; // 'terminal'
  }
});

// OSC 52: a program asks to set the clipboard (tmux, vim over ssh, ...). A page may only
// write the clipboard during a user action, and a program should not fill it unasked:
// the page offers a button.
term.parser.registerOscHandler(52, (data) => {
  const text = osc52Text(data);
  if (text !== null && text.length <= 1 << 20) {
    showNotice({ level: 'info', text: `A program wants to copy ${text.length} characters to your clipboard.` }, { label: 'Copy', run: () => copyText(text) });
  }
  return true; // handled (refused or offered); a clipboard query is never answered
});

// A one-time hint about copy and paste, for someone who has not seen it.
function showHint(): void {
  if (load(local, HINT_KEY)) return;
  save(local, HINT_KEY, '1');
  showNotice(
    { level: 'info', text: 'Ctrl+C copies a selection (and interrupts without one), Ctrl+V pastes; Ctrl+Shift+C/V too. F6 reaches the toolbar.' },
    { label: 'Got it', run: () => undefined },
    20_000,
  );
}
term.onSelectionChange(() => {
  if (term.hasSelection()) showHint();
});

// ---- phones and tablets ----

const touch = matchMedia('(pointer: coarse)').matches || navigator.maxTouchPoints > 0;

function setCtrl(on: boolean): void {
  ctrlArmed = on;
  keybar.querySelector('#key-ctrl')?.setAttribute('aria-pressed', String(on));
}

for (const k of BAR_KEYS) {
  const b = document.createElement('button');
  b.type = 'button';
  b.id = `key-${k.id}`;
  b.textContent = k.label;
  b.setAttribute('aria-label', k.name);
  if (k.id === 'ctrl') b.setAttribute('aria-pressed', 'false');
  // Keep the focus (and the on-screen keyboard) on the terminal.
  b.addEventListener('mousedown', (e) => e.preventDefault());
  b.addEventListener('click', () => {
    if (k.send) term.input(k.send(term.modes.applicationCursorKeysMode), true);
    else setCtrl(!ctrlArmed);
    term.focus();
  });
  keybar.append(b);
}
keybar.hidden = !touch || state.watching;

// The on-screen keyboard shrinks the visual viewport, not the layout: size the page to
// what is visible, so the key bar sits just above the keyboard and the terminal refits.
const vv = window.visualViewport;
if (vv) {
  const onViewport = () => {
    document.documentElement.style.setProperty('--app-height', `${Math.round(vv.height)}px`);
    if (vv.offsetTop > 0) window.scrollTo(0, 0);
  };
  vv.addEventListener('resize', onViewport);
  vv.addEventListener('scroll', onViewport);
  onViewport();
}

// ---- options: font size, theme, screen reader ----

function setFontSize(size: number): void {
  options.fontSize = Math.min(MAX_FONT, Math.max(MIN_FONT, size));
  term.options.fontSize = options.fontSize;
  saveOptions();
  refit();
}
fontSmaller.addEventListener('click', () => setFontSize(options.fontSize - 1));
fontLarger.addEventListener('click', () => setFontSize(options.fontSize + 1));

const themeNames: Record<ThemeChoice, string> = { auto: 'Theme: auto', dark: 'Theme: dark', light: 'Theme: light' };
function applyTheme(): void {
  term.options.theme = { ...currentTheme(), ...serverTheme };
  themeButton.textContent = themeNames[options.theme];
}
themeButton.addEventListener('click', () => {
  options.theme = options.theme === 'auto' ? 'dark' : options.theme === 'dark' ? 'light' : 'auto';
  saveOptions();
  applyTheme();
});
prefersLight.addEventListener('change', applyTheme);
applyTheme();

function applyReader(): void {
  term.options.screenReaderMode = options.screenReader;
  readerButton.setAttribute('aria-pressed', String(options.screenReader));
}
readerButton.addEventListener('click', () => {
  options.screenReader = !options.screenReader;
  saveOptions();
  applyReader();
});
applyReader();

// Escape or F6 in the bar goes back to the terminal (F6 in the terminal comes here).
bar.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' || e.key === 'F6') {
    e.preventDefault();
    term.focus();
  }
});

// Refit whenever the terminal's box changes: a window resize, the bar wrapping, the
// keyboard opening, a font that finished loading. One fit per frame is enough.
let fitQueued = false;
new ResizeObserver(() => {
  if (fitQueued) return;
  fitQueued = true;
  requestAnimationFrame(() => {
    fitQueued = false;
    refit();
  });
}).observe(terminalBox);
void document.fonts?.ready.then(refit);

window.playground = {
  term,
  state,
  options,
  text(): string {
    const buf = term.buffer.active;
    const lines: string[] = [];
    for (let y = 0; y < buf.length; y++) lines.push(buf.getLine(y)?.translateToString(true) ?? '');
    return lines.join('\n').trimEnd();
  },
  echoProbe(text: string, timeoutMs = 30_000): Promise<number> {
    return new Promise((resolveProbe, reject) => {
      const p: Probe = { needle: text, seen: '', t0: performance.now(), resolve: resolveProbe };
      probes.add(p);
      setTimeout(() => {
        if (probes.delete(p)) reject(new Error(`no echo of ${JSON.stringify(text)} within ${timeoutMs} ms`));
      }, timeoutMs);
      for (const f of inputFrames(text)) send(f);
    });
  },
};

void connect();
