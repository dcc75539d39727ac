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

/** SESSION: who this session is and how long it may live. */
export interface SessionInfo {
  id: string;
  resume?: string;
  watch?: string;
  idleTimeout?: number; // seconds
  maxLifetime?: number; // seconds
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
  return s;
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
 * What the page does after its socket closed:
 * - "resume": reconnect after `delay` ms, with the resume key when there is one;
 * - "fresh": start a new session after `delay` ms (the old one is gone);
 * - "stop": show `text` and wait for the person (a button offers `offer`).
 */
export type AfterClose =
  | { action: 'resume'; delay: number; text: string }
  | { action: 'fresh'; delay: number; text: string; notice: string }
  | { action: 'stop'; text: string; offer: 'restart' | 'takeback' | 'retry' };

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
  const why = (fallback: string) => reason || fallback;
  if (c.exit) return { action: 'stop', text: exitText(c.exit), offer: 'restart' };
  switch (code) {
    case CloseCode.NORMAL:
      return { action: 'stop', text: `Session ended: ${why('closed by the server')}`, offer: 'restart' };
    case CloseCode.UNKNOWN_KEY:
      if (c.watching) return { action: 'stop', text: 'The session to watch has ended or was never there', offer: 'restart' };
      return { action: 'fresh', delay: 0, text: 'Starting a new session…', notice: 'Your previous session had ended; this is a new one.' };
    case CloseCode.TAKEN_OVER:
      return { action: 'stop', text: 'This session was opened in another tab or window', offer: 'takeback' };
    case CloseCode.PROTOCOL_ERROR:
    case CloseCode.TOO_BIG:
      return { action: 'stop', text: `Disconnected: ${why('protocol error')} (code ${code}; a bug in the page or server)`, offer: 'restart' };
    case CloseCode.POLICY:
      return { action: 'stop', text: `Not allowed: ${why('refused by the server')}`, offer: 'retry' };
    case CloseCode.INTERNAL:
      return { action: 'stop', text: `The server could not start the session: ${why('server error')}`, offer: 'retry' };
    case CloseCode.TRY_AGAIN_LATER:
      return { action: 'resume', delay: backoff(c.attempt + 1, c.random), text: 'The server is at capacity' };
    case CloseCode.GOING_AWAY:
    default: {
      // The server restarting, a dropped network, a proxy's timeout: come back.
      const text = code === CloseCode.GOING_AWAY ? 'The server is restarting' : 'Connection lost';
      const delay = c.attempt === 0 && code !== CloseCode.GOING_AWAY ? 0 : backoff(c.attempt, c.random);
      if (c.hasKey || c.watching) return { action: 'resume', delay, text };
      // Without a resume key the shell cannot be found again: say so, and start anew.
      return { action: 'fresh', delay, text, notice: 'The connection was lost and the session could not be resumed; this is a new one.' };
    }
  }
}
