// The wire protocol of /ws, as written in docs/PROTOCOL.md: ttyd 1.7's protocol byte for
// byte, plus the playground's extensions (SESSION, EXIT, NOTICE and the optional init
// fields). Every frame is one command byte followed by its payload.
//
// Everything here is pure (no DOM, no socket), so protocol.test.ts runs it under node.

/** Command bytes the page sends. They are ASCII digits, as in ttyd. */
export const Client = {
  INPUT: 0x30, // '0'
  RESIZE_TERMINAL: 0x31, // '1'
  PAUSE: 0x32, // '2'
  RESUME: 0x33, // '3'
} as const;

/** Command bytes the server sends. */
export const Server = {
  OUTPUT: 0x30, // '0'
  SET_WINDOW_TITLE: 0x31, // '1'
  SET_PREFERENCES: 0x32, // '2'
  SESSION: 0x37, // '7', extension
  EXIT: 0x38, // '8', extension
  NOTICE: 0x39, // '9', extension
} as const;

/**
 * The most payload bytes one INPUT frame carries. The server closes with 1009 on a
 * frame over its limit (64 KiB by default); a paste of any size goes out as many frames
 * of at most this, which also lets the server's pty writes hold the page back between
 * frames instead of one huge write.
 */
export const MAX_INPUT_PAYLOAD = 16 * 1024;

/** The largest columns or rows the server accepts (docs/PROTOCOL.md); more is 1002. */
export const MAX_TERM_SIZE = 1000;

/** The first frame of a connection; the whole frame is this JSON, no command byte. */
export interface InitMessage {
  AuthToken: string;
  columns: number;
  rows: number;
  resume?: string; // reattach to a living session
  watch?: string; // follow a living session read-only
  env?: string; // pick an environment (root file system)
}

/**
 * SESSION: who this session is and how long it may live. An owner gets its keys; a
 * watcher gets the terminal's size instead (again whenever the owner resizes). Both
 * get the route id of the server that holds the session, when it has one.
 */
export interface SessionInfo {
  id: string;
  resume?: string;
  watch?: string;
  idleTimeout?: number; // seconds
  maxLifetime?: number; // seconds
  columns?: number; // watchers: the terminal's size, which they cannot change
  rows?: number;
  route?: string; // reconnect and watch with /ws?route=ID
}

/** EXIT: how the program ended; sent once, just before the server closes with 1000. */
export interface ExitInfo {
  code: number;
  signal?: string;
  reason?: string;
}

/** NOTICE: a message for the person, shown outside the terminal grid. */
export interface Notice {
  level: string; // "info", "warn" or "error"
  text: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** frame builds a command frame; a string payload is sent as UTF-8. */
export function frame(command: number, payload: string | Uint8Array = ''): Uint8Array {
  const body = typeof payload === 'string' ? encoder.encode(payload) : payload;
  const out = new Uint8Array(body.length + 1);
  out[0] = command;
  out.set(body, 1);
  return out;
}

/**
 * inputFrames turns typed or pasted text into INPUT frames of at most MAX_INPUT_PAYLOAD
 * payload bytes each, in order, losing nothing. Frames are cut between characters,
 * never inside one's UTF-8 bytes, so each frame is valid UTF-8 on its own.
 */
export function inputFrames(data: string, max = MAX_INPUT_PAYLOAD): Uint8Array[] {
  return chunk(encoder.encode(data), max, true);
}

/**
 * binaryInputFrames is inputFrames for one of xterm's "binary strings" (onBinary), where
 * each UTF-16 unit holds one byte: encoding it as UTF-8 would corrupt bytes above 0x7f,
 * so they are copied as they are (ttyd does the same).
 */
export function binaryInputFrames(data: string, max = MAX_INPUT_PAYLOAD): Uint8Array[] {
  const bytes = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) bytes[i] = data.charCodeAt(i) & 0xff;
  return chunk(bytes, max, false);
}

function chunk(bytes: Uint8Array, max: number, utf8: boolean): Uint8Array[] {
  if (max < (utf8 ? 4 : 1)) throw new RangeError('chunk size must hold a character');
  const frames: Uint8Array[] = [];
  for (let start = 0; start < bytes.length; ) {
    let end = Math.min(start + max, bytes.length);
    // Back off from a continuation byte (10xxxxxx) to the start of its character.
    if (utf8 && end < bytes.length) while (end > start && (bytes[end] & 0xc0) === 0x80) end--;
    frames.push(frame(Client.INPUT, bytes.subarray(start, end)));
    start = end;
  }
  return frames;
}

