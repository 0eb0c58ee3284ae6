// Which better-sqlite3 build the store loads: a package's native/ build for this
// Node's ABI, found from the bundle's main.mjs whether the code sits in main.mjs or
// in chunks/, and node_modules' own build (undefined) anywhere else. Fake bundles
// in temp folders; the files are empty, since only their names are looked at.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { isNativeBindingError, sqliteNativeBinding } from "../../../src/store/sqlite-binding.js";
import { tmpDir } from "../../support/tmp.js";

const NODE20 = { node: "20.20.2", modules: "115" };

function touch(file: string, text = ""): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

/** A packaged bundle: main.mjs, a chunk, and native/ with builds for the given ABIs. */
function bundle(root: string, abis: Record<string, string> | null, manifest = true): string {
  touch(path.join(root, "main.mjs"));
  touch(path.join(root, "chunks/store-AB12CD34.mjs"));
  if (abis) {
    for (const abi of Object.keys(abis)) touch(path.join(root, `native/better_sqlite3-node-v${abi}.node`));
    const bindings = Object.entries(abis).map(([abi, node]) => ({ file: `better_sqlite3-node-v${abi}.node`, abi: Number(abi), node }));
    if (manifest) touch(path.join(root, "native/manifest.json"), JSON.stringify({ arch: "arm64", bindings }));
  }
  return root;
}

const url = (file: string) => pathToFileURL(file).href;

test("from a chunk of a packaged bundle, the build for this Node's ABI", (t) => {
  const root = bundle(tmpDir(t), { 115: "20.20.2", 127: "22.23.3" });
  const got = sqliteNativeBinding({ moduleUrl: url(path.join(root, "chunks/store-AB12CD34.mjs")), versions: NODE20 });
  assert.equal(got, path.join(root, "native/better_sqlite3-node-v115.node"));
});

test("from main.mjs itself (code not split out), the same build", (t) => {
  const root = bundle(tmpDir(t), { 115: "20.20.2", 127: "22.23.3" });
  const got = sqliteNativeBinding({ moduleUrl: url(path.join(root, "main.mjs")), versions: { node: "22.23.3", modules: "127" } });
  assert.equal(got, path.join(root, "native/better_sqlite3-node-v127.node"));
});

test("a bundle without native/ (dist/ in a checkout) uses node_modules' build", (t) => {
  const root = bundle(tmpDir(t), null);
  for (const f of ["main.mjs", "chunks/store-AB12CD34.mjs"]) {
    assert.equal(sqliteNativeBinding({ moduleUrl: url(path.join(root, f)), versions: NODE20 }), undefined);
  }
});

test("sources outside a bundle (tsx) use node_modules' build, even beside a native/", (t) => {
  const root = tmpDir(t);
  touch(path.join(root, "src/store/store.ts"));
  touch(path.join(root, "native/better_sqlite3-node-v115.node"));
  assert.equal(sqliteNativeBinding({ moduleUrl: url(path.join(root, "src/store/sqlite-binding.ts")), versions: NODE20 }), undefined);
});

test("only main.mjs's own folder and its parent count: one further up is not this bundle", (t) => {
  const root = bundle(tmpDir(t), { 115: "20.20.2" });
  touch(path.join(root, "chunks/deeper/x.mjs"));
  assert.equal(sqliteNativeBinding({ moduleUrl: url(path.join(root, "chunks/deeper/x.mjs")), versions: NODE20 }), undefined);
});

test("this module in the checkout (tests, npm run build) selects no packaged build", () => {
  assert.equal(sqliteNativeBinding(), undefined);
});

test("no build for this ABI: names this Node, the builds carried and what to install", (t) => {
  const root = bundle(tmpDir(t), { 115: "20.20.2", 127: "22.23.3", 137: "24.21.0" });
  const at = url(path.join(root, "chunks/store-AB12CD34.mjs"));
  assert.throws(
    () => sqliteNativeBinding({ moduleUrl: at, versions: { node: "25.1.0", modules: "141" } }),
    (e: unknown) => {
      assert.ok(isNativeBindingError(e));
      assert.equal(e.code, "config");
      assert.equal(
        e.message,
        `this sealcache package has no SQLite (better-sqlite3) build for Node 25.1.0 (ABI 141): ${path.join(root, "native")} carries ` +
          "ABI 115 (Node 20.20.2), ABI 127 (Node 22.23.3), ABI 137 (Node 24.21.0); " +
          "install Node.js 20, 22, 24 (the nodejs package) or a sealcache package built for Node 25",
      );
      return true;
    },
  );
});

test("without a readable manifest the message still lists the ABIs carried", (t) => {
  const root = bundle(tmpDir(t), { 115: "20.20.2" }, false);
  touch(path.join(root, "native/manifest.json"), "{ not json");
  assert.throws(
    () => sqliteNativeBinding({ moduleUrl: url(path.join(root, "main.mjs")), versions: { node: "18.19.0", modules: "108" } }),
    /build for Node 18\.19\.0 \(ABI 108\): .* carries ABI 115; install a Node\.js whose ABI \(node -p process\.versions\.modules\) is one of those$/,
  );
});

test("a native/ with no builds at all says so", (t) => {
  const root = bundle(tmpDir(t), {});
  assert.throws(
    () => sqliteNativeBinding({ moduleUrl: url(path.join(root, "main.mjs")), versions: NODE20 }),
    /carries none; the package is damaged: reinstall sealcache$/,
  );
});
