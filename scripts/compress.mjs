// Writes a brotli (.br) and a gzip (.gz) copy beside each page file in a folder, for the
// server to send to browsers that accept them (tower-http's ServeDir picks them by
// Accept-Encoding). Node's own zlib: no extra package on a fresh machine.
//   node scripts/compress.mjs DIR
// As a Trunk hook it compresses the staging folder of release builds only (TRUNK_PROFILE).
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const dir = process.argv[2] ?? process.env.TRUNK_STAGING_DIR;
if (!dir) {
  console.error('usage: node scripts/compress.mjs DIR');
  process.exit(2);
}
if (process.env.TRUNK_PROFILE && process.env.TRUNK_PROFILE !== 'release') process.exit(0);

for (const name of readdirSync(dir)) {
  if (!/\.(wasm|js|css|html|svg|json)$/.test(name)) continue;
  const file = path.join(dir, name);
  if (!statSync(file).isFile()) continue;
  const data = readFileSync(file);
  writeFileSync(`${file}.br`, zlib.brotliCompressSync(data, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  }));
  writeFileSync(`${file}.gz`, zlib.gzipSync(data, { level: 9 }));
}
