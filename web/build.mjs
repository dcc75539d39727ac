// Builds the front end into ../static (or the directory given as the first argument, or
// $OUTDIR):
//
//   index.html                 from src/index.html, naming the assets below
//   assets/app-HASH.js         the page (ES module), xterm.js and its addons
//   assets/app-HASH.css        xterm's css and the page's own
//   assets/addon-webgl-HASH.js the WebGL renderer, loaded on demand
//   assets/*.br, assets/*.gz   each asset compressed (brotli 11, gzip 9), for the server
//                              to send as they are to a browser that accepts them
//
// Names carry a hash of the content, so the server can let browsers cache assets for a
// year (static/handler.go), and index.html, which is never cached, picks up a new build.
// The output is committed and embedded in the Go binary, and static_test.go rebuilds it
// into a temporary directory to check that it is fresh, so it depends on nothing but the
// sources and the locked packages: no timestamps, no absolute paths.
//
// `node build.mjs verify DIR` checks that every .br and .gz in DIR/assets decompresses
// to its sibling (compressors may differ between Node versions, so the freshness test
// compares what they decompress to, not their bytes).
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

if (process.argv[2] === 'verify') {
  process.exit(verify(path.resolve(process.argv[3] ?? path.join(here, '..', 'static'))));
}

const outdir = path.resolve(process.argv[2] || process.env.OUTDIR || path.join(here, '..', 'static'));
const assets = path.join(outdir, 'assets');

// Only what this script writes is removed: static/ also holds the Go files.
fs.rmSync(assets, { recursive: true, force: true });
fs.rmSync(path.join(outdir, 'index.html'), { force: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.ts' },
  bundle: true,
  format: 'esm',
  splitting: true,
  target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  // Keep xterm's licence comments, at the end of each file.
  legalComments: 'eof',
  charset: 'utf8',
  outdir,
  entryNames: 'assets/[name]-[hash]',
  chunkNames: 'assets/[name]-[hash]',
  assetNames: 'assets/[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
});

// The entry's script and style sheet, relative to outdir.
const names = {};
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  if (out.entryPoint !== 'src/main.ts') continue;
  names['app.js'] = path.relative(outdir, path.resolve(here, file));
  if (out.cssBundle) names['app.css'] = path.relative(outdir, path.resolve(here, out.cssBundle));
}
if (!names['app.js'] || !names['app.css']) throw new Error(`build: no app.js or app.css in ${JSON.stringify(names)}`);

let html = fs.readFileSync(path.join(here, 'src', 'index.html'), 'utf8');
for (const [k, v] of Object.entries(names)) html = html.replaceAll(`{{${k}}}`, v.split(path.sep).join('/'));
if (html.includes('{{')) throw new Error('build: index.html names an asset the build did not make');
fs.writeFileSync(path.join(outdir, 'index.html'), html);

let raw = 0;
let br = 0;
let gz = 0;
for (const name of fs.readdirSync(assets).sort()) {
  const file = path.join(assets, name);
  const data = fs.readFileSync(file);
  const b = zlib.brotliCompressSync(data, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
      [zlib.constants.BROTLI_PARAM_MODE]: name.endsWith('.css') || name.endsWith('.js') ? zlib.constants.BROTLI_MODE_TEXT : zlib.constants.BROTLI_MODE_GENERIC,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  const g = zlib.gzipSync(data, { level: 9 });
  fs.writeFileSync(`${file}.br`, b);
  fs.writeFileSync(`${file}.gz`, g);
  raw += data.length;
  br += b.length;
  gz += g.length;
}
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`built ${path.join(outdir, 'index.html')} and ${names['app.js']}: assets ${kb(raw)}, brotli ${kb(br)}, gzip ${kb(gz)}`);

function verify(dir) {
  let bad = 0;
  for (const name of fs.readdirSync(path.join(dir, 'assets')).sort()) {
    const ext = path.extname(name);
    if (ext !== '.br' && ext !== '.gz') continue;
    const file = path.join(dir, 'assets', name);
    const plain = file.slice(0, -ext.length);
    try {
      const got = (ext === '.br' ? zlib.brotliDecompressSync : zlib.gunzipSync)(fs.readFileSync(file));
      if (!got.equals(fs.readFileSync(plain))) throw new Error('differs');
    } catch (err) {
      console.error(`${name} does not decompress to ${path.basename(plain)}: ${err.message}`);
      bad++;
    }
  }
  return bad === 0 ? 0 : 1;
}
