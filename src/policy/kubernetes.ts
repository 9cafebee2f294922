/**
 * What the kubernetes target and the runtime's kubernetes registry backend must agree on: how an
 * instance is named in the cluster's DNS. Instance K of service NAME is pod K of the StatefulSet
 * NAME, governed by the headless Service NAME, so its name is `NAME-K.NAME.NAMESPACE.svc`; with
 * `publishNotReadyAddresses: false` that name resolves only while the pod is ready.
 */

/** A DNS-1123 label: what a namespace, a Service's and a StatefulSet's names must be. */
export const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

/** The per-pod DNS name of instance `k` of `service` (relative to the cluster domain, which the pods' search list completes). */
export function instanceHost(service: string, k: number, namespace: string): string {
  return `${service}-${k}.${service}.${namespace}.svc`;
}

/**
 * A StatefulSet's name must leave room for the `controller-revision-hash` label its pods carry
 * (NAME-HASH, a label value of at most 63 characters, the hash up to 10): 52 is what the API
 * server allows in practice.
 */
export const MAX_STATEFULSET_NAME = 52;
