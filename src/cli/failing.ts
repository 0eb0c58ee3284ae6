import { FAILING_SHOWN as SHOWN, type Failing, type FailingSecret } from "../core/health.js";
import type { SecretStatus } from "../core/reader.js";
import { getJson, type Target } from "./client.js";

export interface FailingView {
  readonly count: number;
  readonly shown: readonly FailingSecret[];
  /** Failing, but neither named by health nor readable by this account. */
  readonly hidden: number;
}

/**
 * The failing secrets to show: named by /v1/health where `metrics.secret_names`
 * allows it, otherwise those this account may read (policy decides, through
 * /v1/secrets, which already shows each one's error), the rest only counted.
 */
export async function failingSecrets(target: Target, failing: Failing | undefined): Promise<FailingView | undefined> {
  if (!failing || failing.count === 0) return undefined;
  if (failing.secrets) return { count: failing.count, shown: failing.secrets.slice(0, SHOWN), hidden: 0 };
  let readable: SecretStatus[] = [];
  try {
    readable = (await getJson<{ secrets: SecretStatus[] }>(target, "/v1/secrets")).secrets.filter((s) => s.error !== null);
  } catch {
    // Counts alone, then: the daemon answered health a moment ago.
  }
  const shown = readable.slice(0, SHOWN).map((s) => ({ name: s.name, provider: s.provider, state: s.state, error: s.error ?? "" }));
  return { count: failing.count, shown, hidden: Math.max(0, failing.count - readable.length) };
}

/** The lines under the list: how many more there are, and where to see them. */
export function failingFooter(v: FailingView): string[] {
  const out: string[] = [];
  const listedMore = v.count - v.hidden - v.shown.length;
  if (listedMore > 0) out.push(`... and ${listedMore} more (sealcache list shows every secret's error)`);
  if (v.hidden > 0) {
    out.push(
      `${v.hidden} failing ${v.hidden === 1 ? "secret is" : "secrets are"} not named: this account may not read ${v.hidden === 1 ? "it" : "them"} ` +
        `(names are shown to an account the policy lets read them, or to any with metrics.secret_names: true)`,
    );
  }
  return out;
}
