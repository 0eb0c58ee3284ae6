import type { z } from "zod";
import { ProviderError, type Provider, type ProviderInit } from "../provider.js";
import { extractKey } from "../extract.js";
import type { envSchema } from "./schema.js";

type Options = z.output<ReturnType<typeof envSchema>>;
const enc = new TextEncoder();

/** Secrets from the daemon's own environment (systemd EnvironmentFile, container env). */
export function create(init: ProviderInit<Options>): Provider {
  const prefix = init.options.prefix;
  return {
    maxBatch: 1000,
    async fetch(refs) {
      return refs.map((ref) => {
        const variable = prefix + ref.path;
        const v = process.env[variable];
        if (v === undefined) {
          return { name: ref.name, ok: false as const, error: new ProviderError("permanent", `environment variable ${variable} is not set`) };
        }
        try {
          const raw = enc.encode(v);
          return { name: ref.name, ok: true as const, value: ref.key ? extractKey(raw, ref.key, `environment variable ${variable}`) : raw, version: undefined };
        } catch (e) {
          return { name: ref.name, ok: false as const, error: e as ProviderError };
        }
      });
    },
  };
}
