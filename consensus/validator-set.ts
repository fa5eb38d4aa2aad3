// Validator sets and CometBFT's proposer selection (spec/consensus/proposer-selection.md, types/validator_set.go,
// state/state.go updateState, consensus/state.go enterNewRound). Pure: imports only ./bytes.ts and ./types.ts.
//
// Every priority operation follows the Go code with int64 semantics in bigint:
//   - additions and subtractions of priorities clip to [MinInt64, MaxInt64] (safeAddClip / safeSubClip);
//   - the rescale divides with Go's `/=` (truncation toward zero, which is what bigint `/` does);
//   - the centring average uses big.Int Div (Euclidean division; with a positive divisor this is floor division);
//   - computeMaxMinPriorityDiff and the rescale ratio numerator use plain int64 arithmetic, which wraps in Go. We wrap
//     too (BigInt.asIntN) so that even a hand-built set gives Go's result. The MAX_TOTAL_VOTING_POWER bound keeps sets
//     built by this module far from those wrap points (that is why CometBFT chose MaxInt64 / 8).
// Sets are immutable: every function returns a new frozen set and never mutates its input.
import { concatBytes, type Hex, isHex, keccak256, toHex, uintBytes, utf8 } from "./bytes.ts";
import type { Validator, ValidatorSet } from "./types.ts";

export interface ValidatorInput {
  readonly publicKey: Uint8Array;
  readonly votingPower: bigint;
}

/** A validator update applied between heights. `votingPower: 0n` removes the validator; > 0 adds or updates it. */
export interface ValidatorChange {
  readonly publicKey: Uint8Array;
  readonly votingPower: bigint;
}

/** For tests and vectors only: a validator whose address is given rather than derived from its public key. */
export interface ValidatorInputWithAddress extends ValidatorInput {
  readonly address: Hex;
}

/** For tests and vectors only: a change that names its validator by an explicit address. */
export interface ValidatorChangeWithAddress extends ValidatorChange {
  readonly address: Hex;
}

export type ValidatorSetErrorCode =
  | "empty"
  | "duplicate_key"
  | "bad_public_key"
  | "bad_power"
  | "total_power_overflow"
  | "remove_unknown";

/** Invalid validator-set input (genesis list or a change set). The message names what is wrong and the fix. */
export class ValidatorSetError extends Error {
  override readonly name = "ValidatorSetError";
  readonly code: ValidatorSetErrorCode;

