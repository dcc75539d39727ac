// The playground page: one xterm.js terminal on one /ws connection (docs/PROTOCOL.md), and a
// status bar outside the terminal grid that says what the connection is doing.
//
// Tests drive the page through window.playground (see the Playground interface).

import { Terminal, type ITheme } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import './style.css';
import {
  Client,
  Server,
  type ExitInfo,
  type InitMessage,
  type Notice,
  type SessionInfo,
  binaryFrame,
  closeText,
  decodeText,
  exitText,
  finalCloseCodes,
  frame,
  initFrame,
  parseObject,
  resizeFrame,
} from './protocol';

/** What the page knows about its connection; tests read it as window.playground.state. */
export interface State {
  /** The socket is open and init has been sent. */
  connected: boolean;
  /**
   * The connection is over (EXIT arrived, or the socket closed) and all output that
   * came before has been written to the terminal. The page never reconnects by itself.
   */
  ended: boolean;
  /** The EXIT payload, or null when the session has not exited. */
  exit: ExitInfo | null;
  /** The SESSION payload, or null before it arrives. */
  session: SessionInfo | null;
  /** The close code and reason of the socket, or null/"" while it is open. */
  closeCode: number | null;
  closeReason: string;
  /** The latest NOTICE received, or null. */
  notice: Notice | null;
  /** PAUSE has been sent and RESUME not yet (flow control). */
  paused: boolean;
  /** Following a session read-only (?watch=KEY). */
  watching: boolean;
  /** The text the status bar shows. */
  status: string;
}

export interface Playground {
  term: Terminal;
  state: State;
  /** The whole active buffer as text: each line trimmed right, joined with \n, trimmed right. */
  text(): string;
}

declare global {
  interface Window {
    playground: Playground;
  }
}

// Flow control, ttyd-like: count the bytes handed to term.write that xterm has not yet
// parsed. Above HIGH_WATER the page asks the server to PAUSE, which stops it reading
// the pty, so a program that prints without end blocks instead of filling the
// browser's memory; below LOW_WATER it sends RESUME. The gap between the two keeps the
// page from sending a PAUSE/RESUME pair per frame. Half a MiB is a few tens of
// milliseconds of xterm's parsing: enough to keep it busy, small enough to stay
// responsive to Ctrl-C.
const HIGH_WATER = 512 * 1024;
const LOW_WATER = 128 * 1024;

const theme: ITheme = {
  background: '#1e1e1e',
  foreground: '#d4d4d4',
  cursor: '#aeafad',
  selectionBackground: '#264f78',
};

const params = new URLSearchParams(location.search);
const watchKey = params.get('watch') ?? '';
const envName = params.get('env') ?? '';

const state: State = {
  connected: false,
  ended: false,
  exit: null,
  session: null,
  closeCode: null,
  closeReason: '',
  notice: null,
  paused: false,
  watching: watchKey !== '',
  status: 'Connecting…',
};

function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html lacks #${id}`);
  return el;
}

const bar = byId('status');
const statusText = byId('status-text');
const noticeText = byId('notice');
const reconnectButton = byId('reconnect') as HTMLButtonElement;
const newSessionButton = byId('new-session') as HTMLButtonElement;

const term = new Terminal({
  cursorBlink: true,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace',
  fontSize: 14,
  scrollback: 5000,
  theme,
  disableStdin: state.watching,
});
const fit = new FitAddon();
term.loadAddon(fit);
term.open(byId('terminal'));
fit.fit();

// The connection in use; replaced by a reconnect. Handlers of an older socket check it
// so that late events from that socket cannot touch the new one's state.
let socket: WebSocket | null = null;
let pending = 0; // bytes written to xterm and not yet parsed

function send(data: Uint8Array): void {
  // Nothing may go before init, which onopen sends itself.
  if (socket && state.connected && socket.readyState === WebSocket.OPEN) socket.send(data);
}

function setStatus(kind: 'connecting' | 'connected' | 'ended' | 'error', text: string): void {
  state.status = text;
  statusText.textContent = text;
  bar.dataset.state = kind;
}

function showNotice(n: Notice | null): void {
  state.notice = n;
  noticeText.textContent = n ? n.text : '';
  noticeText.dataset.level = n ? n.level : '';
}

function connectedText(): string {
  const verb = state.watching ? 'Watching (read-only)' : 'Connected';
  return state.session?.id ? `${verb} · session ${state.session.id}` : verb;
}

// afterOutput runs fn once xterm has parsed everything written so far, so that a test
// that sees state.ended finds the session's last output already in the buffer.
function afterOutput(fn: () => void): void {
  term.write('', fn);
}

function writeOutput(ws: WebSocket, data: Uint8Array): void {
  const n = data.length;
  pending += n;
  term.write(data, () => {
    pending -= n;
    if (state.paused && pending < LOW_WATER && ws === socket) {
      state.paused = false;
      send(frame(Client.RESUME));
    }
  });
  if (!state.paused && pending > HIGH_WATER) {
    state.paused = true;
    send(frame(Client.PAUSE));
  }
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
    try {
      if (key === 'theme') {
        // Merge, so a server that sets a few colours keeps the dark background.
        term.options.theme = { ...theme, ...(value as ITheme) };
      } else {
        (term.options as Record<string, unknown>)[key] = value;
      }
    } catch (err) {
      // xterm throws on values it cannot use (a bad colour): skip that one only.
      console.warn(`playground: preference ${key} ignored:`, err);
    }
  }
  fit.fit(); // a new font size changes how many cells fit
}

