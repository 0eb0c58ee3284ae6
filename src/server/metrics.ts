/**
 * Prometheus counters kept as plain numbers in maps keyed by a label string; the
 * hot path does one Map lookup and an increment. Secret names appear only when
 * `metrics.secret_names` is on.
 */
export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly #lookups = new Map<string, number>();
  readonly #refused = new Map<string, number>();

  request(route: string, status: number): void {
    const k = `route="${route}",code="${status}"`;
    this.#requests.set(k, (this.#requests.get(k) ?? 0) + 1);
  }

  lookup(outcome: string, name?: string): void {
    const k = name === undefined ? `outcome="${outcome}"` : `outcome="${outcome}",name="${name}"`;
    this.#lookups.set(k, (this.#lookups.get(k) ?? 0) + 1);
  }

  /**
   * A connection refused or dropped by the limits: `per_uid`, `total` (caps), `rate` (its uid over its request rate at accept)
   * or `cut` (kept sending while refused).
   */
  refused(reason: string): void {
    const k = `reason="${reason}"`;
    this.#refused.set(k, (this.#refused.get(k) ?? 0) + 1);
  }

  render(gauges: readonly { name: string; help: string; type?: "gauge" | "counter"; samples: readonly [labels: string, value: number][] }[]): string {
    const lines: string[] = [];
    const family = (name: string, help: string, type: string, samples: Iterable<[string, number]>) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) lines.push(labels ? `${name}{${labels}} ${v}` : `${name} ${v}`);
    };
    family("sealcache_http_requests_total", "Socket API requests by route and status.", "counter", this.#requests);
    family("sealcache_lookups_total", "Secret lookups by outcome.", "counter", this.#lookups);
    family("sealcache_connections_refused_total", "Connections refused or dropped by the server limits, by reason.", "counter", this.#refused);
    for (const g of gauges) family(g.name, g.help, g.type ?? "gauge", g.samples);
    return lines.join("\n") + "\n";
  }
}
