// TOTP codes for the demo users' second factor, as an authenticator app
// computes them: RFC 6238 (time step 30 s, T0 = 0) over RFC 4226 HOTP with
// HMAC-SHA1 and 6 digits. The HMAC comes from node:crypto; only the
// encoding steps of the RFCs are written here.

import { createHmac } from "node:crypto";

/** The RFC 6238 §4 time step length X, in seconds. */
export const STEP_SECONDS = 30;

/**
 * Decodes an RFC 4648 §6 base32 string (the form of `totp_secret` in
 * demo.json; padding and case are ignored).
 * @param {string} text
 * @returns {Buffer}
 */
export function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const clean = text.toUpperCase().replace(/=+$/, "");
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const index = alphabet.indexOf(ch);
    if (index < 0) throw new Error("totp: the secret is not base32");
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/**
 * The RFC 6238 §4.2 time step T for a time in milliseconds.
 * @param {number} ms
 */
export function stepAt(ms) {
  return Math.floor(ms / 1000 / STEP_SECONDS);
}

/**
 * HOTP(K, C) of RFC 4226 §5.3: HMAC-SHA1, dynamic truncation, 6 digits.
 * @param {Buffer} key
 * @param {number} counter
 */
export function hotp(key, counter) {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac("sha1", key).update(message).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 1_000_000).padStart(6, "0");
}

/**
 * The TOTP code of a base32 secret at time step `step` (RFC 6238 §4.2).
 * @param {string} secret
 * @param {number} step
 */
export function totp(secret, step) {
  return hotp(base32Decode(secret), step);
}
