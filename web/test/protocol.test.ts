import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client,
  GIVE_UP_ROUTE_MS,
  MAX_INPUT_PAYLOAD,
  afterClose,
  backoff,
  binaryInputFrames,
  clampSize,
  exitText,
  initFrame,
  inputFrames,
  parseExit,
  parseNotice,
  parseObject,
  parseSession,
  readRefusal,
  resizeFrame,
  wsURL,
  type CloseContext,
  type Refusal,
} from '../src/protocol';

const enc = new TextEncoder();
const dec = new TextDecoder();

function join(frames: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length - 1, 0));
  let at = 0;
  for (const f of frames) {
    assert.equal(f[0], Client.INPUT, 'every frame is INPUT');
    out.set(f.subarray(1), at);
    at += f.length - 1;
  }
  return out;
}

test('a 1 MB paste becomes frames of at most 16 KiB that add up to it exactly', () => {
  const line = 'x'.repeat(63) + '\n';
  const paste = line.repeat((1 << 20) / line.length);
  const frames = inputFrames(paste);
  assert.equal(frames.length, 64);
  for (const f of frames) assert.ok(f.length - 1 <= MAX_INPUT_PAYLOAD, `frame of ${f.length - 1} bytes`);
  assert.equal(dec.decode(join(frames)), paste);
});

test('frames are cut between characters, never inside one', () => {
  // 3-byte and 4-byte characters straddling every cut.
  for (const ch of ['€', '😀', 'é']) {
    const text = 'a' + ch.repeat(10_000);
    const frames = inputFrames(text, 1000);
    for (const f of frames) {
      assert.ok(f.length - 1 <= 1000);
      assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(f.subarray(1)), 'each frame is valid UTF-8');
    }
    assert.equal(dec.decode(join(frames)), text);
  }
});

test('small and empty input', () => {
  assert.deepEqual(inputFrames('ls\r').map((f) => [...f]), [[0x30, ...enc.encode('ls\r')]]);
  assert.deepEqual(inputFrames(''), []);
});

test('binary input keeps bytes above 0x7f as they are', () => {
  const data = String.fromCharCode(0x1b, 0x80, 0xff, 0x41);
  const frames = binaryInputFrames(data, 2);
  assert.deepEqual(frames.map((f) => [...f]), [
    [0x30, 0x1b, 0x80],
    [0x30, 0xff, 0x41],
  ]);
});

test('sizes are clamped to what the server accepts', () => {
  const cases: [number, number, number, number][] = [
    [80, 24, 80, 24],
    [1500, 24, 1000, 24],
    [80, 4000, 80, 1000],
    [0, -3, 1, 1],
    [NaN, 12.7, 1, 12],
  ];
  for (const [c, r, wc, wr] of cases) {
    assert.deepEqual(clampSize(c, r), { columns: wc, rows: wr }, `clampSize(${c}, ${r})`);
  }
  assert.equal(dec.decode(resizeFrame(2400, 50)), '1{"columns":1000,"rows":50}');
});

test('init is bare JSON with the extension fields only when set', () => {
  assert.equal(dec.decode(initFrame({ AuthToken: '', columns: 80, rows: 24 })), '{"AuthToken":"","columns":80,"rows":24}');
  const withResume = JSON.parse(dec.decode(initFrame({ AuthToken: 't', columns: 1, rows: 2, resume: 'k', env: 'ubuntu' })));
  assert.deepEqual(withResume, { AuthToken: 't', columns: 1, rows: 2, resume: 'k', env: 'ubuntu' });
});

