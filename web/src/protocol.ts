// The wire protocol of /ws, as written in docs/PROTOCOL.md: ttyd 1.7's protocol byte for
// byte, plus the playground's extensions (SESSION, EXIT, NOTICE and the optional init
// fields). Every frame is one command byte followed by its payload.

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
 * binaryFrame builds a command frame from one of xterm's "binary strings" (onBinary),
 * where each UTF-16 unit holds one byte: encoding it as UTF-8 would corrupt bytes
 * above 0x7f, so they are copied as they are (ttyd does the same).
 */
export function binaryFrame(command: number, data: string): Uint8Array {
  const out = new Uint8Array(data.length + 1);
  out[0] = command;
  for (let i = 0; i < data.length; i++) out[i + 1] = data.charCodeAt(i) & 0xff;
  return out;
}

/** initFrame builds the init frame: bare JSON, which starts with '{'. */
export function initFrame(init: InitMessage): Uint8Array {
  return encoder.encode(JSON.stringify(init));
}

/** resizeFrame builds RESIZE_TERMINAL for a size in character cells. */
export function resizeFrame(columns: number, rows: number): Uint8Array {
  return frame(Client.RESIZE_TERMINAL, JSON.stringify({ columns, rows }));
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

/** exitText is what the status bar says after EXIT. */
export function exitText(exit: ExitInfo): string {
  if (exit.signal) {
    return `Session ended: signal ${exit.signal}` + (exit.reason ? ` (${exit.reason})` : '');
  }
  return `Session ended (exit code ${exit.code}` + (exit.reason ? `: ${exit.reason}` : '') + ')';
}

// Plain words for the close codes of docs/PROTOCOL.md, used when the server gave no reason.
const closeHints: Record<number, string> = {
  1001: 'server shutting down',
  1002: 'protocol error',
  1006: 'connection lost',
  1008: 'not allowed',
  1009: 'message too large',
  1011: 'server error',
  1013: 'server at capacity, try again later',
  4404: 'session not found or expired',
  4409: 'taken over by another connection',
};

/** closeText is what the status bar says when the socket closes without EXIT. */
export function closeText(code: number, reason: string): string {
  const why = reason || closeHints[code] || '';
  return `Disconnected (code ${code}` + (why ? `: ${why}` : '') + ')';
}

/**
 * Close codes after which reattaching with the resume key cannot help: the session is
 * over, was refused, or is unknown. After the others (a dropped network, a takeover)
 * the page offers "Reconnect"; it never reconnects by itself.
 */
export const finalCloseCodes: ReadonlySet<number> = new Set([1000, 1002, 1008, 1009, 1011, 1013, 4404]);
