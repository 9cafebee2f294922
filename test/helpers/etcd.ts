/**
 * The command line of a one-member etcd that a runtime test starts for itself: its own data
 * folder, client and peer URLs the test chose, quiet logs.
 */
import { join } from "node:path";

export function etcdArgs(o: { dataDir: string; clientUrl: string; peerUrl: string }): string[] {
  return [
    "--name",
    "mbc-test",
    "--data-dir",
    join(o.dataDir, "data"),
    "--listen-client-urls",
    o.clientUrl,
    "--advertise-client-urls",
    o.clientUrl,
    "--listen-peer-urls",
    o.peerUrl,
    "--initial-advertise-peer-urls",
    o.peerUrl,
    "--initial-cluster",
    `mbc-test=${o.peerUrl}`,
    "--log-level",
    "warn",
  ];
}
