import fs from "node:fs";
import type { z } from "zod";
import type { Logger } from "../../log.js";
import { ProviderError, isProviderError } from "../provider.js";
import { statusOf } from "./errors.js";
import type { vaultSchema } from "./schema.js";
import type { VaultClient } from "./client.js";

type AuthConfig = z.output<ReturnType<typeof vaultSchema>>["auth"];

/** Renew a token once this share of its TTL has passed (Vault Agent renews at about 2/3). */
const RENEW_AT = 2 / 3;
/** A renewal that grants less than this share of the token's original TTL means max_ttl is near: log in again. */
const SHORT_GRANT = 1 / 3;

interface TokenState {
  /** ms epoch, Infinity for a token without TTL (root or periodic without ttl). */
  expiresAt: number;
  renewAt: number;
  renewable: boolean;
  ttl: number;
}

/**
 * Keeps a valid Vault token in the client: logs in (token file, AppRole,
 * Kubernetes, JWT), renews the token in the background before its TTL runs out
 * (renew-self at 2/3 of the TTL, like Vault Agent's lifetime watcher), and logs
 * in again when renewal is refused or the token reaches its max TTL.
 *
 * The token lives in memory only. An AppRole secret_id is read from its file at
 * each login; Vault consumes a single-use one, so the token it bought is kept and
 * renewed for as long as Vault allows, and a new login happens only when renewal
 * no longer works. Writing the token to disk (even sealed) would let a stolen
 * cache re-authenticate; after a restart the daemon needs a fresh secret_id
 * (the orchestrator that delivered the first one delivers the next), exactly as
 * Vault Agent does with remove_secret_id_file_after_reading.
 */
