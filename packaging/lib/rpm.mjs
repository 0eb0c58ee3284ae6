// The .rpm: the same staged tree, described by a spec rendered from
// packaging/rpm/sealcache.spec.in and built by rpmbuild without compiling anything.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { copyTree, normalise, write } from "./stage.mjs";

export const RPM_ARCH = { amd64: "x86_64", arm64: "aarch64", armhf: "armv7hl" };

/**
 * @param {{ repo: string, meta: import("../build.mjs").Meta, arch: string, staged: string, work: string, out: string, nodeMajors: number[] }} o
 * @returns {string} the .rpm's path
 */
export function buildRpm(o) {
  const { meta } = o;
  const rpmArch = RPM_ARCH[o.arch];
  const root = path.join(o.work, "rpm-root");
  copyTree(o.staged, root);
  write(root, "usr/share/licenses/sealcache/LICENSE", fs.readFileSync(path.join(o.repo, "LICENSE")), 0o644);
  write(root, "usr/share/licenses/sealcache/THIRD-PARTY", meta.notices, 0o644);
  // As in the .deb: example units for agents that use exec and render.
  for (const f of fs.readdirSync(path.join(o.repo, "packaging/examples")).sort()) {
    write(root, `usr/share/doc/sealcache/examples/${f}`, fs.readFileSync(path.join(o.repo, "packaging/examples", f)), 0o644);
  }
  fs.mkdirSync(path.join(root, "var/lib/sealcache"), { recursive: true });
  normalise(root, meta.epoch);

  const top = path.join(o.work, "rpmbuild");
  fs.rmSync(top, { recursive: true, force: true });
  fs.mkdirSync(top, { recursive: true });
  const date = new Date(meta.epoch * 1000).toUTCString().split(" ");
  const ensureUser = fs.readFileSync(path.join(o.repo, "packaging/files/ensure-user.sh"), "utf8");
  const spec = fs
    .readFileSync(path.join(o.repo, "packaging/rpm/sealcache.spec.in"), "utf8")
    .replaceAll("@VERSION@", meta.version)
    .replaceAll("@RELEASE@", String(meta.release))
    .replaceAll("@HOMEPAGE@", meta.homepage)
    .replaceAll("@RPMARCH@", rpmArch)
    .replaceAll("@NODEMIN@", String(Math.min(...o.nodeMajors)))
    .replaceAll("@NODEHIGH@", String(Math.max(...o.nodeMajors) + 1))
    .replaceAll("@STAGE@", root)
    .replaceAll("@EMAIL@", meta.email)
    .replaceAll("@DATE@", `${date[0].replace(",", "")} ${date[2]} ${date[1]} ${date[3]}`)
    .replaceAll("@DESCRIPTION@", meta.description)
    .replace("#ENSURE_USER#\n", ensureUser);
  const specFile = path.join(top, "sealcache.spec");
  fs.writeFileSync(specFile, spec);

  execFileSync(
    "rpmbuild",
    [
      "-bb",
      "--target",
      `${rpmArch}-linux`,
      "--define",
      `_topdir ${top}`,
      "--define",
      `_rpmdir ${top}/RPMS`,
      "--define",
      "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
      "--define",
      "_binary_payload w9.xzdio",
      "--define",
      `use_source_date_epoch_as_buildtime 1`,
      "--define",
      `clamp_mtime_to_source_date_epoch 1`,
      specFile,
    ],
    { stdio: "pipe", env: { ...process.env, SOURCE_DATE_EPOCH: String(meta.epoch) } },
  );
  const built = path.join(top, "RPMS", `sealcache-${meta.version}-${meta.release}.${rpmArch}.rpm`);
  fs.mkdirSync(o.out, { recursive: true });
  const file = path.join(o.out, path.basename(built));
  fs.copyFileSync(built, file);
  return file;
}