/** initFrame builds the init frame: bare JSON, which starts with '{'. */
export function initFrame(init: InitMessage): Uint8Array {
  return encoder.encode(JSON.stringify(init));
}

/** clampSize keeps a size within what the server accepts: 1 to MAX_TERM_SIZE each way. */
export function clampSize(columns: number, rows: number): { columns: number; rows: number } {
  const clamp = (n: number) => (Number.isFinite(n) ? Math.min(MAX_TERM_SIZE, Math.max(1, Math.floor(n))) : 1);
  return { columns: clamp(columns), rows: clamp(rows) };
}

/** resizeFrame builds RESIZE_TERMINAL for a size in character cells, clamped. */
export function resizeFrame(columns: number, rows: number): Uint8Array {
  return frame(Client.RESIZE_TERMINAL, JSON.stringify(clampSize(columns, rows)));
}

export function decodeText(payload: Uint8Array): string {
  return decoder.decode(payload);
}

/**
 * parseObject decodes a JSON object payload, or returns null: a malformed frame from
 * a newer or broken server must not stop the page from showing the rest.
 */
export function parseObject(payload: Uint8Array): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(decoder.decode(payload));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** parseSession reads SESSION, keeping only fields of the right type. */
export function parseSession(payload: Uint8Array): SessionInfo | null {
  const o = parseObject(payload);
  if (!o) return null;
  const s: SessionInfo = { id: typeof o.id === 'string' ? o.id : '' };
  if (typeof o.resume === 'string' && o.resume !== '') s.resume = o.resume;
  if (typeof o.watch === 'string' && o.watch !== '') s.watch = o.watch;
  if (typeof o.idleTimeout === 'number') s.idleTimeout = o.idleTimeout;
  if (typeof o.maxLifetime === 'number') s.maxLifetime = o.maxLifetime;
  const size = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_TERM_SIZE;
  if (size(o.columns) && size(o.rows)) {
    s.columns = o.columns as number;
    s.rows = o.rows as number;
  }
  if (typeof o.route === 'string' && o.route !== '') s.route = o.route;
  return s;
}

/**
 * wsURL is the address of /ws for a page at href: relative to the page (so the
 * playground also works mounted under a path prefix), ws: or wss: as the page is http:
 * or https:, and with ?route=ID when the connection goes back to the server that holds
 * a session (a resume or a watch). A new session names no route, so that a proxy in
 * front may send it to any server, and a full or draining one may refuse it.
 */