test('server messages are read defensively', () => {
  assert.equal(parseObject(enc.encode('not json')), null);
  assert.equal(parseObject(enc.encode('[1]')), null);
  assert.deepEqual(parseSession(enc.encode('{"id":"abc","resume":"r1","watch":"w1","idleTimeout":900}')), {
    id: 'abc',
    resume: 'r1',
    watch: 'w1',
    idleTimeout: 900,
  });
  assert.deepEqual(parseSession(enc.encode('{"id":"abc","resume":7}')), { id: 'abc' });
  // A watcher's SESSION: the terminal's size and the route, no keys.
  assert.deepEqual(parseSession(enc.encode('{"id":"abc","columns":120,"rows":40,"route":"pg-a"}')), { id: 'abc', columns: 120, rows: 40, route: 'pg-a' });
  assert.deepEqual(parseSession(enc.encode('{"id":"abc","columns":0,"rows":40}')), { id: 'abc' }, 'no size of zero');
  assert.deepEqual(parseSession(enc.encode('{"id":"abc","columns":5000,"rows":40}')), { id: 'abc' }, 'no size beyond the limit');
  assert.deepEqual(parseSession(enc.encode('{"id":"abc","columns":80}')), { id: 'abc' }, 'both or neither');
  assert.deepEqual(parseExit(enc.encode('{"code":0}')), { code: 0 });
  assert.deepEqual(parseExit(enc.encode('{"code":-1,"signal":"KILL","reason":"memory limit"}')), { code: -1, signal: 'KILL', reason: 'memory limit' });
  assert.deepEqual(parseExit(enc.encode('garbage')), { code: -1 });
  assert.deepEqual(parseNotice(enc.encode('{"level":"warn","text":"idle: this session ends in 60 s"}')), {
    level: 'warn',
    text: 'idle: this session ends in 60 s',
  });
  assert.deepEqual(parseNotice(enc.encode('{"level":"<b>","text":"x"}')), { level: 'info', text: 'x' });
  assert.equal(parseNotice(enc.encode('{"level":"warn"}')), null);
});

test('exit text says how the program ended', () => {
  assert.equal(exitText({ code: 5 }), 'Session ended (exit code 5)');
  assert.equal(exitText({ code: -1, signal: 'KILL', reason: 'memory limit 512 MiB reached' }), 'Session ended: signal KILL (memory limit 512 MiB reached)');
});

test('backoff doubles from about a second to at most 30 s, with jitter', () => {
  assert.equal(backoff(0, 1), 1000);
  assert.equal(backoff(0, 0), 500);
  assert.equal(backoff(3, 1), 8000);
  assert.equal(backoff(5, 1), 30_000);
  assert.equal(backoff(50, 1), 30_000);
  for (let a = 0; a < 20; a++) assert.ok(backoff(a, 0.5) <= backoff(a + 1, 0.5));
});

test('the WebSocket address: relative to the page, with the route only when given', () => {
  assert.equal(wsURL('http://h:8080/', ''), 'ws://h:8080/ws');
  assert.equal(wsURL('https://h/play/?watch=k&route=x#y', 'pg-a'), 'wss://h/play/ws?route=pg-a');
  assert.equal(wsURL('http://h/', 'a b&c'), 'ws://h/ws?route=a%20b%26c');
});

test('/readyz says why a handshake was refused', () => {
  assert.deepEqual(readRefusal(503, 'at capacity: 1 sessions\n'), { kind: 'full', text: 'at capacity: 1 sessions' });
  assert.deepEqual(readRefusal(503, 'draining: the server is shutting down\n'), { kind: 'draining', text: 'draining: the server is shutting down' });
  assert.deepEqual(readRefusal(503, 'environment ubuntu: downloading 40%'), { kind: 'unready', text: 'environment ubuntu: downloading 40%' });
  assert.equal(readRefusal(200, 'ready\n').kind, 'refused');
  assert.equal(readRefusal(null, '').kind, 'unreachable');
  assert.equal(readRefusal(502, '<html>bad gateway</html>').kind, 'unreachable', "a proxy's own error: no server behind it");
});