  constructor(code: ValidatorSetErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Length of a compressed BLS12-381 G1 public key. */
export const PUBLIC_KEY_LENGTH = 48;

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const UINT64_LIMIT = 1n << 64n;
const INT32_MAX = 2 ** 31 - 1;

/** CometBFT MaxTotalVotingPower = MaxInt64 / 8 = 1152921504606846975. */
export const MAX_TOTAL_VOTING_POWER: bigint = INT64_MAX / 8n;

/** CometBFT PriorityWindowSizeFactor: priorities are rescaled so that max - min <= 2 * total voting power. */
export const PRIORITY_WINDOW_SIZE_FACTOR = 2n;

/** keccak256("lumia.dcn.v1.validator-set"): the domain prefix of `computeValidatorSetId`. */
export const VALIDATOR_SET_DOMAIN: Uint8Array = keccak256(utf8("lumia.dcn.v1.validator-set"));

// ---------------------------------------------------------------------------------------------------------------
// Addresses and ids

/** Consensus address: the last 20 bytes of keccak256(publicKey), lowercase 0x-hex. */
export function validatorAddress(publicKey: Uint8Array): Hex {
  checkPublicKey(publicKey, "public key");
  return toHex(keccak256(publicKey).subarray(12));
}

/**
 * The validator-set id: keccak256(D || pk_0 || vp_0 || pk_1 || vp_1 || ...) where D = keccak256(utf8(
 * "lumia.dcn.v1.validator-set")) (32 bytes), pk_i is the 48-byte compressed public key and vp_i the voting power as
 * u64 big-endian (8 bytes), in the given order (a set's order: power descending, then address ascending).
 * Proposer priorities are not committed to. abi.encodePacked(bytes32, bytes, uint64, ...) gives the same bytes.
 */
export function computeValidatorSetId(validators: readonly { publicKey: Uint8Array; votingPower: bigint }[]): Hex {
  const parts: Uint8Array[] = [VALIDATOR_SET_DOMAIN];
  validators.forEach((v, i) => {
    checkPublicKey(v.publicKey, `validator #${i} public key`);
    if (typeof v.votingPower !== "bigint" || v.votingPower < 0n || v.votingPower >= UINT64_LIMIT) {
      throw new ValidatorSetError(
        "bad_power",
        `validator #${i} voting power ${String(v.votingPower)} is not a u64 bigint: pass a bigint in [0, 2^64)`,
      );
    }
    parts.push(v.publicKey, uintBytes(v.votingPower, 8));
  });
  return toHex(keccak256(concatBytes(...parts)));
}

// ---------------------------------------------------------------------------------------------------------------
// Construction and updates

/**
 * Builds the genesis set like CometBFT NewValidatorSet: validates the inputs, sorts them (power descending, address
 * ascending), starts every priority at 0 and runs IncrementProposerPriority(1), which picks the round-0 proposer.
 */
export function createValidatorSet(inputs: readonly ValidatorInput[]): ValidatorSet {
  const entries = inputs.map((input, i) => {
    checkPublicKey(input.publicKey, `validator #${i} public key`);
    return { index: i, address: validatorAddress(input.publicKey), ...checkedInput(input, i) };
  });
  return createFromEntries(entries);
}

/**
 * For tests and golden vectors only: `createValidatorSet` with explicit addresses instead of keccak-derived ones, so
 * CometBFT vectors that use raw addresses such as []byte("foo") reproduce exactly (ties break on address bytes).
 * Addresses must be 20-byte hex; they are lowercased.
 */
export function createValidatorSetWithAddresses(inputs: readonly ValidatorInputWithAddress[]): ValidatorSet {
  const entries = inputs.map((input, i) => {
    checkPublicKey(input.publicKey, `validator #${i} public key`);
    return { index: i, address: checkedAddress(input.address, `validator #${i}`), ...checkedInput(input, i) };
  });
  return createFromEntries(entries);
}

/**
 * The set for the next height, like CometBFT state.go updateState: apply `changes` (updateWithChangeSet: updated
 * validators keep their priority, new ones start at -1.125 * P where P is the total after updates and before removals,
 * removed ones are dropped, then rescale and centre), then IncrementProposerPriority(1). Without changes it is just
 * IncrementProposerPriority(1). A change with power 0 removes a validator; changes are matched by address.
 */
export function nextHeightValidatorSet(set: ValidatorSet, changes: readonly ValidatorChange[] = []): ValidatorSet {
  const entries = changes.map((change, i) => {
    checkPublicKey(change.publicKey, `change #${i} public key`);
    return { index: i, address: validatorAddress(change.publicKey), ...checkedChange(change, i) };
  });
  return nextHeightFromEntries(set, entries);
}

/** For tests and golden vectors only: `nextHeightValidatorSet` with changes that name explicit addresses. */
export function nextHeightValidatorSetWithAddresses(
  set: ValidatorSet,
  changes: readonly ValidatorChangeWithAddress[],
): ValidatorSet {
  const entries = changes.map((change, i) => {
    checkPublicKey(change.publicKey, `change #${i} public key`);
    return { index: i, address: checkedAddress(change.address, `change #${i}`), ...checkedChange(change, i) };
  });
  return nextHeightFromEntries(set, entries);
}

// ---------------------------------------------------------------------------------------------------------------
// Proposer selection

/**
 * CometBFT IncrementProposerPriority(times) on a copy: rescale priorities into the window 2 * total, centre them on
 * their average, then `times` times: add each validator's power, pick the highest priority (ties: lower address
 * bytes), subtract the total from it. The returned set's `proposerIndex` is the last pick. `times` is a positive int32.
 */
export function incrementProposerPriority(set: ValidatorSet, times: number): ValidatorSet {
  checkCount(times, 1, "times");
  const total = checkedTotal(set);
  const work = toWork(set.validators);
  rescaleAndCentre(work, total);
  let proposer = -1;
  for (let i = 0; i < times; i++) proposer = incrementOnce(work, total);
  return buildSet(work, total, set.id, proposer);
}

interface RoundRun {
  readonly work: Work[];
  readonly total: bigint;
  /** proposers[r - 1] is the proposer of round r. */
  readonly proposers: number[];
}

const roundRuns = new WeakMap<ValidatorSet, RoundRun>();

/**
 * The proposer of `round` at the height that uses `set`: round 0 is `set.proposerIndex`; round r > 0 is
 * `incrementProposerPriority(set, r).proposerIndex` (CometBFT enterNewRound when entering round r from round 0).
 * incrementProposerPriority(set, r) is a prefix of incrementProposerPriority(set, r + 1) (one rescale, then r steps),
 * so one run per set is cached (WeakMap) and extended on demand: r rounds cost O(r * n) once.
 */
export function proposerIndex(set: ValidatorSet, round: number): number {
  checkCount(round, 0, "round");
  if (round === 0) return set.proposerIndex;
  let run = roundRuns.get(set);
  if (run === undefined) {
    const total = checkedTotal(set);
    const work = toWork(set.validators);
    rescaleAndCentre(work, total);
    run = { work, total, proposers: [] };
    roundRuns.set(set, run);
  }
  while (run.proposers.length < round) run.proposers.push(incrementOnce(run.work, run.total));
  return run.proposers[round - 1] as number;
}

const addressIndexes = new WeakMap<ValidatorSet, ReadonlyMap<string, number>>();

/** Index of the validator with `address` in `set`, or -1. Case-insensitive; the lookup map is cached per set. */
export function indexOfAddress(set: ValidatorSet, address: Hex): number {
  let index = addressIndexes.get(set);
  if (index === undefined) {
    const map = new Map<string, number>();
    for (const [i, v] of set.validators.entries()) map.set(v.address.toLowerCase(), i);
    index = map;
    addressIndexes.set(set, index);
  }
  return index.get(address.toLowerCase()) ?? -1;
}

// ---------------------------------------------------------------------------------------------------------------
// Thresholds

/** The smallest power p with 3p > 2 * total: the "+2/3" quorum (floor(2 * total / 3) + 1). */
export function quorumThreshold(total: bigint): bigint {
  if (total < 0n) throw new RangeError(`total voting power ${total} is negative`);
  return (2n * total) / 3n + 1n;
}

/** More than two thirds of the voting power: 3 * power > 2 * total. */
export function hasQuorum(power: bigint, total: bigint): boolean {
  return 3n * power > 2n * total;
}

/** More than one third of the voting power (at least one honest validator, f + 1): 3 * power > total. */
export function exceedsOneThird(power: bigint, total: bigint): boolean {
  return 3n * power > total;
}

// ---------------------------------------------------------------------------------------------------------------
// Internals

/** Mutable working copy of a validator while priorities are computed. */
interface Work {
  readonly address: Hex;
  readonly publicKey: Uint8Array;
  readonly votingPower: bigint;
  priority: bigint;
}

/** A validated genesis input or change, with its position in the caller's list for error messages. */
interface Entry {
  readonly index: number;
  readonly address: Hex;
  readonly publicKey: Uint8Array;
  readonly votingPower: bigint;
}

function clip64(x: bigint): bigint {
  return x > INT64_MAX ? INT64_MAX : x < INT64_MIN ? INT64_MIN : x;
}

function wrap64(x: bigint): bigint {
  return BigInt.asIntN(64, x);
}

/** Go big.Int Div (Euclidean); `d` is positive here, so this is floor division. */
function floorDiv(n: bigint, d: bigint): bigint {
  const q = n / d;
  return n % d < 0n ? q - 1n : q;
}

function compareAddresses(a: Hex, b: Hex): number {
  // Lowercase hex strings of whole bytes sort like their bytes (Go bytes.Compare).
  return a < b ? -1 : a > b ? 1 : 0;
}

/** CometBFT ValidatorsByVotingPower: power descending, then address ascending. */
function byPowerThenAddress(a: Work, b: Work): number {
  if (a.votingPower !== b.votingPower) return a.votingPower > b.votingPower ? -1 : 1;
  return compareAddresses(a.address, b.address);
}

/** RescalePriorities(PriorityWindowSizeFactor * total) then shiftByAvgProposerPriority. */
function rescaleAndCentre(work: Work[], total: bigint): void {
  rescalePriorities(work, PRIORITY_WINDOW_SIZE_FACTOR * total);
  shiftByAverage(work);
}

function rescalePriorities(work: Work[], diffMax: bigint): void {
  if (diffMax <= 0n) return;
  let max = INT64_MIN;
  let min = INT64_MAX;
  for (const v of work) {
    if (v.priority < min) min = v.priority;
    if (v.priority > max) max = v.priority;
  }
  // Go: diff := max - min (int64, wraps); if diff < 0 { return -1 * diff }.
  let diff = wrap64(max - min);
  if (diff < 0n) diff = wrap64(-diff);
  if (diff <= diffMax) return;
  // Go: ratio := (diff + diffMax - 1) / diffMax (int64); val.ProposerPriority /= ratio (truncates toward zero).
  const ratio = wrap64(diff + diffMax - 1n) / diffMax;
  for (const v of work) v.priority = v.priority / ratio;
}

function shiftByAverage(work: Work[]): void {
  let sum = 0n;
  for (const v of work) sum += v.priority;
  const average = floorDiv(sum, BigInt(work.length));
  for (const v of work) v.priority = clip64(v.priority - average);
}

/** One election: every priority += power, the highest (ties: lower address) becomes proposer and pays `total`. */
function incrementOnce(work: Work[], total: bigint): number {
  let best = 0;
  for (let i = 0; i < work.length; i++) {
    const v = work[i] as Work;
    v.priority = clip64(v.priority + v.votingPower);
    if (i === 0) continue;
    const b = work[best] as Work;
    if (v.priority > b.priority || (v.priority === b.priority && compareAddresses(v.address, b.address) < 0)) best = i;
  }
  const proposer = work[best] as Work;
  proposer.priority = clip64(proposer.priority - total);
  return best;
}

function toWork(validators: readonly Validator[]): Work[] {
  return validators.map((v) => ({
    address: v.address,
    publicKey: v.publicKey,
    votingPower: v.votingPower,
    priority: v.proposerPriority,
  }));
}

function buildSet(work: readonly Work[], total: bigint, id: Hex, proposer: number): ValidatorSet {
  const validators: readonly Validator[] = Object.freeze(
    work.map((w) =>
      Object.freeze({
        address: w.address,
        publicKey: w.publicKey,
        votingPower: w.votingPower,
        proposerPriority: w.priority,
      }),
    ),
  );
  return Object.freeze({ validators, totalVotingPower: total, id, proposerIndex: proposer });
}

function sumPower(items: readonly { readonly votingPower: bigint }[]): bigint {
  let sum = 0n;
  for (const v of items) sum += v.votingPower;
  return sum;
}

/** The set's total, checked against its validators. A mismatch is a broken invariant, not bad input. */
function checkedTotal(set: ValidatorSet): bigint {
  if (set.validators.length === 0) {
    throw new ValidatorSetError("empty", "validator set has no validators: proposer selection needs at least one");
  }
  const total = sumPower(set.validators);
  if (total !== set.totalVotingPower) {
    throw new Error(`validator set totalVotingPower ${set.totalVotingPower} != sum of its powers ${total}`);
  }
  if (total > MAX_TOTAL_VOTING_POWER) {
    throw new ValidatorSetError(
      "total_power_overflow",
      `total voting power ${total} exceeds MAX_TOTAL_VOTING_POWER ${MAX_TOTAL_VOTING_POWER}: scale all powers down`,
    );
  }
  return total;
}

function checkCount(value: number, min: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > INT32_MAX) {
    throw new RangeError(`${what} must be an integer in [${min}, ${INT32_MAX}], got ${value}`);
  }
}

function checkPublicKey(publicKey: Uint8Array, what: string): void {
  if (!(publicKey instanceof Uint8Array)) {
    throw new ValidatorSetError("bad_public_key", `${what} is not a Uint8Array: pass the 48-byte compressed G1 key`);
  }
  if (publicKey.length !== PUBLIC_KEY_LENGTH) {
    throw new ValidatorSetError(
      "bad_public_key",
      `${what} is ${publicKey.length} bytes, expected ${PUBLIC_KEY_LENGTH}: pass the compressed BLS12-381 G1 encoding`,
    );
  }
}

function checkedAddress(address: Hex, what: string): Hex {
  if (!isHex(address, 20)) throw new RangeError(`${what} address ${String(address)} is not 20-byte 0x-hex`);
  return address.toLowerCase() as Hex;
}

function checkedPower(votingPower: unknown, what: string, zero: string | null): bigint {
  if (typeof votingPower !== "bigint") {
    throw new ValidatorSetError("bad_power", `${what} voting power is a ${typeof votingPower}: pass a bigint`);
  }
  if (votingPower < 0n || (votingPower === 0n && zero !== null)) {
    throw new ValidatorSetError("bad_power", `${what} voting power is ${votingPower}: ${zero ?? "use 0 to remove"}`);
  }
  if (votingPower > MAX_TOTAL_VOTING_POWER) {
    throw new ValidatorSetError(
      "total_power_overflow",
      `${what} voting power ${votingPower} alone exceeds MAX_TOTAL_VOTING_POWER ${MAX_TOTAL_VOTING_POWER}: ` +
        "scale all powers down",
    );
  }
  return votingPower;
}

function checkedInput(input: ValidatorInput, i: number): Pick<Entry, "publicKey" | "votingPower"> {
  const votingPower = checkedPower(
    input.votingPower,
    `validator #${i}`,
    "a validator needs power > 0 (leave it out of the list instead)",
  );
  return { publicKey: input.publicKey.slice(), votingPower };
}

function checkedChange(change: ValidatorChange, i: number): Pick<Entry, "publicKey" | "votingPower"> {
  const votingPower = checkedPower(change.votingPower, `change #${i}`, null);
  return { publicKey: change.publicKey.slice(), votingPower };
}

function createFromEntries(entries: readonly Entry[]): ValidatorSet {
  if (entries.length === 0) {
    throw new ValidatorSetError("empty", "no validators given: a validator set needs at least one validator");
  }
  const work = applyChangeSet([], 0n, entries, "validators");
  const total = sumPower(work);
  return incrementFresh(work, total, computeValidatorSetId(work));
}

function nextHeightFromEntries(set: ValidatorSet, entries: readonly Entry[]): ValidatorSet {
  let total = checkedTotal(set);
  let work = toWork(set.validators);
  let id = set.id;
  if (entries.length > 0) {
    work = applyChangeSet(work, total, entries, "changes");
    total = sumPower(work);
    id = computeValidatorSetId(work);
  }
  return incrementFresh(work, total, id);
}

/** IncrementProposerPriority(1) on a working copy the caller owns. */
function incrementFresh(work: Work[], total: bigint, id: Hex): ValidatorSet {
  rescaleAndCentre(work, total);
  const proposer = incrementOnce(work, total);
  return buildSet(work, total, id, proposer);
}

/**
 * CometBFT updateWithChangeSet on a working copy (`existing` is not modified). Entries are already checked one by one
 * (key length, power); this checks them against each other and against the set, then merges, rescales, centres and
 * sorts. For a genesis list `existing` is empty and no entry has power 0.
 */
function applyChangeSet(
  existing: readonly Work[],
  existingTotal: bigint,
  entries: readonly Entry[],
  noun: "validators" | "changes",
): Work[] {
  // processChanges: duplicates (by address; keys too, which only differs for explicit-address test sets).
  const byAddress = new Map<Hex, Entry>();
  const byKey = new Map<string, Entry>();
  for (const e of entries) {
    const keyHex = toHex(e.publicKey);
    const previous = byAddress.get(e.address) ?? byKey.get(keyHex);
    if (previous !== undefined) {
      throw new ValidatorSetError(
        "duplicate_key",
        `${noun} #${previous.index} and #${e.index} name the same validator (address ${e.address}): ` +
          "list each validator once",
      );
    }
    byAddress.set(e.address, e);
    byKey.set(keyHex, e);
  }

  const current = new Map<Hex, Work>();
  for (const v of existing) current.set(v.address, v);

  // verifyRemovals: every removal names a current validator.
  let removedPower = 0n;
  let removals = 0;
  for (const e of entries) {
    if (e.votingPower !== 0n) continue;
    const old = current.get(e.address);
    if (old === undefined) {
      throw new ValidatorSetError(
        "remove_unknown",
        `change #${e.index} removes ${e.address}, which is not in the validator set: drop the change or fix its key`,
      );
    }
    removedPower += old.votingPower;
    removals++;
  }

  // The resulting set must not be empty.
  let added = 0;
  for (const e of entries) if (e.votingPower > 0n && !current.has(e.address)) added++;
  if (added === 0 && removals === existing.length) {
    throw new ValidatorSetError(
      "empty",
      "the changes remove every validator: keep at least one validator with voting power > 0",
    );
  }

  // verifyUpdates: CometBFT applies the deltas in ascending order and checks each partial sum; as the starting total
  // is within the bound, that fails exactly when the final total exceeds it.
  let afterUpdatesBeforeRemovals = existingTotal;
  for (const e of entries) {
    if (e.votingPower === 0n) continue;
    afterUpdatesBeforeRemovals += e.votingPower - (current.get(e.address)?.votingPower ?? 0n);
  }
  const finalTotal = afterUpdatesBeforeRemovals - removedPower;
  if (finalTotal > MAX_TOTAL_VOTING_POWER) {
    throw new ValidatorSetError(
      "total_power_overflow",
      `the resulting total voting power ${finalTotal} exceeds MAX_TOTAL_VOTING_POWER ${MAX_TOTAL_VOTING_POWER}: ` +
        "scale all powers down or add less power",
    );
  }

  // computeNewPriorities: new validators start at -1.125 * P, computed as -(P + (P >> 3)) with P before removals.
  const newPriority = -(afterUpdatesBeforeRemovals + (afterUpdatesBeforeRemovals >> 3n));

  // applyUpdates + applyRemovals: updated validators keep their priority, the change replaces key and power.
  const merged: Work[] = [];
  for (const v of existing) {
    const e = byAddress.get(v.address);
    if (e === undefined) merged.push({ ...v });
    else if (e.votingPower > 0n) {
      merged.push({ address: v.address, publicKey: e.publicKey, votingPower: e.votingPower, priority: v.priority });
    }
  }
  for (const e of entries) {
    if (e.votingPower > 0n && !current.has(e.address)) {
      merged.push({ address: e.address, publicKey: e.publicKey, votingPower: e.votingPower, priority: newPriority });
    }
  }

  // A change may give a validator the key of another one (only with explicit-address test sets).
  const keys = new Set<string>();
  for (const v of merged) {
    const keyHex = toHex(v.publicKey);
    if (keys.has(keyHex)) {
      throw new ValidatorSetError(
        "duplicate_key",
        `public key ${keyHex.slice(0, 18)}… would belong to two validators: give each validator its own key`,
      );
    }
    keys.add(keyHex);
  }

  // Scale and centre with the new total, then CometBFT's order.
  rescaleAndCentre(merged, finalTotal);
  merged.sort(byPowerThenAddress);
  return merged;
}
