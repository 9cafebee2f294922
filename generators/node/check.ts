/**
 * What the node target (and `mbc run`) cannot carry, as findings at the fields (see
 * generators/systemd/check.ts): `targets.node.bind` must be an address every listener can bind
 * to, an IPv4 or IPv6 address or a host name, or each process fails as it starts.
 */
import type { TargetFinding } from "../../src/build/types.js";
import type { Model } from "../../src/model/types.js";
import { registryBackendFindings } from "../shared/registry.js";

const IPV4 = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/;
const LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const HOST = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*\\.?$`);

/** An IPv6 address: at most eight groups of up to four hex digits, one `::` at most, an IPv4 tail allowed. */
function isIpv6(text: string): boolean {
  const [head, ...rest] = text.split("::");
  if (rest.length > 1) return false;
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const all = [...groups(head as string), ...groups(rest[0] ?? "")];
  const last = all[all.length - 1];
  const v4 = last !== undefined && IPV4.test(last);
  const hex = v4 ? all.slice(0, -1) : all;
  if (!hex.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  const width = hex.length + (v4 ? 2 : 0);
  return rest.length === 1 ? width <= 7 : width === 8;
}

/** Why a listener cannot bind to `bind`, or null. */
export function bindProblem(bind: string): string | null {
  // A host name's last label is never all digits (RFC 3696): 256.1.1.1 is a bad address, not a name.
  if (IPV4.test(bind) || isIpv6(bind) || (HOST.test(bind) && !/(?:^|\.)[0-9]+\.?$/.test(bind))) return null;
  return "is neither an IP address nor a host name";
}

export function checkNode(model: Model): TargetFinding[] {
  const out = registryBackendFindings(model, "node");
  const bind = model.targets.node.bind;
  const problem = bindProblem(bind);
  if (problem !== null)
    out.push({
      path: "/targets/node/bind",
      message: `bind ${JSON.stringify(bind)} ${problem}`,
      hint: "127.0.0.1 (this machine only), 0.0.0.0 (every interface), ::1, or a host name",
    });
  return out;
}
