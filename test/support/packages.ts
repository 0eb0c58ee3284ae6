// The packages `npm run test:package` builds before its tests run.
import fs from "node:fs";
import path from "node:path";
import { ROOT } from "./daemon.js";

export const PACKAGES = path.join(ROOT, "dist/packages");
// @ts-expect-error -- plain ESM build script without type declarations
import { RPM_ARCH as RPM_ARCHES } from "../../packaging/lib/rpm.mjs";

const RPM_ARCH = RPM_ARCHES as Record<string, string>;

/**
 * The config the package tests write over the shipped conffile: host sealing, one
 * file secret, root as admin, and the agent user under `agentMatch`.
 */
export function packagedConfig(agentMatch: string): string {
  return `data_dir: /var/lib/sealcache
socket: /run/sealcache/sealcache.sock
seal: { type: host }
providers:
  local: { type: file, dir: /etc/sealcache/files }
secrets:
  demo/api-token: { provider: local, path: api-token }
policy:
  - { match: { uid: 0 }, allow: ["**"], admin: true }
  - { match: ${agentMatch}, allow: ["demo/*"] }
`;
}

export function builtPackage(kind: "deb" | "rpm", arch: string, release = 1): string {
  const version = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")).version as string;
  const name = kind === "deb" ? `sealcache_${version}-${release}_${arch}.deb` : `sealcache-${version}-${release}.${RPM_ARCH[arch]}.rpm`;
  const file = path.join(PACKAGES, name);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run npm run test:package (it builds the packages first)`);
  return file;
}
