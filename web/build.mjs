// Builds the front end into ../static (or the directory given as the first argument,
// or $OUTDIR): app.js and app.css (xterm's css plus the page's own). The output is
// committed and embedded in the Go binary, and static_test.go rebuilds it into a
// temporary directory to check that it is fresh, so it must depend on nothing but
// the sources and the locked packages: no timestamps, no absolute paths.
import * as esbuild from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] || process.env.OUTDIR || path.join(here, '..', 'static'));

await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.ts' },
  bundle: true,
  format: 'iife',
  target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  // Keep xterm's licence comments, at the end of each file.
  legalComments: 'eof',
  charset: 'utf8',
  outdir,
  logLevel: 'warning',
});
console.log(`built ${path.join(outdir, 'app.js')} and app.css`);
