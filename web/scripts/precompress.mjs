// Writes a .br and a .gz beside every built asset; portal-api's static files handler serves the
// variant the browser accepts (Content-Encoding, Vary: Accept-Encoding), so nothing is compressed
// per request. Node's own zlib does the work.
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = "dist/assets";
let raw = 0;
let gz = 0;
for (const name of readdirSync(dir)) {
  if (!/\.(js|css|svg|json|txt)$/.test(name)) continue;
  const body = readFileSync(join(dir, name));
  const g = gzipSync(body, { level: 9 });
  writeFileSync(join(dir, `${name}.gz`), g);
  writeFileSync(
    join(dir, `${name}.br`),
    brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: body.length } }),
  );
  raw += body.length;
  gz += g.length;
}
console.log(`precompressed dist/assets: ${(raw / 1024).toFixed(0)} kB, ${(gz / 1024).toFixed(0)} kB gzipped`);
