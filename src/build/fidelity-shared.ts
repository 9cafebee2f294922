/**
 * The rows every target's fidelity table shares: what the bundled runtime itself does with a
 * field, which is the same whichever target starts it (the node, Compose and systemd targets all
 * run it). A target's table is these rows plus its own (`fidelityTable`), so a note is written once.
 */
import type { FidelityTable, FieldFidelity, SpecField } from "./fidelity.js";

const maps = (note: string) => ({ how: "maps", note }) as const;
const na = (note: string) => ({ how: "n/a", note }) as const;

export const RUNTIME_FIDELITY = {
  "defaults.retry.deadLetterAfter": maps("the sources: how long a batch may wait on an unavailable stage before it is dead-lettered"),
  "services.*.retry.deadLetterAfter": maps("the sources whose batches pass the service: the smallest value on a batch's path applies"),
  "defaults.timeout": maps("per-attempt timeout of every call"),
  "defaults.batch.maxRecords": maps("the source's batcher"),
  "defaults.batch.maxWait": maps("the source's batcher"),
  "defaults.batch.maxBytes": maps("the source's batcher (JSON size of the records)"),
  "registry.heartbeat": maps("registration heartbeats (etcd: lease keep-alives) and discovery refresh"),
  "registry.ttl": maps("the registry's expiry (etcd: each instance's lease TTL)"),
  "sources.*.rate": maps("generator: its rate; http/file: not enforced (an expected peak)"),
  "sources.*.count": maps("generator: stops after it, across restarts"),
  "sources.*.record": maps("generator: the template"),
  "sources.*.batch.maxRecords": maps("the source's batcher"),
  "sources.*.batch.maxWait": maps("the source's batcher"),
  "sources.*.batch.maxBytes": maps("the source's batcher (JSON size of the records)"),
  "services.*.capacity": maps("registered with each instance; used by least-connections and power-of-two-choices"),
  "checkpoint.fsync": maps("fsync of the durable log before 202"),
  "simulation.duration": na("mbc simulate"),
  "simulation.arrival": na("mbc simulate"),
  "simulation.failureRate": na("mbc simulate and the capacity checks"),
  "simulation.faults": na("mbc simulate"),
  "simulation.seed": na("mbc simulate"),
} as const satisfies Partial<Record<SpecField, FieldFidelity>>;

/** The fields whose row every target shares. */
export type SharedField = keyof typeof RUNTIME_FIDELITY;

/** A target's own rows: every field the shared rows leave out. */
export type TargetRows = Readonly<Record<Exclude<SpecField, SharedField>, FieldFidelity>>;

/** A target's whole table: the shared rows and its own. */
export function fidelityTable(own: TargetRows): FidelityTable {
  return { ...RUNTIME_FIDELITY, ...own };
}
