// Runs the unit tests of web/test/*.test.ts with node's own test runner: esbuild turns
// each into a JavaScript module in a temporary directory (node 20 cannot run
// TypeScript), then `node --test` runs them. static/static_test.go runs this from
// `go test`; by hand: `npm --prefix web test`.
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const tests = fs.readdirSync(path.join(here, 'test')).filter((f) => f.endsWith('.test.ts')).sort();
if (tests.length === 0) throw new Error('no tests in web/test');
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'playground-web-test-'));
try {
  await esbuild.build({
    absWorkingDir: here,
    entryPoints: tests.map((f) => `test/${f}`),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outdir: out,
    outExtension: { '.js': '.mjs' },
    logLevel: 'warning',
  });
  const files = fs.readdirSync(out).filter((f) => f.endsWith('.mjs')).sort().map((f) => path.join(out, f));
  const r = spawnSync(process.execPath, ['--test', ...files], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
} finally {
  fs.rmSync(out, { recursive: true, force: true });
}
