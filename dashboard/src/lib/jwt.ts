/**
 * Reads a subscriber token's header and claims for display. It verifies nothing (the server
 * does): it only decodes the base64url JSON parts of a compact JWS.
 */
export interface Decoded {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

function part(text: string): Record<string, unknown> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The token's header and claims, or null when it is not a compact JWS with JSON parts. */
export function decodeToken(token: string): Decoded | null {
  const parts = token.trim().split('.');
  if (parts.length !== 3) return null;
  const header = part(parts[0]!);
  const claims = part(parts[1]!);
  return header && claims ? { header, claims } : null;
}

/** Seconds until the token's `exp` at `nowMs` (negative once expired), or null without one. */
export function secondsLeft(claims: Record<string, unknown>, nowMs: number): number | null {
  return typeof claims.exp === 'number' ? Math.floor(claims.exp - nowMs / 1000) : null;
}
