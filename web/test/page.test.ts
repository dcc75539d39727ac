import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyAction, osc52Text, withCtrl, BAR_KEYS, type Key } from '../src/keys';
import { DEFAULT_OPTIONS, fromQuery, fromStorage, resolve, withoutParams } from '../src/options';

const key = (k: string, mods: Partial<Key> = {}): Key => ({
  type: 'keydown',
  key: k,
  ctrlKey: false,
  shiftKey: false,
  altKey: false,
  metaKey: false,
  ...mods,
});

test('Ctrl+C copies with a selection and interrupts without one', () => {
  assert.equal(keyAction(key('c', { ctrlKey: true }), true), 'copy');
  assert.equal(keyAction(key('c', { ctrlKey: true }), false), 'terminal');
  assert.equal(keyAction(key('C', { ctrlKey: true, shiftKey: true }), false), 'copy');
  assert.equal(keyAction(key('C', { ctrlKey: true, shiftKey: true }), true), 'copy');
});

test('Ctrl+V and Ctrl+Shift+V paste; other keys are the terminal\'s', () => {
  assert.equal(keyAction(key('v', { ctrlKey: true }), false), 'paste-native');
  assert.equal(keyAction(key('V', { ctrlKey: true, shiftKey: true }), false), 'paste-native');
  assert.equal(keyAction(key('d', { ctrlKey: true }), true), 'terminal');
  assert.equal(keyAction(key('c'), true), 'terminal');
  assert.equal(keyAction(key('c', { metaKey: true }), true), 'terminal', "a Mac's Cmd+C is the browser's");
  assert.equal(keyAction(key('F6'), false), 'focus-out');
});

test('a sticky Ctrl makes control characters', () => {
  assert.equal(withCtrl('c'), '\x03');
  assert.equal(withCtrl('C'), '\x03');
  assert.equal(withCtrl('['), '\x1b');
  assert.equal(withCtrl(' '), '\x00');
  assert.equal(withCtrl('?'), '\x7f');
  assert.equal(withCtrl('1'), '1');
  assert.equal(withCtrl('ab'), 'ab');
});

test('the key bar has the keys a phone keyboard lacks', () => {
  const ids = BAR_KEYS.map((k) => k.id);
  for (const id of ['esc', 'tab', 'ctrl', 'left', 'up', 'down', 'right', 'pipe', 'tilde', 'slash']) assert.ok(ids.includes(id), id);
  const up = BAR_KEYS.find((k) => k.id === 'up')!;
  assert.equal(up.send!(false), '\x1b[A');
  assert.equal(up.send!(true), '\x1bOA', 'application cursor mode');
});

test('OSC 52 writes are decoded, queries and junk refused', () => {
  assert.equal(osc52Text('c;' + Buffer.from('héllo').toString('base64')), 'héllo');
  assert.equal(osc52Text('c;?'), null);
  assert.equal(osc52Text('c;'), null);
  assert.equal(osc52Text('c;!!!'), null);
  assert.equal(osc52Text('nosemicolon'), null);
  assert.equal(osc52Text('c;' + Buffer.from([0xff, 0xfe]).toString('base64')), null, 'not UTF-8');
});

test('options: the URL wins over what was remembered, bad values are ignored', () => {
  const stored = fromStorage(JSON.stringify({ fontSize: 18, theme: 'light', env: 'ubuntu' }));
  assert.deepEqual(resolve(stored, {}), { env: 'ubuntu', fontSize: 18, theme: 'light', screenReader: false });
  const q = fromQuery(new URLSearchParams('fontSize=99&theme=dark&env=python:3.12&screenReader=1'));
  assert.deepEqual(resolve(stored, q), { env: 'python:3.12', fontSize: 32, theme: 'dark', screenReader: true });
  assert.deepEqual(fromQuery(new URLSearchParams('fontSize=big&theme=pink&env=%3Cscript%3E')), {});
  assert.deepEqual(fromStorage('{not json'), {});
  assert.deepEqual(fromStorage(null), {});
  assert.deepEqual(resolve({}, {}), DEFAULT_OPTIONS);
});

test('the token leaves the address bar, other parameters stay', () => {
  assert.equal(withoutParams('http://h:8080/p/?token=s3cret&env=ubuntu#x', ['token']), '/p/?env=ubuntu#x');
  assert.equal(withoutParams('http://h/?token=s3cret', ['token']), '/');
});
