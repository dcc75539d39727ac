// The page's options: what the URL asks for (?env=, ?fontSize=, ?theme=, ?screenReader=),
// remembered per site in localStorage so that the next visit without them gets the same.
// Pure functions; main.ts does the storage.

export type ThemeChoice = 'auto' | 'dark' | 'light';

export interface Options {
  env: string; // "" = the server's default environment
  fontSize: number;
  theme: ThemeChoice;
  screenReader: boolean;
}

export const DEFAULT_OPTIONS: Readonly<Options> = { env: '', fontSize: 14, theme: 'auto', screenReader: false };
export const MIN_FONT = 8;
export const MAX_FONT = 32;

/** The key in localStorage. */
export const STORAGE_KEY = 'playground.options';

/** The query parameters that are options; main.ts leaves the others (watch) alone. */
export const OPTION_PARAMS = ['env', 'fontSize', 'theme', 'screenReader'] as const;

// Environment names as a server may offer them: short, no spaces or markup.
const envName = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

function parseFont(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? Math.min(MAX_FONT, Math.max(MIN_FONT, Math.round(n))) : undefined;
}

function parseTheme(v: unknown): ThemeChoice | undefined {
  return v === 'auto' || v === 'dark' || v === 'light' ? v : undefined;
}

function parseBool(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (v === '1' || v === 'true' || v === 'on' || v === '') return true;
  if (v === '0' || v === 'false' || v === 'off') return false;
  return undefined;
}

function parseEnv(v: unknown): string | undefined {
  if (v === '' || v === 'default') return '';
  return typeof v === 'string' && envName.test(v) ? v : undefined;
}

/** fromStorage reads remembered options; anything malformed is left at its default. */
export function fromStorage(raw: string | null): Partial<Options> {
  if (!raw) return {};
  let o: unknown;
  try {
    o = JSON.parse(raw);
  } catch {
    return {};
  }
  if (typeof o !== 'object' || o === null) return {};
  const r = o as Record<string, unknown>;
  return clean({ env: parseEnv(r.env), fontSize: parseFont(r.fontSize), theme: parseTheme(r.theme), screenReader: parseBool(r.screenReader) });
}

/** fromQuery reads the options a URL's query sets; invalid values are ignored. */
export function fromQuery(params: URLSearchParams): Partial<Options> {
  const get = (k: string) => (params.has(k) ? params.get(k) : undefined);
  return clean({
    env: parseEnv(get('env')),
    fontSize: parseFont(get('fontSize')),
    theme: parseTheme(get('theme')),
    screenReader: parseBool(get('screenReader')),
  });
}

function clean(p: Partial<Options>): Partial<Options> {
  const out: Partial<Options> = {};
  for (const [k, v] of Object.entries(p)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** resolve layers the defaults, the remembered options and the URL's, the URL winning. */
export function resolve(stored: Partial<Options>, query: Partial<Options>): Options {
  return { ...DEFAULT_OPTIONS, ...stored, ...query };
}

/** withoutParams returns the URL with the given query parameters removed (for history.replaceState). */
export function withoutParams(href: string, names: readonly string[]): string {
  const u = new URL(href);
  for (const n of names) u.searchParams.delete(n);
  return u.pathname + (u.searchParams.size ? `?${u.searchParams}` : '') + u.hash;
}
