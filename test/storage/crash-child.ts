// Child process of the crash-consistency test: opens the store in argv[2] and commits heights (with a safety record
// after each) until it is killed, printing each height on stdout once both writes have resolved. The records are
// signed up front so that the loop spends its time in the store's writes, where a kill is most likely to tear them.
// Run: node bin/run.mjs test/storage/crash-child.ts <dir> [heights signed up front]
import type { ValidatorSet } from "../../consensus/types.ts";
import { ChainStore, type CommitRecord, type SafetyRecord } from "../../src/storage/chain-store.ts";
import { commitRecordAt, GENESIS_HASH, safetyRecordAt, testNet } from "./fixtures.ts";

const dir = process.argv[2];
if (dir === undefined) {
  process.stderr.write("usage: crash-child.ts <dir> [heights]\n");
  process.exit(2);
}
const heights = Number(process.argv[3] ?? "400");
const net = testNet();
const store = await ChainStore.open(dir, { genesisHash: GENESIS_HASH, genesisValidatorSet: net.genesis });
const first = store.headHeight + 1;
const work: { commit: CommitRecord; safety: SafetyRecord }[] = [];
let set: ValidatorSet = store.validatorSetFor(first);
for (let height = first; height < first + heights; height++) {
  const commit = commitRecordAt(net, set, height);
  set = commit.nextValidatorSet;
  work.push({ commit, safety: safetyRecordAt(net, set, height + 1) });
}
process.stdout.write(`open ${store.headHeight}\n`);
for (const { commit, safety } of work) {
  await store.commit(commit);
  await store.saveSafety(safety);
  process.stdout.write(`${commit.height}\n`);
}
// Keep going (signing as we go) until killed, so a late kill still finds the child writing.
for (let height = first + heights; ; height++) {
  const commit = commitRecordAt(net, set, height);
  set = commit.nextValidatorSet;
  await store.commit(commit);
  await store.saveSafety(safetyRecordAt(net, set, height + 1));
  process.stdout.write(`${height}\n`);
}
