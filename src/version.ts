// Replaced at bundle time by esbuild's `define`; the fallback serves tsx runs.
declare const __SEALCACHE_VERSION__: string | undefined;
export const VERSION: string = typeof __SEALCACHE_VERSION__ === "string" ? __SEALCACHE_VERSION__ : "0.0.0-dev";
