/**
 * The rows every target's fidelity table shares: what the bundled runtime itself does with a
 * field, which is the same whichever target starts it (the node, Compose and systemd targets all
 * run it). A target's table is these rows plus its own (`fidelityTable`), so a note is written once.
 */
import { type FidelityTable, type FieldFidelity, SPEC_FIELDS, type SpecField } from "./fidelity.js";
import type { TargetId } from "./targets.js";

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

/** The settings of the targets other than T (`targets.compose.*` for every target but compose). */
export type OtherTargetField<T extends TargetId> = Extract<SpecField, `targets.${Exclude<TargetId, T>}.${string}`>;

/**
 * A target's own rows: every field the shared rows leave out, but for the other targets'
 * settings, which are `n/a` ("the compose target") unless the target says more (systemd uses
 * `targets.node.bind`): a new target adds no row to the others' tables.
 */
export type TargetRows<T extends TargetId> = Readonly<
  Record<Exclude<SpecField, SharedField | OtherTargetField<T>>, FieldFidelity> & Partial<Record<OtherTargetField<T>, FieldFidelity>>
>;

/** A target's whole table: the shared rows, the other targets' settings as n/a, and its own. */
export function fidelityTable<T extends TargetId>(target: T, own: TargetRows<T>): FidelityTable {
  const others: Partial<Record<SpecField, FieldFidelity>> = {};
  for (const field of SPEC_FIELDS) {
    const owner = /^targets\.([^.]+)\./.exec(field)?.[1];
    if (owner !== undefined && owner !== target) others[field] = na(`the ${owner} target`);
  }
  return { ...RUNTIME_FIDELITY, ...others, ...own } as FidelityTable;
}
