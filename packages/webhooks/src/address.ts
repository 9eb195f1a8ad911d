/**
 * Where a webhook may point (SSRF, SPEC §10 USAGE_WEBHOOK_ALLOW_PRIVATE). An org's webhook URL is a request this
 * service makes from inside the operator's network, so by default a host must resolve only to public unicast
 * addresses: loopback, private (RFC 1918), link-local (169.254.0.0/16, where cloud metadata answers), unique-local
 * (fc00::/7), carrier-grade NAT (100.64.0.0/10), multicast, broadcast, unspecified and reserved ranges are refused,
 * as are IPv4-mapped IPv6 forms of any of them. Ranges are ipaddr.js's (`range()`), not hand-written masks.
 *
 * Checked twice: when the webhook is registered (the API resolves the host), and at every delivery inside the
 * connection's own DNS lookup (`safeLookup`, given to the HTTP agent), so the address that was checked is the address
 * connected to: a name that re-resolves to a private address after registration (DNS rebinding) is refused then.
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import ipaddr from "ipaddr.js";
import { Agent, type Dispatcher } from "undici";

/** Why an address is not a public unicast one, or undefined when it is. */
export function addressProblem(address: string): string | undefined {
  if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  const range = parsed.range();
  return range === "unicast" ? undefined : `${address} is a ${range} address`;
}

export type Lookup = (
  hostname: string,
  options: { all: true },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/** Resolves `hostname` (a literal address resolves to itself) and refuses it unless every address is public. */
export async function checkHost(
  hostname: string,
  lookup: Lookup = dnsLookup as unknown as Lookup,
): Promise<{ ok: true; addresses: string[] } | { ok: false; message: string }> {
  const host = hostname.replace(/^\[|\]$/g, "");
  let addresses: string[];
  if (ipaddr.isValid(host)) addresses = [host];
  else {
    try {
      addresses = await new Promise((resolve, reject) =>
        lookup(host, { all: true }, (err, found) => (err ? reject(err) : resolve(found.map((a) => a.address)))),
      );
    } catch {
      return { ok: false, message: `host ${host} does not resolve` };
    }
  }
  if (addresses.length === 0) return { ok: false, message: `host ${host} does not resolve` };
  for (const a of addresses) {
    const problem = addressProblem(a);
    if (problem) return { ok: false, message: `host ${host} resolves to ${problem}; webhooks must reach public hosts` };
  }
  return { ok: true, addresses };
}

/** The error a refused address fails a connection with (its code is what delivery reports as `blocked_address`). */
export class BlockedAddressError extends Error {
  readonly code = "EBLOCKEDADDRESS";
}

/**
 * A `lookup` for an HTTP agent's connections: resolves as dns.lookup does and fails the connection with
 * BlockedAddressError when any address is not public. The connection then uses an address this function checked.
 */
export function safeLookup(lookup: Lookup = dnsLookup as unknown as Lookup) {
  return (
    hostname: string,
    options: { all?: boolean; family?: number },
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    lookup(hostname, { all: true }, (err, addresses) => {
      if (err) return callback(err, "", 0);
      for (const a of addresses) {
        const problem = addressProblem(a.address);
        if (problem) return callback(new BlockedAddressError(problem), "", 0);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), "", 0);
      callback(null, first.address, first.family);
    });
  };
}

/** An HTTP agent (fetch's `dispatcher`) whose every connection resolves its host through safeLookup. */
export function publicOnlyAgent(lookup?: Lookup): Dispatcher {
  return new Agent({ connect: { lookup: safeLookup(lookup) as never } });
}
