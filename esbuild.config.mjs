// Bundles the CLI (which is also the daemon) into dist/. Providers and sealers are
// imported dynamically, so with splitting on each lands in its own chunk and a
// gateway only parses the backends its config names.
import { build } from "esbuild";
import { readFileSync, rmSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

const banner = [
  // CJS dependencies (pino, yaml) call require() for node builtins; ESM output needs one.
  "import { createRequire as __scCreateRequire } from 'node:module';",
  "const require = __scCreateRequire(import.meta.url);",
].join("\n");

// Chunk names carry content hashes; without this, every build would leave the last one's behind.
// Only the bundle's own files go: dist/packages and dist/stage belong to `npm run package`.
for (const f of ["chunks/", "main.mjs", "main.mjs.map"]) rmSync(new URL(`./dist/${f}`, import.meta.url), { recursive: true, force: true });

await build({
  entryPoints: { main: "src/main.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  // Native addons stay in node_modules: they are built per architecture.
  external: ["better-sqlite3", "koffi"],
  banner: { js: banner },
  // CJS dependencies that compute paths from __dirname at load (google-gax, for
  // proto files it never reads: the protos are bundled as JSON) get the chunk's own folder.
  define: { __SEALCACHE_VERSION__: JSON.stringify(pkg.version), __dirname: "import.meta.dirname", __filename: "import.meta.filename" },
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
  metafile: false,
});
