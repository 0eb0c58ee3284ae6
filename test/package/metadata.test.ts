// What the package managers and their linters see in the built packages, and
// what systemd thinks of the unit.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ROOT } from "../support/daemon.js";
import { builtPackage } from "../support/packages.js";

const ARCHES = ["amd64", "arm64", "armhf"].filter((a) => {
  try {
    builtPackage("deb", a);
    return true;
  } catch {
    return false;
  }
});

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test("amd64 and arm64 packages were built", () => {
  assert.ok(ARCHES.includes("amd64") && ARCHES.includes("arm64"), `built: ${ARCHES.join(", ")}`);
});

for (const arch of ARCHES) {
  test(`lintian passes the ${arch} .deb (overrides in packaging/deb/lintian-overrides, each with its reason)`, () => {
    const r = run("lintian", ["--fail-on", "error,warning", "--display-info", "--tag-display-limit", "0", builtPackage("deb", arch)]);
    assert.equal(r.status, 0, r.out);
    assert.doesNotMatch(r.out, /^[EW]: /m, r.out);
  });

  test(`rpmlint passes the ${arch} .rpm with no errors or warnings (filters in packaging/rpm/rpmlint.toml)`, () => {
    const r = run("rpmlint", ["-c", path.join(ROOT, "packaging/rpm/rpmlint.toml"), builtPackage("rpm", arch)]);
    assert.match(r.out, / 0 errors, 0 warnings/, r.out);
  });

  test(`the ${arch} .deb declares nodejs, the TPM libraries and the conffile`, () => {
    const deb = builtPackage("deb", arch);
    const depends = execFileSync("dpkg-deb", ["-f", deb, "Depends"], { encoding: "utf8" });
    assert.match(depends, /nodejs \(>= 20\), nodejs \(<< \d+\)/);
    assert.match(depends, /libc6 \(>= 2\.\d+\), libstdc\+\+6 \(>= \d+/, "library floors derived from the addons");
    assert.match(depends, /libtss2-esys-3\.0\.2-0/);
    assert.match(depends, /libtss2-tcti-device0/);
    assert.match(depends, /libtss2-tctildr0/);
    assert.equal(execFileSync("dpkg-deb", ["-f", deb, "Architecture"], { encoding: "utf8" }).trim(), arch);
    assert.equal(execFileSync("dpkg-deb", ["-I", deb, "conffiles"], { encoding: "utf8" }).trim(), "/etc/sealcache/sealcache.yaml");
    const files = execFileSync("dpkg-deb", ["-c", deb], { encoding: "utf8" });
    assert.doesNotMatch(files, /\.map$|\/src\/|\/deps\/|\.gyp/m, "no source maps or addon sources in the package");
    const machine = { amd64: "x86-64", arm64: "aarch64", armhf: "ARM" }[arch]!;
    const tmp = fs.mkdtempSync("/tmp/sc-deb-x-");
    try {
      execFileSync("dpkg-deb", ["-x", deb, tmp]);
      const addons = execFileSync("find", [tmp, "-name", "*.node"], { encoding: "utf8" }).trim().split("\n");
      assert.ok(addons.length >= 2, addons.join("\n"));
      for (const a of addons) assert.match(execFileSync("file", ["-b", a], { encoding: "utf8" }), new RegExp(`ELF .*${machine}`), a);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  test(`the ${arch} .deb installs the exec and render example units as documentation, and the man page covers both`, () => {
    const deb = builtPackage("deb", arch);
    const files = execFileSync("dpkg-deb", ["-c", deb], { encoding: "utf8" });
    const examples = fs.readdirSync(path.join(ROOT, "packaging/examples")).sort();
    assert.ok(examples.length >= 4, examples.join(", "));
    for (const f of examples) {
      assert.match(files, new RegExp(`^-rw-r--r-- root/root .* \\./usr/share/doc/sealcache/examples/${f.replace(/\./g, "\\.")}$`, "m"), f);
      const shipped = execFileSync("sh", ["-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO "./usr/share/doc/sealcache/examples/$2"`, "sh", deb, f]);
      assert.deepEqual(shipped, fs.readFileSync(path.join(ROOT, "packaging/examples", f)), `${f} as in packaging/examples`);
    }
    const man = execFileSync("sh", ["-c", `dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/share/man/man1/sealcache.1.gz | zcat`, "sh", deb], {
      encoding: "utf8",
    });
    assert.match(man, /^exec \\-\\-env VAR=NAME\.\.\. /m);
    assert.match(man, /^render \\-\\-template T \\-\\-out F /m);
    const rpmFiles = execFileSync("rpm", ["-qlp", builtPackage("rpm", arch)], { encoding: "utf8" });
    for (const f of examples) assert.match(rpmFiles, new RegExp(`^/usr/share/doc/sealcache/examples/${f.replace(/\./g, "\\.")}$`, "m"), `.rpm: ${f}`);
  });

  test(`the ${arch} .rpm lists the same files, a noreplace config, and scripts that create the user`, () => {
    const rpm = builtPackage("rpm", arch);
    const files = execFileSync("rpm", ["-qlp", rpm], { encoding: "utf8" });
    for (const f of [
      "/usr/bin/sealcache",
      "/usr/lib/sealcache/main.mjs",
      "/usr/lib/systemd/system/sealcache.service",
      "/etc/sealcache/sealcache.yaml",
      "/var/lib/sealcache",
    ]) {
      assert.match(files, new RegExp(`^${f.replace(/\./g, "\\.")}$`, "m"), f);
    }
    assert.match(execFileSync("rpm", ["-qcp", rpm], { encoding: "utf8" }), /^\/etc\/sealcache\/sealcache\.yaml$/m);
    const scripts = execFileSync("rpm", ["-qp", "--scripts", rpm], { encoding: "utf8" });
    assert.match(scripts, /preinstall scriptlet[\s\S]*useradd --system --gid sealcache/);
    assert.match(scripts, /postinstall scriptlet[\s\S]*systemctl --no-reload preset sealcache\.service/);
    assert.match(scripts, /preuninstall scriptlet[\s\S]*disable sealcache\.service[\s\S]*stop sealcache\.service/);
    const requires = execFileSync("rpm", ["-qpR", rpm], { encoding: "utf8" });
    // Epochs spelled out: Fedora's nodejs is 1:X, NodeSource's 2:X; a bare `>= 20` would accept 1:16.
    assert.match(requires, /^\(\(nodejs >= 1:20 with nodejs < 1:\d+\) or \(nodejs >= 2:20 with nodejs < 2:\d+\)\)$/m);
    assert.match(requires, /^tpm2-tss$/m);
    const perms = execFileSync("rpm", ["-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]", rpm], { encoding: "utf8" });
    assert.match(perms, /^drwx------ sealcache \/var\/lib\/sealcache$/m);
  });
}

test("systemd-analyze verifies the unit and rates its exposure OK", () => {
  const tmp = fs.mkdtempSync("/tmp/sc-unit-");
  try {
    execFileSync("dpkg-deb", ["-x", builtPackage("deb", "amd64"), tmp]);
    // The package's files as the root, beside this machine's own units (the
    // targets the unit names), so ExecStart= and After= resolve as on a gateway.
    for (const u of fs.readdirSync("/usr/lib/systemd/system")) {
      const to = path.join(tmp, "usr/lib/systemd/system", u);
      if (!fs.existsSync(to)) fs.cpSync(path.join("/usr/lib/systemd/system", u), to, { recursive: true, verbatimSymlinks: true });
    }
    const unit = path.join(tmp, "usr/lib/systemd/system/sealcache.service");
    const verify = run("systemd-analyze", ["verify", `--root=${tmp}`, "--man=no", unit]);
    assert.equal(verify.status, 0, verify.out);
    const security = run("systemd-analyze", ["security", "--offline=true", `--root=${tmp}`, unit]);
    const exposure = /Overall exposure level for sealcache\.service: ([\d.]+) (\w+)/.exec(security.out);
    assert.ok(exposure, security.out);
    assert.ok(Number(exposure[1]) <= 2.0, `exposure ${exposure[1]} ${exposure[2]}`);
    const text = fs.readFileSync(unit, "utf8");
    for (const line of [
      "Type=notify",
      "ProtectSystem=strict",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "NoNewPrivileges=yes",
      "ReadWritePaths=/var/lib/sealcache",
      "RuntimeDirectory=sealcache",
      "DeviceAllow=/dev/tpmrm0 rw",
      "DevicePolicy=closed",
      "CapabilityBoundingSet=\n",
      "SystemCallFilter=@system-service",
      "LimitCORE=0",
      "Restart=on-failure",
      "WatchdogSec=",
    ]) {
      assert.ok(text.includes(line), `the unit sets ${line.trim()}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