test('what the page does after each close code', () => {
  const base: CloseContext = { exit: null, hasKey: true, watching: false, attempt: 0, random: 1 };
  const full: Refusal = { kind: 'full', text: 'at capacity: 1 sessions' };
  const down: Refusal = { kind: 'unreachable', text: '' };
  const dead: Refusal = { kind: 'refused', text: '' };
  const cases: { name: string; code: number; ctx?: Partial<CloseContext>; action: string; offer?: string; delay?: number; forget?: boolean; text?: RegExp }[] = [
    { name: 'exit then 1000', code: 1000, ctx: { exit: { code: 0 } }, action: 'stop', offer: 'restart', forget: true },
    { name: '1000 without exit (ended by a limit or an admin)', code: 1000, action: 'stop', offer: 'restart', forget: true },
    { name: 'server shut down: the session is gone, the screen stays', code: 1001, action: 'stop', offer: 'restart', forget: true, text: /server shut down/ },
    { name: 'a watcher after the exit: a session of its own', code: 1000, ctx: { exit: { code: 0 }, watching: true, hasKey: false }, action: 'stop', offer: 'own' },
    { name: 'network dropped: at once', code: 1006, action: 'resume', delay: 0 },
    { name: 'network dropped again: back off', code: 1006, ctx: { attempt: 1 }, action: 'resume', delay: 2000 },
    { name: 'dropped without a resume key: a new session', code: 1006, ctx: { hasKey: false }, action: 'fresh', delay: 0 },
    { name: 'protocol error is not retried', code: 1002, action: 'stop', offer: 'restart' },
    { name: 'too big is not retried', code: 1009, action: 'stop', offer: 'restart' },
    { name: 'policy: wait for the person', code: 1008, action: 'stop', offer: 'retry', forget: false },
    { name: 'start failed: wait for the person', code: 1011, action: 'stop', offer: 'retry' },
    { name: 'at capacity: retry later', code: 1013, action: 'resume', delay: 2000 },
    { name: 'a new session turned away after its init, full: retry, and say so', code: 1013, ctx: { hasKey: false, session: false }, action: 'resume', delay: 2000, text: /^Server full$/ },
    { name: 'a new session turned away after its init while the server drains: retry', code: 1001, ctx: { hasKey: false, session: false }, action: 'resume', delay: 2000, text: /shutting down/ },
    { name: 'a resume cut by the shutdown before its SESSION: the session is gone', code: 1001, ctx: { session: false }, action: 'stop', offer: 'restart', text: /server shut down/ },
    { name: 'resume key unknown: start fresh', code: 4404, action: 'fresh', delay: 0 },
    { name: 'watch key unknown: stop, offer a session of its own', code: 4404, ctx: { watching: true, hasKey: false }, action: 'stop', offer: 'own' },
    { name: 'taken over: do not fight back', code: 4409, action: 'stop', offer: 'takeback' },
    // Refused at the handshake (1006 before open): /readyz said why.
    { name: 'full: retry, and say so', code: 1006, ctx: { opened: false, hasKey: false, refusal: full }, action: 'resume', delay: 1000, text: /^Server full$/ },
    { name: 'full, fourth try: back off', code: 1006, ctx: { opened: false, hasKey: false, refusal: full, attempt: 3 }, action: 'resume', delay: 8000 },
    { name: 'draining', code: 1006, ctx: { opened: false, hasKey: false, refusal: { kind: 'draining', text: 'draining' } }, action: 'resume', text: /shutting down/ },
    { name: 'no server at all', code: 1006, ctx: { opened: false, hasKey: false, refusal: down }, action: 'resume', text: /Cannot reach/ },
    { name: 'a routed resume refused: keep the key for a while', code: 1006, ctx: { opened: false, routed: true, refusal: dead, failingMs: GIVE_UP_ROUTE_MS - 1 }, action: 'resume', text: /session's server/ },
    { name: 'a routed resume refused for long while the site answers: start fresh', code: 1006, ctx: { opened: false, routed: true, refusal: dead, failingMs: GIVE_UP_ROUTE_MS }, action: 'fresh', delay: 0 },
    { name: 'a routed resume while the site is down: keep the key', code: 1006, ctx: { opened: false, routed: true, refusal: down, failingMs: 10 * GIVE_UP_ROUTE_MS }, action: 'resume' },
    { name: 'a routed watch refused for long: stop', code: 1006, ctx: { opened: false, routed: true, watching: true, hasKey: false, refusal: dead, failingMs: GIVE_UP_ROUTE_MS }, action: 'stop', offer: 'retry' },
  ];
  for (const c of cases) {
    const got = afterClose(c.code, '', { ...base, ...c.ctx });
    assert.equal(got.action, c.action, c.name);
    if (c.offer !== undefined) assert.equal(got.action === 'stop' && got.offer, c.offer, c.name);
    if (c.forget !== undefined) assert.equal(got.action === 'stop' && got.forget, c.forget, c.name);
    if (c.delay !== undefined) assert.equal(got.action !== 'stop' && got.delay, c.delay, c.name);
    if (c.text !== undefined) assert.match(got.text, c.text, c.name);
    assert.ok(got.text.length > 0, `${c.name}: says something`);
  }
  const refused = afterClose(1008, 'authentication failed', base);
  assert.match(refused.text, /authentication failed/);
  const watchAsResume = afterClose(1008, 'a watch key cannot resume a session', base);
  assert.deepEqual(watchAsResume.action === 'stop' && [watchAsResume.offer, watchAsResume.forget], ['restart', true], 'a watch key used to resume: final, and forgotten');
  const slowWatcher = afterClose(1008, 'too slow to follow the session', { ...base, watching: true, hasKey: false });
  assert.equal(slowWatcher.action, 'resume', 'a watcher that fell behind follows again');
  const rate = afterClose(1008, 'too many connections from your address, try again later', base);
  assert.equal(rate.action, 'resume', 'a rate limit says try again later: the page does, later');
});
