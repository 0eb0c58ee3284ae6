import type { SecretRef } from "../provider.js";

/** A secret id: letters, digits, `_` and `-`, at most 255. */
const SECRET_ID = "[A-Za-z0-9_-]{1,255}";
const SECRET = new RegExp(`^projects/([^/]+)/(?:locations/([^/]+)/)?secrets/(${SECRET_ID})$`);
const BARE = new RegExp(`^${SECRET_ID}$`);
/** A version number (never 0) ... */
const NUMBER = /^[1-9][0-9]{0,18}$/;
/** ... or an alias (`latest`, or one set on the secret): a letter, then letters, digits, `_`, `-`. */
const ALIAS = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
/** What AccessSecretVersion names in its answer: always the number, even when asked for an alias. */
const ANSWERED = /^projects\/[^/]+\/(?:locations\/[^/]+\/)?secrets\/([A-Za-z0-9_-]{1,255})\/versions\/([1-9][0-9]{0,18})$/;

export interface Target {
  /** The resource AccessSecretVersion is asked for: `projects/P/secrets/S/versions/V`. */
  readonly name: string;
  readonly secretId: string;
  /** The pinned version number, if `version` is one (such a version never changes). */
  readonly pinned: string | undefined;
}

/**
 * The version resource a secret names: `path` is `projects/P/secrets/S` (or
 * `projects/P/locations/L/secrets/S` for a regional secret, with a regional
 * `endpoint`), or the secret id alone under the provider's `project`; `version`
 * is a number or an alias, `latest` by default. Returns the problem in words
 * when the entry cannot name a version.
 */
export function targetOf(ref: SecretRef, project: string | undefined): Target | string {
  let path = ref.path;
  if (BARE.test(path)) {
    if (project === undefined)
      return `path ${JSON.stringify(path)} is a secret id alone: write projects/PROJECT/secrets/${path}, or set project on the provider`;
    path = `projects/${project}/secrets/${path}`;
  }
  if (/\/versions\/[^/]*$/.test(path))
    return `path ${JSON.stringify(path)} names a version: give the secret as path (projects/P/secrets/S) and the version as version`;
  const m = SECRET.exec(path);
  if (!m) return `path ${JSON.stringify(path)} is not a secret name: expected projects/PROJECT/secrets/SECRET`;
  const v = ref.version ?? "latest";
  if (!NUMBER.test(v) && !ALIAS.test(v)) return `version ${JSON.stringify(v)} is neither a version number nor an alias (such as latest)`;
  return { name: `${path}/versions/${v}`, secretId: m[3]!, pinned: NUMBER.test(v) ? v : undefined };
}

/** The secret id and version number an answer names, or undefined when it is not a version name. */
export function answered(name: unknown): { secretId: string; number: string } | undefined {
  const m = typeof name === "string" ? ANSWERED.exec(name) : null;
  return m ? { secretId: m[1]!, number: m[2]! } : undefined;
}
