// Keyboard decisions that do not need a DOM: which keys copy or paste, what a sticky
// Ctrl turns a character into, what the key bar's keys send. main.ts wires them up.

/** The parts of a KeyboardEvent the decisions read. */
export interface Key {
  type: string; // "keydown", "keyup", "keypress"
  key: string;
  code?: string;
  ctrlKey: boolean;
  shiftKey: boolean;
  altKey: boolean;
  metaKey: boolean;
}

/**
 * What a key press does, before xterm sees it:
 * - "copy": copy the selection (Ctrl+C when there is one, and Ctrl+Shift+C), send nothing;
 * - "paste-native": let the browser paste into xterm's textarea (Ctrl+V, Ctrl+Shift+V),
 *   where xterm's paste handler honours bracketed paste;
 * - "focus-out": move the focus from the terminal to the toolbar (F6), for keyboard users;
 * - "terminal": xterm handles it as usual (Ctrl+C without a selection sends ^C).
 */
export type KeyAction = 'copy' | 'paste-native' | 'focus-out' | 'terminal';

export function keyAction(ev: Key, hasSelection: boolean): KeyAction {
  if (ev.altKey || ev.metaKey) return 'terminal'; // Cmd+C/V on a Mac are the browser's already
  const k = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  if (ev.key === 'F6' && !ev.ctrlKey) return 'focus-out';
  if (!ev.ctrlKey) return 'terminal';
  if (k === 'c') {
    if (ev.shiftKey) return 'copy';
    return hasSelection ? 'copy' : 'terminal';
  }
  if (k === 'v') return 'paste-native';
  // Shift+Insert pastes in most terminals; xterm leaves it to the browser already.
  return 'terminal';
}

/**
 * withCtrl is what a character typed while the key bar's Ctrl is held sends: the C0
 * control for @, a-z, [ \ ] ^ _ and ? (DEL), as a terminal's Ctrl does; space is NUL.
 * Anything else is sent as it is.
 */
export function withCtrl(data: string): string {
  if (data.length !== 1) return data;
  const c = data.toUpperCase().charCodeAt(0);
  if (c >= 0x40 && c <= 0x5f) return String.fromCharCode(c - 0x40);
  if (data === ' ') return '\x00';
  if (data === '?') return '\x7f';
  return data;
}

/** The key bar's keys: label, accessible name, and what each sends. */
export interface BarKey {
  id: string;
  label: string;
  name: string;
  /** The bytes to send; arrows depend on the terminal's application cursor mode. */
  send?: (appCursor: boolean) => string;
}

const arrow = (final: string) => (app: boolean) => (app ? `\x1bO${final}` : `\x1b[${final}`);

export const BAR_KEYS: readonly BarKey[] = [
  { id: 'esc', label: 'Esc', name: 'Escape', send: () => '\x1b' },
  { id: 'tab', label: 'Tab', name: 'Tab', send: () => '\t' },
  { id: 'ctrl', label: 'Ctrl', name: 'Control (applies to the next key)' },
  { id: 'left', label: '←', name: 'Left arrow', send: arrow('D') },
  { id: 'up', label: '↑', name: 'Up arrow', send: arrow('A') },
  { id: 'down', label: '↓', name: 'Down arrow', send: arrow('B') },
  { id: 'right', label: '→', name: 'Right arrow', send: arrow('C') },
  { id: 'pipe', label: '|', name: 'Vertical bar', send: () => '|' },
  { id: 'tilde', label: '~', name: 'Tilde', send: () => '~' },
  { id: 'slash', label: '/', name: 'Slash', send: () => '/' },
];

/**
 * osc52Text decodes an OSC 52 clipboard write ("c;BASE64"), or returns null for a
 * query ("c;?"), a clear, or a malformed one. Only the text is returned; whether to
 * write it is the person's call (main.ts asks).
 */
export function osc52Text(data: string): string | null {
  const semi = data.indexOf(';');
  if (semi < 0) return null;
  const b64 = data.slice(semi + 1);
  if (b64 === '' || b64 === '?' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return null;
  try {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}
