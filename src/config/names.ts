/** Secret names: `[a-z0-9][a-z0-9._/-]*`, at most 256 bytes, no `..` segments. */
const NAME = /^[a-z0-9][a-z0-9._/-]*$/;
export const MAX_NAME_BYTES = 256;

/** Returns why `name` is not a valid secret name, or undefined when it is. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return "is empty";
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `is longer than ${MAX_NAME_BYTES} bytes`;
  if (!NAME.test(name)) return "must match [a-z0-9][a-z0-9._/-]* (lower case letters, digits, '.', '_', '/', '-')";
  if (name.split("/").some((seg) => seg === ".." || seg === "." || seg === "")) {
    return "must not contain empty, '.' or '..' path segments";
  }
  return undefined;
}

export function isValidName(name: string): boolean {
  return nameProblem(name) === undefined;
}