export function wsURL(href: string, route: string): string {
  const url = new URL('ws', href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = route ? `?route=${encodeURIComponent(route)}` : '';
  url.hash = '';
  return url.toString();
}

/** parseExit reads EXIT; a malformed one still means the program ended. */
export function parseExit(payload: Uint8Array): ExitInfo {
  const o = parseObject(payload);
  const e: ExitInfo = { code: typeof o?.code === 'number' ? o.code : -1 };
  if (typeof o?.signal === 'string' && o.signal !== '') e.signal = o.signal;
  if (typeof o?.reason === 'string' && o.reason !== '') e.reason = o.reason;
  return e;
}

/** parseNotice reads NOTICE, or null when it has no text. */
export function parseNotice(payload: Uint8Array): Notice | null {
  const o = parseObject(payload);
  if (!o || typeof o.text !== 'string' || o.text === '') return null;
  const level = o.level === 'warn' || o.level === 'error' ? o.level : 'info';
  return { level, text: o.text };
}

/** exitText is what the status bar says after EXIT. */
export function exitText(exit: ExitInfo): string {
  if (exit.signal) {
    return `Session ended: signal ${exit.signal}` + (exit.reason ? ` (${exit.reason})` : '');
  }
  return `Session ended (exit code ${exit.code}` + (exit.reason ? `: ${exit.reason}` : '') + ')';
}

/** Close codes of docs/PROTOCOL.md beyond RFC 6455's. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  ABNORMAL: 1006,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  TRY_AGAIN_LATER: 1013,
  UNKNOWN_KEY: 4404,
  TAKEN_OVER: 4409,
} as const;

/**
 * Why a handshake failed. A browser does not show a page the HTTP status of a refused
 * WebSocket handshake: a server that is draining or at its session limit answers a new
 * session's handshake with 503 (so that a proxy in front can try another server), and
 * the page sees close 1006 before the socket ever opened, as it does for a network that
 * is down. So after such a failure the page asks /readyz, which says why in words.
 *
 * - "full": at its session limit; "draining": shutting down; "unready": not ready for
 *   another reason (an environment still downloading), with the server's text;
 * - "refused": the server answers and is ready, yet the handshake failed (a proxy that
 *   cannot reach the server a route names, an origin the server refuses);
 * - "unreachable": no answer at all (the network, or the server is down).
 */
export interface Refusal {
  kind: 'full' | 'draining' | 'unready' | 'refused' | 'unreachable';
  text: string; // the server's words, when it said any
}

/** readRefusal reads /readyz's answer: its status, or null when the request failed. */
export function readRefusal(status: number | null, body: string): Refusal {
  const text = body.trim().slice(0, 200);
  if (status === null || status === 0 || status === 502 || status === 504) return { kind: 'unreachable', text: '' };
  if (status >= 200 && status < 300) return { kind: 'refused', text: '' };
  if (/^at capacity/i.test(text)) return { kind: 'full', text };
  if (/^draining/i.test(text)) return { kind: 'draining', text };
  return { kind: 'unready', text };
}

/** refusalText is what the status bar says while the page retries after a refusal. */
export function refusalText(r: Refusal, routed: boolean): string {
  switch (r.kind) {
    case 'full':
      return 'Server full';
    case 'draining':
      return 'Server shutting down';
    case 'unready':
      return r.text ? `Server not ready (${r.text})` : 'Server not ready';
    case 'refused':
      return routed ? "Your session's server does not answer" : 'The server refused the connection';
    case 'unreachable':
      return 'Cannot reach the server';
  }
}

/**
 * GIVE_UP_ROUTE_MS: how long the page keeps retrying a reconnect that names a route
 * (its session's server) and fails at the handshake while the site itself answers,
 * before it gives the session up and starts a new one on whichever server takes it.
 * A proxy answers so when the server that held the session is gone: its sessions went
 * with it. While the site does not answer at all, the page keeps the key and retries
 * (the network may be down, or the server restarting: the session may still be there,
 * or the server will say 4404 when it is back).
 */
export const GIVE_UP_ROUTE_MS = 20_000;

/**
 * What the page does after its socket closed:
 * - "resume": connect again after `delay` ms, with the resume key and route when it has
 *   them (a watcher: with its watch key);
 * - "fresh": drop the key and route and start a new session after `delay` ms (the old
 *   one is gone), saying so with `notice`;
 * - "stop": show `text` and wait for the person (a button offers `offer`); `forget`
 *   means the session is over and its key is dropped.
 */
export type AfterClose =
  | { action: 'resume'; delay: number; text: string }
  | { action: 'fresh'; delay: number; text: string; notice: string }
  | { action: 'stop'; text: string; offer: Offer; forget: boolean };

/**
 * What the page offers once it stopped: "restart" a new session, "takeback" the
 * session from the tab that took it, "retry" the same connection, or, for a watcher,
 * "own": a session of one's own (the page without ?watch=).
 */
export type Offer = 'restart' | 'takeback' | 'retry' | 'own';

export interface CloseContext {
  /** EXIT arrived before the close. */
  exit: ExitInfo | null;
  /** The page holds a resume key for this session. */
  hasKey: boolean;
  /** Following read-only (?watch=). */
  watching: boolean;
  /** Reconnects tried since the last connection that worked (0 for the first). */
  attempt: number;
  /** A number in [0, 1) for the jitter of the backoff; Math.random() in the page. */
  random: number;
  /** The socket opened (the handshake was accepted). Absent: it did. */
  opened?: boolean;
  /** The connection named a route (a resume or a watch of a known server). */
  routed?: boolean;
  /** The connection got its SESSION (the server took it). Absent: it did. */
  session?: boolean;
  /** For a failed handshake: what /readyz said, and for how long (ms) handshakes to this route have failed in a row. */
  refusal?: Refusal;
  failingMs?: number;
}

/**
 * backoff is how long to wait before reconnect number attempt (0 for the first):
 * 1 s doubling to 30 s, each with a jitter of up to half, so that a class of browsers
 * dropped by one server restart does not come back in one wave.
 */
export function backoff(attempt: number, random: number): number {
  const base = Math.min(30_000, 1000 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.5 + random / 2));
}

