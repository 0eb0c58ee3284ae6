import type { SyncConfig } from "../config/schema.js";
import type { SecretStore } from "../store/store.js";
import type { Catalog } from "./catalog.js";
import { STEP_THRESHOLD_MS, type Now } from "./clock.js";
import { staleAfter } from "./timing.js";

/** When something went wrong: in this process (mono), or as recorded before a restart (wall). */
interface Failing {
  mono: number | undefined;
  wall: number | undefined;
}

/**
 * How fresh each name is: its age, whether it is stale, when it was confirmed.
 * The one read model the reader (lookups, list, status), health and metrics use;
 * the sync engine tells it what happened (confirmations, lease expiries, provider
 * failures) and never answers these questions itself.
 *
 * Ages run on the monotonic clock from the last confirmation in this process, so
 * a wall-clock step neither makes a value confirmed seconds ago look a day old
 * (410 expired) nor makes an old one look fresh. A value inherited from before a
 * restart has only its recorded wall-clock fetched_at: its age is wall now minus
 * that, and unknown when fetched_at is in the future (a clock that is behind: a
 * gateway without a real-time clock before NTP). Unknown is stale, never fresh and
 * never expired (see README "Clocks").
 */
export class Freshness {
  readonly #catalog: Catalog;
  readonly #store: Pick<SecretStore, "meta" | "secretError">;
  readonly #sync: SyncConfig;
  /** Monotonic time of each name's last confirmation (a value, or a hierarchy's complete walk) in this process. */
  readonly #confirmed = new Map<string, number>();
  /** Monotonic time a leased value (Vault lease, STS credentials) stops being usable. */
  readonly #expires = new Map<string, number>();
  /** For a hierarchy not walked in this process: its newest member's recorded fetch (wall). */
  readonly #inheritedWalks = new Map<string, number>();
  /** Per provider, while it is failing. */
  readonly #failing = new Map<string, Failing>();
  /** Monotonic time of each secret error recorded in this process (the store holds the error itself). */
  readonly #errors = new Map<string, number>();
  /** wall − mono, for display; moved only by a step, so a value's fetched_at reads the same on every lookup. */
  #offset: number | undefined;

  constructor(o: { catalog: Catalog; store: Pick<SecretStore, "meta" | "secretError">; sync: SyncConfig }) {
    this.#catalog = o.catalog;
    this.#store = o.store;
    this.#sync = o.sync;
  }

  /** The backend confirmed the name's value (or, for a hierarchy, walked it completely) at `mono`. */
  confirm(name: string, mono: number): void {
    this.#confirmed.set(name, mono);
    this.#errors.delete(name);
  }

  /** An error was recorded against the name at `mono` (after any confirmation of the same batch). */
  noteError(name: string, mono: number): void {
    this.#errors.set(name, mono);
  }

  /** A name no longer held (a parameter gone from its hierarchy). */
  forget(name: string): void {
    this.#confirmed.delete(name);
    this.#expires.delete(name);
    this.#errors.delete(name);
  }

  /** After a restart: a hierarchy's last walk as its newest member's fetched_at says. */
  inheritWalk(entry: string, wall: number): void {
    this.#inheritedWalks.set(entry, Math.max(this.#inheritedWalks.get(entry) ?? 0, wall));
  }

  setExpiry(name: string, mono: number | undefined): void {
    if (mono === undefined) this.#expires.delete(name);
    else this.#expires.set(name, mono);
  }

  expiry(name: string): number | undefined {
    return this.#expires.get(name);
  }

  /** The provider failed now (mono), or, after a restart, had been failing since `wall`. */
  providerFailed(provider: string, at: { mono?: number; wall?: number }): void {
    const f = this.#failing.get(provider) ?? { mono: undefined, wall: undefined };
    if (at.mono !== undefined) f.mono = at.mono;
    if (at.wall !== undefined) f.wall = at.wall;
    this.#failing.set(provider, f);
  }

  providerRecovered(provider: string): void {
    this.#failing.delete(provider);
  }

  /** The recorded wall-clock fetch of a name (for a hierarchy: of its last walk), as the cache holds it. */
  #recorded(name: string): number | undefined {
    return this.#catalog.isHierarchy(name) ? this.#inheritedWalks.get(name) : this.#store.meta(name)?.fetchedAt;
  }

  /** Whether the name has ever been confirmed (in this process, or as recorded in the cache). */
  has(name: string): boolean {
    return this.#confirmed.has(name) || this.#recorded(name) !== undefined;
  }

  /** Milliseconds since the name was last confirmed; undefined when never, or when the recorded time is in the future. */
  age(name: string, now: Now): number | undefined {
    const c = this.#confirmed.get(name);
    if (c !== undefined) return now.mono - c;
    const at = this.#recorded(name);
    return at === undefined || at > now.wall ? undefined : now.wall - at;
  }

  /** When the name was last confirmed, in today's wall clock (for display); undefined when never. */
  confirmedAt(name: string, now: Now): number | undefined {
    const c = this.#confirmed.get(name);
    return c !== undefined ? Math.round(c + this.#displayOffset(now)) : this.#recorded(name);
  }

  #displayOffset(now: Now): number {
    const o = now.wall - now.mono;
    if (this.#offset === undefined || Math.abs(o - this.#offset) > STEP_THRESHOLD_MS) this.#offset = o;
    return this.#offset;
  }

  isStale(name: string, now: Now): boolean {
    const k = this.#catalog.kind(name);
    if (!k || k.kind === "pending") return true;
    // Imported once, never refreshed: as fresh as it will ever be, until revoked.
    if (k.kind === "imported") return false;
    const age = this.age(name, now);
    if (age === undefined) return true;
    const sc = this.#catalog.entry(k.entry)!;
    const { interval, jitter, timeout } = this.#sync;
    if (age > staleAfter(sc.refresh ?? interval, jitter, timeout)) return true;
    if (this.errorAfter(name, name, true)) return true;
    // A parameter is as fresh as the last walk of its hierarchy that reached it.
    if (k.kind === "member" && this.errorAfter(k.entry, name, true)) return true;
    const exp = this.#expires.get(name);
    if (exp !== undefined && now.mono >= exp) return true;
    const f = this.#failing.get(sc.provider);
    return f !== undefined && this.#after(f, name, true);
  }

  /**
   * Whether the error recorded against `errName` came after `name` was last confirmed
   * (`strict`), or no earlier (an error of the same batch: a hierarchy walked with
   * some parameters skipped is confirmed and in error at once).
   */
  errorAfter(errName: string, name: string, strict: boolean): boolean {
    const e = this.#store.secretError(errName);
    return e !== undefined && this.#after({ mono: this.#errors.get(errName), wall: e.at }, name, strict);
  }

  /** Whether an event happened after the name's last confirmation: on the monotonic clock when both are of this process. */
  #after(ev: Failing, name: string, strict: boolean): boolean {
    const c = this.#confirmed.get(name);
    const later = (a: number, b: number) => (strict ? a > b : a >= b);
    if (c !== undefined) return ev.mono !== undefined && later(ev.mono, c);
    // Inherited: anything in this process came after it; anything recorded before the restart, by the clock of then.
    return ev.mono !== undefined || (ev.wall !== undefined && later(ev.wall, this.#recorded(name) ?? 0));
  }
}
