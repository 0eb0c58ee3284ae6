import fs from "node:fs";
import path from "node:path";
import { parseDuration } from "../../config/duration.js";
import { MAX_COMMAND_LIFETIME_MS } from "../../config/mqtt-schema.js";
import { nameProblem } from "../../config/names.js";
import { clipPath, quote } from "../../config/quote.js";
import { SealcacheError } from "../../errors.js";
import { FLEET_CMDS, type FleetCmd } from "../../fleet/command.js";
import { generateSigningKey, parseSigningKey, signCommand } from "../../fleet/sign.js";
import { COMMANDS } from "../args.js";
import type { GlobalOptions, Io } from "../context.js";
import { UsageError } from "../exit.js";

/** What a gateway accepts by default (`mqtt.commands.max_lifetime`); longer is warned about, not refused. */
const DEFAULT_MAX_LIFETIME_MS = 30 * 86_400_000;
const DEVICE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const usage = (cmd: "fleet keygen" | "fleet sign", why: string) => new UsageError(`${why}: sealcache ${COMMANDS[cmd]!.synopsis}`);

/**
 * `fleet keygen --out F`: an Ed25519 key pair for signing fleet commands. The
 * private key goes to F (0600), the public key to F.pub; neither is ever
 * overwritten (a fleet's trust in a key is not something to lose to a typo).
 * Runs on the operator's machine: it needs no config and no daemon.
 */
export async function fleetKeygen(g: GlobalOptions, o: { out: string | undefined }, io: Io): Promise<number> {
  if (!o.out) throw usage("fleet keygen", "--out F is required (the private key is written to F, the public key to F.pub)");
  const priv = path.resolve(o.out);
  const pub = `${priv}.pub`;
  for (const f of [priv, pub])
    if (fs.existsSync(f)) throw new SealcacheError("bad_request", `${clipPath(f)} exists; a key is never overwritten: remove it or choose another --out`);
  const { privatePem, publicPem } = generateSigningKey();
  writeNew(priv, privatePem, 0o600);
  try {
    writeNew(pub, publicPem, 0o644);
  } catch (e) {
    fs.rmSync(priv, { force: true });
    throw e;
  }
  const kid = defaultKid(priv);
  if (g.json) io.out(JSON.stringify({ private_key: priv, public_key: pub, kid }) + "\n");
  else {
    io.out(
      `wrote the private key ${priv} (0600: keep it on the operator's side, never on a gateway)\n` +
        `and the public key ${pub}; trust it on each gateway:\n` +
        `  mqtt: { commands: { trust: { ${kid}: /etc/sealcache/${path.basename(pub)} } } }\n` +
        `then sign commands with: sealcache fleet sign --key ${o.out} --aud DEVICE|fleet --cmd refresh|revoke --name NAME\n`,
    );
  }
  return 0;
}

export interface SignOptions {
  readonly key: string | undefined;
  readonly aud: string | undefined;
  readonly cmd: string | undefined;
  readonly names: readonly string[];
  readonly all: boolean;
  readonly ttl: string | undefined;
  readonly kid: string | undefined;
}

/**
 * `fleet sign`: prints a signed command (JWS compact, EdDSA) on stdout, and only
 * that, so `mosquitto_pub -m "$(sealcache fleet sign ...)"` sends it as is. With
 * --json: the token and its claims.
 */
export async function fleetSign(g: GlobalOptions, o: SignOptions, io: Io): Promise<number> {
  if (!o.key) throw usage("fleet sign", "--key F is required (the private key fleet keygen wrote)");
  if (!o.aud) throw usage("fleet sign", "--aud is required: a device id, or fleet for every gateway");
  if (!DEVICE.test(o.aud)) throw usage("fleet sign", `--aud ${quote(o.aud)} is not a device id (1-64 letters, digits, '.', '_' or '-') nor fleet`);
  if (!o.cmd || !FLEET_CMDS.includes(o.cmd as FleetCmd))
    throw usage("fleet sign", `--cmd must be one of ${FLEET_CMDS.join(", ")}${o.cmd ? `, not ${quote(o.cmd)}` : ""}`);
  if (o.all && o.names.length > 0) throw usage("fleet sign", "--name and --all exclude each other");
  if (!o.all && o.names.length === 0) throw usage("fleet sign", "name the secrets with --name N (repeatable), or --all");
  for (const n of o.names) {
    const problem = nameProblem(n);
    if (problem) throw usage("fleet sign", `--name ${quote(n)} ${problem}`);
  }
  const ttlMs = parseDuration(o.ttl ?? "7d");
  if (ttlMs === undefined || ttlMs < 1000) throw usage("fleet sign", `--ttl must be a duration of at least 1s such as 1h or 7d, not ${quote(o.ttl)}`);
  if (ttlMs > MAX_COMMAND_LIFETIME_MS) throw usage("fleet sign", `--ttl may be at most 365d (no gateway accepts a longer-lived command)`);
  const kid = o.kid ?? defaultKid(o.key);
  if (!KID.test(kid))
    throw usage(
      "fleet sign",
      `the key name ${quote(kid)} is not a valid kid (1-64 letters, digits, '.', '_' or '-'); give --kid NAME, the name the gateways' mqtt.commands.trust uses`,
    );
  let pem: string;
  try {
    pem = fs.readFileSync(o.key, "latin1");
  } catch (e) {
    throw new SealcacheError("bad_request", `cannot read the key ${clipPath(o.key)} (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let key: ReturnType<typeof parseSigningKey>;
  try {
    key = parseSigningKey(pem, clipPath(o.key));
  } catch (e) {
    throw new SealcacheError("bad_request", (e as Error).message);
  }
  if (ttlMs > DEFAULT_MAX_LIFETIME_MS)
    io.err(`sealcache: warning: --ttl ${o.ttl} is longer than the default mqtt.commands.max_lifetime (30d); gateways that keep the default refuse it\n`);
  const target = o.all ? ({ all: true } as const) : { names: o.names };
  const signed = await signCommand({ key, kid, aud: o.aud, cmd: o.cmd as FleetCmd, target, ttlMs, nowMs: Date.now() });
  if (g.json) io.out(JSON.stringify({ token: signed.token, jti: signed.jti, kid, aud: o.aud, cmd: o.cmd, iat: signed.iat, exp: signed.exp }) + "\n");
  else io.out(`${signed.token}\n`);
  return 0;
}

/** A key file's name without its folder and a .key/.pem extension: `/ops/fleet-ops.key` → `fleet-ops`. */
function defaultKid(file: string): string {
  return path.basename(file).replace(/\.(key|pem)$/, "");
}

function writeNew(file: string, text: string, mode: number): void {
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
  try {
    fs.writeSync(fd, text);
    fs.fchmodSync(fd, mode);
  } finally {
    fs.closeSync(fd);
  }
}
