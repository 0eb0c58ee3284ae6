/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum Secret
 * Manager stores with each version and returns as `payload.data_crc32c`. Node 20
 * has no CRC-32C (zlib.crc32 is plain CRC-32, and only from Node 22), and a
 * secret payload is at most 64 KiB, so a table-driven loop is fast enough.
 */
const TABLE = /* @__PURE__ */ (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