function onMessage(ws: WebSocket, data: ArrayBuffer | string): void {
  if (ws !== socket) return;
  // The server sends binary frames; a text frame is taken as its UTF-8 bytes.
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : new Uint8Array(data);
  if (bytes.length === 0) return;
  const payload = bytes.subarray(1);
  switch (bytes[0]) {
    case Server.OUTPUT:
      writeOutput(ws, payload);
      break;
    case Server.SET_WINDOW_TITLE:
      document.title = decodeText(payload);
      break;
    case Server.SET_PREFERENCES: {
      const prefs = parseObject(payload);
      if (prefs) applyPreferences(prefs);
      break;
    }
    case Server.SESSION:
      state.session = parseObject(payload) as SessionInfo | null;
      if (state.connected) setStatus('connected', connectedText());
      break;
    case Server.EXIT: {
      const exit = parseObject(payload) as ExitInfo | null;
      afterOutput(() => {
        state.exit = exit ?? { code: -1 };
        state.ended = true;
        ended(exitText(state.exit), state.exit.code === 0 ? 'ended' : 'error', false);
      });
      break;
    }
    case Server.NOTICE: {
      const n = parseObject(payload);
      if (n && typeof n.text === 'string') showNotice({ level: String(n.level ?? 'info'), text: n.text });
      break;
    }
    default:
    // A command this page does not know: an extension of a newer server. Ignoring it
    // is what a ttyd client does with our extensions too.
  }
}

function onClose(ws: WebSocket, ev: CloseEvent): void {
  if (ws !== socket) return;
  state.connected = false;
  state.closeCode = ev.code;
  state.closeReason = ev.reason;
  afterOutput(() => {
    state.ended = true;
    if (state.exit) return; // EXIT said it all; the 1000 that follows adds nothing
    const resumable = !!state.session?.resume && !finalCloseCodes.has(ev.code);
    ended(closeText(ev.code, ev.reason), 'error', resumable);
  });
}

// ended shows why the connection is over and what the person can do next.
function ended(text: string, kind: 'ended' | 'error', resumable: boolean): void {
  setStatus(kind, text);
  // A notice such as "idle: this session ends in 60 s" is stale now; the status says
  // why it ended. state.notice keeps the last one for whoever wants it.
  noticeText.textContent = '';
  term.options.disableStdin = true;
  term.options.cursorBlink = false;
  reconnectButton.hidden = !resumable;
  newSessionButton.hidden = false;
  // Enter now starts a new session instead of typing into a dead terminal.
  (resumable ? reconnectButton : newSessionButton).focus();
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

// connect opens /ws and sends init; with resume it reattaches to the session the
// page had, whose kept output the server replays onto a cleared terminal.
async function connect(resume?: string): Promise<void> {
  setStatus('connecting', 'Connecting…');
  const token = await fetchToken();
  // Relative to the page, so the playground also works mounted under a path prefix.
  const url = new URL('ws', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url, ['tty']);
  ws.binaryType = 'arraybuffer';
  socket = ws;
  ws.onopen = () => {
    if (ws !== socket) return;
    if (resume) term.reset();
    const init: InitMessage = { AuthToken: token, columns: term.cols, rows: term.rows };
    if (resume) init.resume = resume;
    if (watchKey) init.watch = watchKey;
    if (envName) init.env = envName;
    ws.send(initFrame(init));
    state.connected = true;
    setStatus('connected', connectedText());
    term.focus();
  };
  ws.onmessage = (ev: MessageEvent<ArrayBuffer | string>) => onMessage(ws, ev.data);
  ws.onclose = (ev) => onClose(ws, ev);
}

term.onData((data) => send(frame(Client.INPUT, data)));
term.onBinary((data) => send(binaryFrame(Client.INPUT, data)));
term.onResize(({ cols, rows }) => {
  // The server refuses a pty of no size; fit never proposes one, but be sure.
  if (cols > 0 && rows > 0) send(resizeFrame(cols, rows));
});
// A program's own title (OSC 0/2), as ttyd shows it.
term.onTitleChange((title) => {
  if (title) document.title = title;
});

// Refit whenever the terminal's box changes: a window resize, the status bar growing
// a line, a font that finished loading. One fit per frame is enough.
let fitQueued = false;
new ResizeObserver(() => {
  if (fitQueued) return;
  fitQueued = true;
  requestAnimationFrame(() => {
    fitQueued = false;
    fit.fit();
  });
}).observe(byId('terminal'));
void document.fonts?.ready.then(() => fit.fit());

reconnectButton.addEventListener('click', () => {
  const key = state.session?.resume;
  if (!key) return;
  // pending is left as it is: writes still queued in xterm settle it through their
  // callbacks. paused belonged to the old connection, which the server has forgotten.
  Object.assign(state, { ended: false, closeCode: null, closeReason: '', paused: false });
  reconnectButton.hidden = true;
  newSessionButton.hidden = true;
  term.options.disableStdin = state.watching;
  term.options.cursorBlink = true;
  void connect(key);
});
newSessionButton.addEventListener('click', () => {
  // The page without its query (?watch=...) starts a fresh session of its own.
  location.assign(location.pathname);
});

window.playground = {
  term,
  state,
  text(): string {
    const buf = term.buffer.active;
    const lines: string[] = [];
    for (let y = 0; y < buf.length; y++) lines.push(buf.getLine(y)?.translateToString(true) ?? '');
    return lines.join('\n').trimEnd();
  },
};

void connect();
