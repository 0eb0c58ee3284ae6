// Checks made before handing a TCTI string to the loader, so a missing library or
// device is reported by name instead of as a bare TSS2_TCTI_RC_* code.
import fs from "node:fs";
import { TpmError } from "./errors.js";
import { canLoad } from "./lib.js";

/** Debian package of each TCTI (tpm2-tss and tpm2-abrmd). */
export const TCTI_PACKAGES: Readonly<Record<string, string>> = {
  device: "libtss2-tcti-device0",
  swtpm: "libtss2-tcti-swtpm0",
  mssim: "libtss2-tcti-mssim0",
  tabrmd: "libtss2-tcti-tabrmd0",
  pcap: "libtss2-tcti-pcap0",
  cmd: "libtss2-tcti-cmd0",
  libtpms: "libtss2-tcti-libtpms0",
  "spi-helper": "libtss2-tcti-spi-helper0",
};

/** "swtpm:host=…,port=…" → ["swtpm", "host=…,port=…"]. */
export function splitTcti(nameConf: string): [name: string, conf: string] {
  const i = nameConf.indexOf(":");
  return i < 0 ? [nameConf, ""] : [nameConf.slice(0, i), nameConf.slice(i + 1)];
}

/** Throws a TpmError naming the missing TCTI library or TPM device; recurses into pcap's child TCTI. */
export function preflight(nameConf: string): void {
  const [name, conf] = splitTcti(nameConf);
  if (name === "" || name.includes("/") || name.includes(".so")) return; // default TCTI or a library path: the loader decides
  const candidates = [`libtss2-tcti-${name}.so.0`, `libtss2-tcti-${name}.so`];
  if (!candidates.some(canLoad)) {
    const pkg = TCTI_PACKAGES[name];
    throw new TpmError(
      "tcti-missing",
      pkg
        ? `the TCTI "${name}" (seal.tcti ${JSON.stringify(nameConf)}) is not installed: ${candidates[0]} cannot be loaded; install the Debian package ${pkg}`
        : `there is no TCTI named "${name}" (seal.tcti ${JSON.stringify(nameConf)}): ${candidates[0]} cannot be loaded; known TCTIs are ` +
            `${Object.keys(TCTI_PACKAGES).join(", ")} (Debian packages libtss2-tcti-<name>0)`,
    );
  }
  if (name === "device") checkDevice(conf);
  if (name === "pcap" && conf !== "") preflight(conf);
}

function checkDevice(conf: string): void {
  const paths = conf !== "" ? [conf] : ["/dev/tpmrm0", "/dev/tpm0"];
  const path = paths.find((p) => fs.existsSync(p));
  if (!path) {
    throw new TpmError(
      "no-device",
      `no TPM device at ${paths.join(" or ")}: this machine has no TPM 2.0 or its driver is not loaded (check ls /dev/tpm* and dmesg | grep -i tpm). ` +
        `On hardware without a TPM set seal.type: host in the config (the cache key is then only as safe as the disk).`,
    );
  }
  try {
    fs.accessSync(path, fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    let owner = "";
    try {
      const st = fs.statSync(path);
      owner = ` (owner uid ${st.uid}, gid ${st.gid}, mode ${(st.mode & 0o777).toString(8)})`;
    } catch {
      /* stat failed as well; the access error says enough */
    }
    throw new TpmError(
      "permission",
      `the TPM device ${path}${owner} cannot be opened for reading and writing by uid ${process.geteuid?.() ?? "?"}; add the daemon's user to the ` +
        `device's group (usually tss) or fix the udev rule`,
    );
  }
}

/** What to check when a TCTI that passed preflight still cannot reach the TPM. */
export function reachHint(nameConf: string): string {
  const [name, conf] = splitTcti(nameConf);
  switch (name) {
    case "swtpm":
    case "mssim":
      return `is the TPM simulator running and listening at ${conf || "its default port"}?`;
    case "tabrmd":
      return "is tpm2-abrmd running (systemctl status tpm2-abrmd)?";
    case "device":
      return "the TPM device did not answer; check dmesg for TPM errors";
    case "pcap":
      return reachHint(conf);
    default:
      return "check the seal.tcti setting";
  }
}
