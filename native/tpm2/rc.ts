import { tss } from "./lib.js";

/** "0x0000098e (tpm:session(1):the authorization HMAC check failed…)" */
export function rcText(rc: number): string {
  const code = `0x${(rc >>> 0).toString(16).padStart(8, "0")}`;
  let text: string | null = null;
  try {
    text = (tss().rc?.Decode(rc >>> 0) as string | null) ?? null;
  } catch {
    text = null;
  }
  return text ? `${text} (${code})` : code;
}