/** afterClose decides what the page does after a close (docs/PROTOCOL.md's codes). */
export function afterClose(code: number, reason: string, c: CloseContext): AfterClose {
  const r = decide(code, reason, c);
  // A watcher cannot start the session it watched again: it can start one of its own.
  if (c.watching && r.action === 'stop' && r.offer === 'restart') return { ...r, offer: 'own' };
  return r;
}

function decide(code: number, reason: string, c: CloseContext): AfterClose {
  const why = (fallback: string) => reason || fallback;
  const stop = (text: string, offer: Offer, forget = false): AfterClose => ({ action: 'stop', text, offer, forget });
  if (c.exit) return stop(exitText(c.exit), 'restart', true);
  if (c.opened === false && code === CloseCode.ABNORMAL) {
    // Refused at the handshake (or no server at all): nothing was lost yet.
    const refusal = c.refusal ?? { kind: 'unreachable', text: '' };
    const routed = !!c.routed;
    if (routed && refusal.kind !== 'unreachable' && (c.failingMs ?? 0) >= GIVE_UP_ROUTE_MS) {
      if (c.watching) return stop("The server of the session you watched cannot be reached", 'retry');
      return {
        action: 'fresh',
        delay: 0,
        text: 'Starting a new session…',
        notice: 'The server that ran your session cannot be reached; this is a new session.',
      };
    }
    return { action: 'resume', delay: backoff(c.attempt, c.random), text: refusalText(refusal, routed) };
  }
  if (c.session === false && !c.watching && !c.hasKey && code === CloseCode.GOING_AWAY) {
    // A new session turned away after its init by a server on its own that drains
    // (docs/PROTOCOL.md: 1001): nothing was lost; try again, as after a refused handshake.
    return { action: 'resume', delay: backoff(c.attempt + 1, c.random), text: refusalText({ kind: 'draining', text: '' }, false) };
  }
  switch (code) {
    case CloseCode.NORMAL:
      return stop(`Session ended: ${why('closed by the server')}`, 'restart', true);
    case CloseCode.GOING_AWAY:
      // The server ended every session as it shut down (after the drain's NOTICE).
      // The shell is gone; the screen stays, to copy from, until the person starts again.
      return stop('Session ended: the server shut down', 'restart', true);
    case CloseCode.UNKNOWN_KEY:
      if (c.watching) return stop('The session to watch has ended or was never there', 'restart');
      return { action: 'fresh', delay: 0, text: 'Starting a new session…', notice: 'Your previous session had ended; this is a new one.' };
    case CloseCode.TAKEN_OVER:
      return stop('This session was opened in another tab or window', 'takeback');
    case CloseCode.PROTOCOL_ERROR:
    case CloseCode.TOO_BIG:
      return stop(`Disconnected: ${why('protocol error')} (code ${code}; a bug in the page or server)`, 'restart');
    case CloseCode.POLICY:
      if (/watch key cannot resume/i.test(reason)) return stop(`Not allowed: ${reason}`, 'restart', true);
      if (c.watching && /too slow/i.test(reason)) {
        return { action: 'resume', delay: backoff(c.attempt, c.random), text: 'Fell behind the session' };
      }
      if (/try again later/i.test(reason)) {
        return { action: 'resume', delay: backoff(c.attempt + 1, c.random), text: `Refused: ${reason}` };
      }
      return stop(`Not allowed: ${why('refused by the server')}`, 'retry');
    case CloseCode.INTERNAL:
      return stop(`The server could not start the session: ${why('server error')}`, 'retry');
    case CloseCode.TRY_AGAIN_LATER:
      return { action: 'resume', delay: backoff(c.attempt + 1, c.random), text: 'Server full' };
    default: {
      // A dropped network, a proxy's timeout, a server that died: come back.
      const delay = c.attempt === 0 ? 0 : backoff(c.attempt, c.random);
      if (c.hasKey || c.watching) return { action: 'resume', delay, text: 'Connection lost' };
      // Without a resume key the shell cannot be found again: say so, and start anew.
      return { action: 'fresh', delay, text: 'Connection lost', notice: 'The connection was lost and the session could not be resumed; this is a new one.' };
    }
  }
}
