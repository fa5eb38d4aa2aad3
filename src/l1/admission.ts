// The libp2p admission list from L1: the peers configured locally (genesis validators, replicas) plus the registry's
// current set and the candidates for the next one, as of a confirmed L1 block. Candidates are admitted a whole epoch
// ahead so that a validator joining at the next boundary has synced and meshed by then.
import type { L1Membership } from "./mirror.ts";

/** The union, without duplicates, in a stable order (local peers first). Empty peer ids (unparsable) are skipped. */
export function admissionList(local: readonly string[], membership: L1Membership | null): string[] {
  const out = new Set<string>(local);
  if (membership !== null) {
    for (const m of membership.members) if (m.peerId !== "") out.add(m.peerId);
    for (const p of membership.candidatePeerIds) if (p !== "") out.add(p);
  }
  return [...out];
}