export class VaultAuth {
  readonly #client: VaultClient;
  readonly #cfg: AuthConfig;
  readonly #log: Logger;
  #state: TokenState | undefined;
  #pending: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: { client: VaultClient; auth: AuthConfig; logger: Logger }) {
    this.#client = opts.client;
    this.#cfg = opts.auth;
    this.#log = opts.logger;
  }

  /** Ensures a usable token: logs in if there is none, renews if due. Concurrent callers share one attempt. */
  async ensure(signal: AbortSignal): Promise<void> {
    const s = this.#state;
    if (s && Date.now() < s.renewAt) return;
    this.#pending ??= (s ? this.#renewOrLogin(signal) : this.#login(signal)).finally(() => (this.#pending = undefined));
    return this.#pending;
  }

  /** The token was refused for a read: forget it, so the next ensure() logs in again. */
  invalidate(): void {
    this.#state = undefined;
    this.#client.token = "";
  }

  /** Checks the current token with lookup-self; false when Vault no longer accepts it. */
  async tokenValid(signal: AbortSignal): Promise<boolean> {
    try {
      await this.#client.tokenLookupSelf({ requestOptions: { signal } });
      return true;
    } catch (e) {
      const st = statusOf(e);
      if (st === 403 || st === 401) return false;
      throw isProviderError(e) ? e : new ProviderError("transient", `vault token lookup-self failed (HTTP ${st ?? "?"})`);
    }
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  async #renewOrLogin(signal: AbortSignal): Promise<void> {
    const s = this.#state!;
    if (s.renewable && Date.now() < s.expiresAt) {
      try {
        const r = await this.#client.tokenRenewSelf({ increment: Math.round(s.ttl / 1000), requestOptions: { signal } });
        const ttl = seconds(r?.auth?.lease_duration);
        if (ttl !== undefined && ttl * 1000 >= s.ttl * SHORT_GRANT) {
          this.#set(ttl, r?.auth?.renewable !== false, s.ttl);
          this.#log.debug({ ttl_s: ttl }, "vault token renewed");
          return;
        }
        this.#log.info({ ttl_s: ttl }, "vault token near its max TTL; logging in again");
      } catch (e) {
        if (isProviderError(e) && Date.now() < s.expiresAt) {
          // Vault unreachable: the token is still good; try again on the next call.
          s.renewAt = Math.min(s.expiresAt, Date.now() + 5_000);
          this.#arm();
          this.#log.warn({ err: e.message }, "vault token renewal failed; the token is still valid, retrying");
          return;
        }
        this.#log.info({ status: statusOf(e) ?? null }, "vault token renewal refused; logging in again");
      }
    }
    await this.#login(signal);
  }

  async #login(signal: AbortSignal): Promise<void> {
    const c = this.#cfg;
    const ro = { signal };
    const what = `vault ${c.method} login`;
    let r: { auth?: { client_token?: unknown; lease_duration?: unknown; renewable?: unknown } } | undefined;
    try {
      switch (c.method) {
        case "token": {
          this.#client.token = readCredential(c.token_file, "token_file");
          const look = await this.#client.tokenLookupSelf({ requestOptions: ro });
          const ttl = seconds(look?.data?.ttl) ?? 0;
          this.#set(ttl, look?.data?.renewable === true, ttl * 1000);
          this.#log.info({ method: c.method, ttl_s: ttl, renewable: look?.data?.renewable === true }, "vault token loaded");
          return;
        }
        case "approle": {
          const args: Record<string, unknown> = {
            role_id: readCredential(c.role_id_file, "role_id_file"),
            mount_point: c.mount ?? "approle",
            requestOptions: ro,
          };
          if (c.secret_id_file) args.secret_id = readCredential(c.secret_id_file, "secret_id_file");
          r = await this.#client.approleLogin(args);
          break;
        }
        case "kubernetes":
          r = await this.#client.kubernetesLogin({
            role: c.role,
            jwt: readCredential(c.jwt_file, "jwt_file"),
            mount_point: c.mount ?? "kubernetes",
            requestOptions: ro,
          });
          break;
        case "jwt":
          r = await this.#client.jwtLogin({ role: c.role, jwt: readCredential(c.jwt_file, "jwt_file"), mount_point: c.mount ?? "jwt", requestOptions: ro });
          break;
      }
    } catch (e) {
      this.invalidate();
      if (isProviderError(e)) throw e;
      const st = statusOf(e);
      const hint =
        c.method === "token"
          ? "the token in token_file is not valid (expired or revoked)"
          : c.method === "approle"
            ? "check role_id_file and secret_id_file (a single-use secret_id cannot be used twice; deliver a new one)"
            : `check the role ${JSON.stringify(c.role)} and the JWT in jwt_file`;
      throw new ProviderError("auth", `${what} refused (HTTP ${st ?? "?"}): ${hint}`);
    }
    const token = r?.auth?.client_token;
    const ttl = seconds(r?.auth?.lease_duration);
    if (typeof token !== "string" || token === "" || ttl === undefined) {
      this.invalidate();
      throw new ProviderError("transient", `${what}: the answer has no auth.client_token/lease_duration; rejected`);
    }
    this.#client.token = token;
    this.#set(ttl, r?.auth?.renewable === true, ttl * 1000);
    this.#log.info({ method: c.method, ttl_s: ttl, renewable: r?.auth?.renewable === true }, "vault login succeeded");
  }

  #set(ttlSeconds: number, renewable: boolean, originalTtlMs: number): void {
    const now = Date.now();
    const ttl = ttlSeconds * 1000;
    const expiresAt = ttl > 0 ? now + ttl : Infinity;
    const renewAt = ttl > 0 ? now + Math.floor(ttl * RENEW_AT) : Infinity;
    this.#state = { expiresAt, renewAt, renewable, ttl: originalTtlMs > 0 ? originalTtlMs : ttl };
    this.#arm();
  }

  /** Background renewal, so a token outlives sync intervals longer than its TTL. */
  #arm(): void {
    clearTimeout(this.#timer);
    const s = this.#state;
    if (this.#closed || !s || s.renewAt === Infinity) return;
    this.#timer = setTimeout(
      () => {
        const ac = new AbortController();
        const t = setTimeout(() => ac.abort(), 30_000);
        this.ensure(ac.signal)
          .catch((e: unknown) =>
            this.#log.warn(
              { err: isProviderError(e) ? e.message : String((e as Error)?.name) },
              "vault token background renewal failed; retried at the next sync",
            ),
          )
          .finally(() => clearTimeout(t));
      },
      Math.max(0, s.renewAt - Date.now()),
    );
    this.#timer.unref();
  }
}

function seconds(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** Credential files are read at use, so a rotated secret_id or JWT is picked up at the next login. */
function readCredential(file: string, key: string): string {
  let v: string;
  try {
    v = fs.readFileSync(file, "utf8").trim();
  } catch (e) {
    throw new ProviderError("auth", `vault auth.${key} ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (v === "") throw new ProviderError("auth", `vault auth.${key} ${file} is empty`);
  return v;
}
