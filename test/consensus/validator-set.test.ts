// Validator sets and proposer selection. Table tests port CometBFT's vectors (types/validator_set_test.go,
// state/state_test.go, spec/consensus/proposer-selection.md); property tests (fast-check) check fairness, the priority
// window, centring, determinism and immutability.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { concatBytes, fromHex, type Hex, keccak256, toHex, uintBytes, utf8 } from "../../consensus/bytes.ts";
import type { ValidatorSet } from "../../consensus/types.ts";
import {
  computeValidatorSetId,
  createValidatorSet,
  createValidatorSetWithAddresses,
  exceedsOneThird,
  hasQuorum,
  incrementProposerPriority,
  indexOfAddress,
  MAX_TOTAL_VOTING_POWER,
  nextHeightValidatorSet,
  nextHeightValidatorSetWithAddresses,
  proposerIndex,
  quorumThreshold,
  VALIDATOR_SET_DOMAIN,
  type ValidatorChange,
  type ValidatorChangeWithAddress,
  type ValidatorInput,
  ValidatorSetError,
  type ValidatorSetErrorCode,
  validatorAddress,
} from "../../consensus/validator-set.ts";

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const MAX_VP = MAX_TOTAL_VOTING_POWER;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/**
 * CometBFT's tests use raw addresses such as []byte("foo"). Right-padding with zero bytes to 20 bytes keeps their
 * bytes.Compare order (0x00 sorts first, so a shorter name still sorts before its extensions).
 */
function nameAddress(name: string | Uint8Array): Hex {
  const bytes = typeof name === "string" ? utf8(name) : name;
  if (bytes.length > 20) throw new RangeError(`name ${String(name)} is longer than 20 bytes`);
  const out = new Uint8Array(20);
  out.set(bytes);
  return toHex(out);
}

function nameOf(address: Hex): string {
  const bytes = fromHex(address);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/** A deterministic 48-byte stand-in for a BLS public key (no curve checks happen in validator-set.ts). */
function fakeKey(label: string): Uint8Array {
  return concatBytes(keccak256(utf8(`key:${label}`)), keccak256(utf8(`key2:${label}`)).subarray(0, 16));
}

type TestVal = readonly [name: string, power: bigint];

function namedSet(vals: readonly TestVal[]): ValidatorSet {
  return createValidatorSetWithAddresses(
    vals.map(([name, power]) => ({ address: nameAddress(name), publicKey: fakeKey(name), votingPower: power })),
  );
}

function namedChanges(vals: readonly TestVal[]): ValidatorChangeWithAddress[] {
  return vals.map(([name, power]) => ({ address: nameAddress(name), publicKey: fakeKey(name), votingPower: power }));
}

function applyNamed(set: ValidatorSet, vals: readonly TestVal[]): ValidatorSet {
  return nextHeightValidatorSetWithAddresses(set, namedChanges(vals));
}

/** CometBFT toTestValList: (name, power) in set order. */
function testVals(set: ValidatorSet): [string, bigint][] {
  return set.validators.map((v) => [nameOf(v.address), v.votingPower]);
}

function names(set: ValidatorSet): string[] {
  return set.validators.map((v) => nameOf(v.address));
}

function proposerName(set: ValidatorSet): string {
  return nameOf((set.validators[set.proposerIndex] ?? fail("no proposer")).address);
}

function priorities(set: ValidatorSet): bigint[] {
  return set.validators.map((v) => v.proposerPriority);
}

function priorityOf(set: ValidatorSet, name: string): bigint {
  const v = set.validators.find((x) => nameOf(x.address) === name) ?? fail(`no validator ${name}`);
  return v.proposerPriority;
}

function fail(message: string): never {
  throw new Error(message);
}

/**
 * A set literal built like CometBFT's `ValidatorSet{Validators: ...}` in tests: validators in the given order, the given
 * priorities (possibly zero powers), no increment run.
 */
function rawSet(vals: readonly { name: string | Uint8Array; power: bigint; priority: bigint }[]): ValidatorSet {
  const validators = vals.map((v, i) => ({
    address: nameAddress(v.name),
    publicKey: fakeKey(`raw${i}`),
    votingPower: v.power,
    proposerPriority: v.priority,
  }));
  let total = 0n;
  for (const v of validators) total += v.votingPower;
  return { validators, totalVotingPower: total, id: computeValidatorSetId(validators), proposerIndex: 0 };
}

/**
 * Every set this module returns was produced by an increment whose last step added each power and charged the total to
 * the proposer. Undoing that step gives the priorities right after the rescale and centring (no clipping happens
 * below MAX_TOTAL_VOTING_POWER): the state CometBFT's verifyValidatorSet inspects after UpdateWithChangeSet.
 */
function beforeLastStep(set: ValidatorSet): bigint[] {
  return set.validators.map(
    (v, i) => v.proposerPriority - v.votingPower + (i === set.proposerIndex ? set.totalVotingPower : 0n),
  );
}

function spread(values: readonly bigint[]): bigint {
  let max = INT64_MIN;
  let min = INT64_MAX;
  for (const p of values) {
    if (p > max) max = p;
    if (p < min) min = p;
  }
  return max - min;
}

/** CometBFT verifyValidatorSet on the rescaled, centred priorities, plus the set's own consistency. */
function verifyValidatorSet(set: ValidatorSet): void {
  let total = 0n;
  for (const v of set.validators) total += v.votingPower;
  expect(set.totalVotingPower).toBe(total);
  expect(set.id).toBe(computeValidatorSetId(set.validators));
  const pre = beforeLastStep(set);
  const n = BigInt(set.validators.length);
  let sum = 0n;
  for (const p of pre) sum += p;
  // CometBFT checks sum in (-n, n); with Euclidean centring it is in [0, n).
  expect(sum >= 0n && sum < n, `priority sum ${sum} not in [0, ${n})`).toBe(true);
  expect(spread(pre) <= 2n * total, `priority spread ${spread(pre)} > 2 * ${total}`).toBe(true);
  // Order: power descending, address ascending.
  for (let i = 1; i < set.validators.length; i++) {
    const a = set.validators[i - 1] ?? fail("index");
    const b = set.validators[i] ?? fail("index");
    expect(a.votingPower > b.votingPower || (a.votingPower === b.votingPower && a.address < b.address)).toBe(true);
  }
}

function expectError(fn: () => unknown, code: ValidatorSetErrorCode): ValidatorSetError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidatorSetError);
    const e = error as ValidatorSetError;
    expect(e.code).toBe(code);
    expect(e.name).toBe("ValidatorSetError");
    expect(e.message).toContain(":"); // "<what is wrong>: <the fix>"
    return e;
  }
  throw new Error(`expected ValidatorSetError ${code}`);
}

function snapshot<T>(value: T): T {
  return structuredClone(value);
}

/** CometBFT testValSet: v1..vn with the same power. */
function testValSet(n: number, power: bigint): TestVal[] {
  return Array.from({ length: n }, (_, i) => [`v${i + 1}`, power] as const);
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  const out: T[][] = [];
  items.forEach((item, i) => {
    for (const rest of permutations([...items.slice(0, i), ...items.slice(i + 1)])) out.push([item, ...rest]);
  });
  return out;
}

/** A small seeded PRNG (mulberry32) for CometBFT's randomised configurations; the seed comes from fast-check. */
function mulberry32(seed: number): (bound: number) => number {
  let a = seed >>> 0;
  return (bound) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * bound;
  };
}

const keyArb = fc.uint8Array({ minLength: 48, maxLength: 48 });

/** 1..maxN validators with distinct random keys and powers in [1, maxPower]. */
function inputsArb(maxN: number, maxPower: bigint): fc.Arbitrary<ValidatorInput[]> {
  return fc
    .uniqueArray(fc.record({ publicKey: keyArb, votingPower: fc.bigInt({ min: 1n, max: maxPower }) }), {
      minLength: 1,
      maxLength: maxN,
      selector: (v) => toHex(v.publicKey),
    })
    .map((vals) => vals.map((v) => ({ publicKey: v.publicKey, votingPower: v.votingPower })));
}

/** A change plan resolved against a set at run time so it is always valid (known removals, no duplicates). */
type ChangeOp =
  | { kind: "add"; key: Uint8Array; power: bigint }
  | { kind: "update" | "remove"; pick: number; power: bigint };

const changeOpArb: fc.Arbitrary<ChangeOp> = fc.oneof(
  fc.record({ kind: fc.constant("add" as const), key: keyArb, power: fc.bigInt({ min: 1n, max: 500n }) }),
  fc.record({
    kind: fc.constantFrom("update" as const, "remove" as const),
    pick: fc.nat(),
    power: fc.bigInt({ min: 1n, max: 500n }),
  }),
);

function resolveChanges(set: ValidatorSet, ops: readonly ChangeOp[]): ValidatorChange[] {
  const used = new Set<string>();
  const changes: ValidatorChange[] = [];
  let remaining = set.validators.length;
  for (const op of ops) {
    if (op.kind === "add") {
      const address = validatorAddress(op.key);
      if (used.has(address) || indexOfAddress(set, address) >= 0) continue;
      used.add(address);
      changes.push({ publicKey: op.key, votingPower: op.power });
    } else {
      const v = set.validators[op.pick % set.validators.length] ?? fail("pick");
      if (used.has(v.address)) continue;
      if (op.kind === "remove" && remaining <= 1) continue;
      used.add(v.address);
      if (op.kind === "remove") remaining--;
      changes.push({ publicKey: v.publicKey, votingPower: op.kind === "remove" ? 0n : op.power });
    }
  }
  return changes;
}

// ---------------------------------------------------------------------------------------------------------------
// Addresses, ids, construction

describe("validatorAddress", () => {
  it("is the last 20 bytes of keccak256(publicKey), lowercase hex (golden)", () => {
    const k1 = Uint8Array.from({ length: 48 }, (_, i) => i + 1);
    const k2 = Uint8Array.from({ length: 48 }, (_, i) => 0xff - i);
    expect(validatorAddress(k1)).toBe("0x21736760cf15dafc459495d4f0f474adf3dc9a37");
    expect(validatorAddress(k2)).toBe("0x53a91d055bd2a842b29c92bed0a7f37a46e8aa46");
    expect(validatorAddress(k1)).toBe(toHex(keccak256(k1).subarray(12)));
  });

  it("rejects keys that are not 48 bytes", () => {
    expectError(() => validatorAddress(new Uint8Array(47)), "bad_public_key");
    expectError(() => validatorAddress(new Uint8Array(96)), "bad_public_key");
  });
});

describe("computeValidatorSetId", () => {
  const k1 = Uint8Array.from({ length: 48 }, (_, i) => i + 1);
  const k2 = Uint8Array.from({ length: 48 }, (_, i) => 0xff - i);

  it("hashes domain(32) || publicKey(48) || votingPower(u64 BE) per validator, in order (golden)", () => {
    expect(toHex(VALIDATOR_SET_DOMAIN)).toBe(toHex(keccak256(utf8("lumia.dcn.v1.validator-set"))));
    expect(toHex(VALIDATOR_SET_DOMAIN)).toBe("0x33bb61c58641a94e45d6d87880f4fa7952bf2d8d8e8bbb1cce9f9dc84e1b3d33");
    const vals = [
      { publicKey: k2, votingPower: 100n },
      { publicKey: k1, votingPower: 7n },
    ];
    const preimage = concatBytes(VALIDATOR_SET_DOMAIN, k2, uintBytes(100n, 8), k1, uintBytes(7n, 8));
    expect(preimage.length).toBe(32 + 2 * (48 + 8));
    expect(computeValidatorSetId(vals)).toBe(toHex(keccak256(preimage)));
    expect(computeValidatorSetId(vals)).toBe("0x27dfeb49fe7335d482af9826e9d7469fdbd72bc184099c3bf76bf18c460703e3");
    // Order matters; the set's order is what gets committed.
    expect(computeValidatorSetId([...vals].reverse())).not.toBe(computeValidatorSetId(vals));
    expect(computeValidatorSetId([])).toBe(toHex(keccak256(VALIDATOR_SET_DOMAIN)));
  });

  it("is the id of a set, and does not depend on proposer priorities", () => {
    const set = createValidatorSet([
      { publicKey: k1, votingPower: 7n },
      { publicKey: k2, votingPower: 100n },
    ]);
    expect(set.id).toBe("0x27dfeb49fe7335d482af9826e9d7469fdbd72bc184099c3bf76bf18c460703e3");
    const later = incrementProposerPriority(set, 5);
    expect(priorities(later)).not.toEqual(priorities(set));
    expect(later.id).toBe(set.id);
    expect(nextHeightValidatorSet(set).id).toBe(set.id);
    expect(nextHeightValidatorSet(set, [{ publicKey: k1, votingPower: 8n }]).id).not.toBe(set.id);
  });

  it("rejects bad keys and powers that do not fit u64", () => {
    expectError(() => computeValidatorSetId([{ publicKey: new Uint8Array(32), votingPower: 1n }]), "bad_public_key");
    expectError(() => computeValidatorSetId([{ publicKey: k1, votingPower: -1n }]), "bad_power");
    expectError(() => computeValidatorSetId([{ publicKey: k1, votingPower: 1n << 64n }]), "bad_power");
  });
});

describe("createValidatorSet", () => {
  it("sorts by power descending then address ascending, derives addresses, picks the round-0 proposer", () => {
    const keys = ["a", "b", "c", "d"].map(fakeKey);
    const set = createValidatorSet([
      { publicKey: keys[0] as Uint8Array, votingPower: 10n },
      { publicKey: keys[1] as Uint8Array, votingPower: 30n },
      { publicKey: keys[2] as Uint8Array, votingPower: 10n },
      { publicKey: keys[3] as Uint8Array, votingPower: 20n },
    ]);
    expect(set.totalVotingPower).toBe(70n);
    expect(set.validators.map((v) => v.votingPower)).toEqual([30n, 20n, 10n, 10n]);
    for (const v of set.validators) expect(v.address).toBe(validatorAddress(v.publicKey));
    const [, , third, fourth] = set.validators;
    expect((third?.address ?? "") < (fourth?.address ?? "")).toBe(true);
    // Priorities start at 0; one increment: everyone += power, the 30 proposes and pays 70.
    expect(set.proposerIndex).toBe(0);
    expect(priorities(set)).toEqual([30n - 70n, 20n, 10n, 10n]);
    verifyValidatorSet(set);
  });

  it("copies public keys and freezes the result", () => {
    const key = fakeKey("x");
    const set = createValidatorSet([{ publicKey: key, votingPower: 1n }]);
    key[0] = (key[0] ?? 0) ^ 0xff;
    expect(set.validators[0]?.publicKey).toEqual(fakeKey("x"));
    expect(Object.isFrozen(set)).toBe(true);
    expect(Object.isFrozen(set.validators)).toBe(true);
    expect(Object.isFrozen(set.validators[0])).toBe(true);
  });

  it("rejects invalid inputs with a typed error (TestUpdatesForNewValidatorSet, TestEmptySet)", () => {
    const k = (s: string) => fakeKey(s);
    expectError(() => createValidatorSet([]), "empty");
    expectError(() => createValidatorSet([{ publicKey: new Uint8Array(47), votingPower: 1n }]), "bad_public_key");
    expectError(() => createValidatorSet([{ publicKey: new Uint8Array(49), votingPower: 1n }]), "bad_public_key");
    expectError(
      () => createValidatorSet([{ publicKey: [1, 2, 3] as unknown as Uint8Array, votingPower: 1n }]),
      "bad_public_key",
    );
    // "Verify set including validator with voting power 0 cannot be created"
    expectError(
      () =>
        createValidatorSet([
          { publicKey: k("v1"), votingPower: 0n },
          { publicKey: k("v2"), votingPower: 22n },
          { publicKey: k("v3"), votingPower: 33n },
        ]),
      "bad_power",
    );
    // "Verify set including validator with negative voting power cannot be created"
    expectError(
      () =>
        createValidatorSet([
          { publicKey: k("v1"), votingPower: 10n },
          { publicKey: k("v2"), votingPower: -20n },
          { publicKey: k("v3"), votingPower: 30n },
        ]),
      "bad_power",
    );
    expectError(() => createValidatorSet([{ publicKey: k("v1"), votingPower: 5 as unknown as bigint }]), "bad_power");
    // "Verify duplicates are caught in NewValidatorSet()"
    expectError(
      () =>
        createValidatorSet([
          { publicKey: k("v1"), votingPower: 100n },
          { publicKey: k("v1"), votingPower: 123n },
          { publicKey: k("v1"), votingPower: 234n },
        ]),
      "duplicate_key",
    );
  });

  it("enforces MAX_TOTAL_VOTING_POWER = MaxInt64 / 8 (TestValidatorSet_TotalVotingPowerSafe)", () => {
    expect(MAX_VP).toBe(1152921504606846975n);
    const k = (s: string) => fakeKey(s);
    expect(createValidatorSet([{ publicKey: k("a"), votingPower: MAX_VP }]).totalVotingPower).toBe(MAX_VP);
    expect(
      createValidatorSet([
        { publicKey: k("a"), votingPower: MAX_VP - 100n },
        { publicKey: k("b"), votingPower: 100n },
      ]).totalVotingPower,
    ).toBe(MAX_VP);
    const overflow = [
      [MAX_VP / 2n + 1n, MAX_VP / 2n + 1n],
      [MAX_VP, 1n],
      [INT64_MAX / 2n, INT64_MAX / 2n, 100n],
      [INT64_MAX, INT64_MAX, INT64_MAX], // TestValidatorSetTotalVotingPowerPanicsOnOverflow
    ];
    for (const powers of overflow) {
      expectError(
        () => createValidatorSet(powers.map((p, i) => ({ publicKey: k(`o${i}`), votingPower: p }))),
        "total_power_overflow",
      );
    }
  });

  it("createValidatorSetWithAddresses rejects duplicate addresses and malformed addresses", () => {
    expectError(
      () =>
        createValidatorSetWithAddresses([
          { address: nameAddress("a"), publicKey: fakeKey("1"), votingPower: 1n },
          { address: nameAddress("a"), publicKey: fakeKey("2"), votingPower: 1n },
        ]),
      "duplicate_key",
    );
    expect(() =>
      createValidatorSetWithAddresses([{ address: "0x1234", publicKey: fakeKey("1"), votingPower: 1n }]),
    ).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// CometBFT types/validator_set_test.go

describe("CometBFT proposer selection vectors", () => {
  it("TestProposerSelection1: foo=1000 bar=300 baz=330, 99 proposers", () => {
    const expected =
      "foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar" +
      " foo foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar" +
      " foo baz foo foo bar foo baz foo foo bar foo baz foo foo foo baz bar foo foo foo baz" +
      " foo bar foo foo baz foo bar foo foo baz foo bar foo foo baz foo bar foo foo baz foo" +
      " foo bar foo baz foo foo bar foo baz foo foo bar foo baz foo foo";
    const start = namedSet([
      ["foo", 1000n],
      ["bar", 300n],
      ["baz", 330n],
    ]);
    // As in the Go test: GetProposer, then IncrementProposerPriority(1), 99 times.
    let set = start;
    const got: string[] = [];
    for (let i = 0; i < 99; i++) {
      got.push(proposerName(set));
      set = incrementProposerPriority(set, 1);
    }
    expect(got.join(" ")).toBe(expected);
    // The same sequence as rounds of one height: round r = incrementProposerPriority(start, r).
    const rounds = Array.from({ length: 99 }, (_, r) =>
      nameOf(start.validators[proposerIndex(start, r)]?.address ?? "0x"),
    );
    expect(rounds.join(" ")).toBe(expected);
  });

  it("TestProposerSelection2: equal power goes in address order; 400 vs 401; frequencies 4:5:3", () => {
    const addr = (last: number) => Uint8Array.from({ length: 20 }, (_, i) => (i === 19 ? last : 0));
    const make = (powers: readonly bigint[]) =>
      createValidatorSetWithAddresses(
        powers.map((p, i) => ({ address: nameAddress(addr(i)), publicKey: fakeKey(`p2-${i}`), votingPower: p })),
      );
    const last = (set: ValidatorSet) => Number(set.validators[set.proposerIndex]?.address.slice(-2) ?? "ff");

    let vals = make([100n, 100n, 100n]);
    for (let i = 0; i < 15; i++) {
      expect(last(vals)).toBe(i % 3);
      vals = incrementProposerPriority(vals, 1);
    }
    // One validator has more than the others, but not enough to propose twice in a row.
    vals = make([100n, 100n, 400n]);
    expect(last(vals)).toBe(2);
    expect(last(incrementProposerPriority(vals, 1))).toBe(0);
    // One validator has more than the others, and enough to be proposer twice in a row.
    vals = make([100n, 100n, 401n]);
    expect(last(vals)).toBe(2);
    vals = incrementProposerPriority(vals, 1);
    expect(last(vals)).toBe(2);
    expect(last(incrementProposerPriority(vals, 1))).toBe(0);
    // Each validator is the proposer a proportional number of times.
    vals = make([4n, 5n, 3n]);
    const counts = [0, 0, 0];
    for (let i = 0; i < 120; i++) {
      counts[last(vals)] = (counts[last(vals)] ?? 0) + 1;
      vals = incrementProposerPriority(vals, 1);
    }
    expect(counts).toEqual([40, 50, 30]);
  });

  it("TestProposerSelection3: 4 equal validators cycle forever, also with times > 1", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(keyArb, { minLength: 4, maxLength: 4, selector: toHex }),
        fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 50, maxLength: 300 }),
        (keys, timesList) => {
          const start = createValidatorSet(keys.map((publicKey) => ({ publicKey, votingPower: 1n })));
          const order: string[] = [];
          let vset = start;
          for (let i = 0; i < 4; i++) {
            order.push(vset.validators[vset.proposerIndex]?.address ?? "");
            vset = incrementProposerPriority(vset, 1);
          }
          expect(new Set(order).size).toBe(4);
          let j = 4;
          for (const times of timesList) {
            expect(vset.validators[vset.proposerIndex]?.address).toBe(order[j % 4]);
            vset = incrementProposerPriority(vset, times);
            j += times;
          }
          for (let r = 0; r < 40; r++) expect(start.validators[proposerIndex(start, r)]?.address).toBe(order[r % 4]);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("TestIncrementProposerPriorityPositiveTimes", () => {
    const vset = namedSet([
      ["foo", 1000n],
      ["bar", 300n],
      ["baz", 330n],
    ]);
    expect(() => incrementProposerPriority(vset, -1)).toThrow(RangeError);
    expect(() => incrementProposerPriority(vset, 0)).toThrow(RangeError);
    expect(() => incrementProposerPriority(vset, 1.5)).toThrow(RangeError);
    expect(() => incrementProposerPriority(vset, 2 ** 31)).toThrow(RangeError);
    expect(() => incrementProposerPriority(vset, 1)).not.toThrow();
  });

  it("TestAvgProposerPriority: the average is big.Int Div (Euclidean), seen through the centring step", () => {
    // With zero voting power there is no rescale and no step: incrementProposerPriority only subtracts the average.
    const cases: { prios: bigint[]; avg: bigint }[] = [
      { prios: [0n, 0n, 0n], avg: 0n },
      { prios: [INT64_MAX, 0n, 0n], avg: INT64_MAX / 3n },
      { prios: [INT64_MAX, 0n], avg: INT64_MAX / 2n },
      { prios: [INT64_MAX, INT64_MAX], avg: INT64_MAX },
      { prios: [INT64_MIN, INT64_MIN], avg: INT64_MIN },
      // Not in CometBFT's table: a negative sum rounds toward -infinity (Euclidean), not toward zero.
      { prios: [-1n, 0n, 0n], avg: -1n },
      { prios: [-123n, 0n], avg: -62n },
    ];
    for (const { prios, avg } of cases) {
      const set = rawSet(prios.map((priority, i) => ({ name: `v${i}`, power: 0n, priority })));
      expect(priorities(incrementProposerPriority(set, 1))).toEqual(prios.map((p) => p - avg));
    }
  });

  it("TestAveragingInIncrementProposerPriority", () => {
    const cases = [
      { prios: [1n, 2n, 3n], times: 1, avg: 2n },
      { prios: [10n, -10n, 1n], times: 11, avg: 0n },
      { prios: [100n, -10n, 1n], times: 1, avg: 91n / 3n },
    ];
    for (const { prios, times, avg } of cases) {
      const vs = rawSet(prios.map((priority, i) => ({ name: ["a", "b", "c"][i] ?? "", power: 0n, priority })));
      const before = snapshot(vs);
      const updated = incrementProposerPriority(vs, times);
      expect(priorities(updated)).toEqual(prios.map((p) => p - avg));
      expect(vs).toEqual(before); // CopyIncrementProposerPriority works on a copy
    }
  });

  it("TestAveragingInIncrementProposerPriorityWithVotingPower", () => {
    const [vp0, vp1, vp2] = [10n, 1n, 1n];
    const total = vp0 + vp1 + vp2;
    const avg = (vp0 + vp1 + vp2 - total) / 3n;
    const vals = rawSet([
      { name: new Uint8Array([0]), power: vp0, priority: 0n },
      { name: new Uint8Array([1]), power: vp1, priority: 0n },
      { name: new Uint8Array([2]), power: vp2, priority: 0n },
    ]);
    const cases: { want: bigint[]; times: number; proposer: number }[] = [
      { want: [0n + vp0 - total - avg, 0n + vp1, 0n + vp2], times: 1, proposer: 0 },
      { want: [0n + vp0 - total + vp0 - total - avg, 0n + vp1 + vp1, 0n + vp2 + vp2], times: 2, proposer: 0 },
      { want: [0n + 3n * (vp0 - total) - avg, 0n + 3n * vp1, 0n + 3n * vp2], times: 3, proposer: 0 },
      { want: [0n + 4n * (vp0 - total), 0n + 4n * vp1, 0n + 4n * vp2], times: 4, proposer: 0 },
      { want: [0n + 4n * (vp0 - total) + vp0, 0n + 5n * vp1 - total, 0n + 5n * vp2], times: 5, proposer: 1 },
      { want: [0n + 6n * vp0 - 5n * total, 0n + 6n * vp1 - total, 0n + 6n * vp2], times: 6, proposer: 0 },
      { want: [0n + 7n * vp0 - 6n * total, 0n + 7n * vp1 - total, 0n + 7n * vp2], times: 7, proposer: 0 },
      { want: [0n + 8n * vp0 - 7n * total, 0n + 8n * vp1 - total, 0n + 8n * vp2], times: 8, proposer: 0 },
      { want: [0n + 9n * vp0 - 7n * total, 0n + 9n * vp1 - total, 0n + 9n * vp2 - total], times: 9, proposer: 2 },
      { want: [0n + 10n * vp0 - 8n * total, 0n + 10n * vp1 - total, 0n + 10n * vp2 - total], times: 10, proposer: 0 },
      { want: [0n + 11n * vp0 - 9n * total, 0n + 11n * vp1 - total, 0n + 11n * vp2 - total], times: 11, proposer: 0 },
    ];
    for (const { want, times, proposer } of cases) {
      const got = incrementProposerPriority(vals, times);
      expect(got.proposerIndex, `times ${times}`).toBe(proposer);
      expect(priorities(got), `times ${times}`).toEqual(want);
      expect(proposerIndex(vals, times)).toBe(proposer);
    }
  });

  it("int64 semantics (TestSafeAddClip / TestSafeSubClip through the set; Go int64 wrap in the rescale)", () => {
    // Priorities MaxInt64 and MinInt64: Go's `max - min` wraps to -1, |-1| = 1 <= diffMax, so no rescale. The average
    // is floor(-1 / 2) = -1; MaxInt64 - (-1) clips to MaxInt64 (safeSubClip); + power clips again (safeAddClip);
    // the proposer then pays the total: MaxInt64 - 3. The other: MinInt64 + 1 + 1.
    const set = rawSet([
      { name: "a", power: 1n, priority: INT64_MAX },
      { name: "b", power: 2n, priority: INT64_MIN },
    ]);
    const got = incrementProposerPriority(set, 1);
    expect(got.proposerIndex).toBe(0);
    expect(priorities(got)).toEqual([INT64_MAX - 3n, INT64_MIN + 1n + 2n]);
    // Subtraction clips at MinInt64 (safeSubClip(MinInt64, 10) == MinInt64): [Min, Max, Max] wraps to diff 1 (no
    // rescale); avg = floor((Max - 1) / 3) > 0 and Min - avg clips to Min. Then +1 each; b and c tie, b (lower) pays 3.
    const avg = (INT64_MAX - 1n) / 3n;
    const low = rawSet([
      { name: "a", power: 1n, priority: INT64_MIN },
      { name: "b", power: 1n, priority: INT64_MAX },
      { name: "c", power: 1n, priority: INT64_MAX },
    ]);
    const lowNext = incrementProposerPriority(low, 1);
    expect(lowNext.proposerIndex).toBe(1);
    expect(priorities(lowNext)).toEqual([INT64_MIN + 1n, INT64_MAX - avg + 1n - 3n, INT64_MAX - avg + 1n]);
  });

  it("TestValSetUpdatesDuplicateEntries / Overflows / OtherErrors: typed errors, nothing mutated", () => {
    const cases: { start: TestVal[]; update: TestVal[]; code: ValidatorSetErrorCode }[] = [
      // duplicates in changes
      {
        start: testValSet(2, 10n),
        update: [
          ["v1", 11n],
          ["v1", 22n],
        ],
        code: "duplicate_key",
      },
      {
        start: testValSet(2, 10n),
        update: [
          ["v2", 11n],
          ["v2", 22n],
        ],
        code: "duplicate_key",
      },
      {
        start: testValSet(2, 10n),
        update: [
          ["v1", 11n],
          ["v2", 22n],
          ["v1", 12n],
        ],
        code: "duplicate_key",
      },
      {
        start: testValSet(3, 10n),
        update: [
          ["v1", 11n],
          ["v3", 22n],
          ["v1", 12n],
        ],
        code: "duplicate_key",
      },
      // duplicates in removals
      {
        start: testValSet(2, 10n),
        update: [
          ["v1", 0n],
          ["v1", 0n],
        ],
        code: "duplicate_key",
      },
      {
        start: testValSet(2, 10n),
        update: [
          ["v2", 0n],
          ["v2", 0n],
        ],
        code: "duplicate_key",
      },
      {
        start: testValSet(2, 10n),
        update: [
          ["v1", 0n],
          ["v2", 0n],
          ["v1", 0n],
        ],
        code: "duplicate_key",
      },
      {
        start: testValSet(3, 10n),
        update: [
          ["v1", 0n],
          ["v3", 0n],
          ["v1", 0n],
        ],
        code: "duplicate_key",
      },
      {
        start: testValSet(2, 10n),
        update: [
          ["v1", 0n],
          ["v2", 20n],
          ["v1", 30n],
        ],
        code: "duplicate_key",
      },
      {
        start: testValSet(2, 10n),
        update: [
          ["v1", 0n],
          ["v2", 20n],
          ["v2", 30n],
          ["v1", 0n],
        ],
        code: "duplicate_key",
      },
      {
        start: testValSet(3, 10n),
        update: [
          ["v1", 0n],
          ["v3", 5n],
          ["v2", 20n],
          ["v2", 30n],
          ["v1", 0n],
        ],
        code: "duplicate_key",
      },
      // overflows
      { start: testValSet(2, 10n), update: [["v1", INT64_MAX]], code: "total_power_overflow" },
      { start: testValSet(2, 10n), update: [["v2", INT64_MAX]], code: "total_power_overflow" },
      { start: testValSet(1, MAX_VP), update: [["v2", INT64_MAX]], code: "total_power_overflow" },
      { start: testValSet(1, MAX_VP - 1n), update: [["v2", 5n]], code: "total_power_overflow" },
      { start: testValSet(2, MAX_VP / 3n), update: [["v3", MAX_VP / 2n]], code: "total_power_overflow" },
      { start: testValSet(1, MAX_VP), update: [["v2", MAX_VP]], code: "total_power_overflow" },
      // other errors
      { start: testValSet(2, 10n), update: [["v1", -123n]], code: "bad_power" },
      { start: testValSet(2, 10n), update: [["v2", -123n]], code: "bad_power" },
      { start: testValSet(2, 10n), update: [["v3", 0n]], code: "remove_unknown" },
      {
        start: [
          ["v1", 10n],
          ["v2", 20n],
          ["v3", 30n],
        ],
        update: [
          ["v1", 0n],
          ["v2", 0n],
          ["v3", 0n],
        ],
        code: "empty",
      },
    ];
    for (const { start, update, code } of cases) {
      const set = namedSet(start);
      const setCopy = snapshot(set);
      const changes = namedChanges(update);
      const changesCopy = snapshot(changes);
      expectError(() => nextHeightValidatorSetWithAddresses(set, changes), code);
      expect(set).toEqual(setCopy);
      expect(changes).toEqual(changesCopy);
    }
  });

  it("TestEmptySet: removing every validator, or from a set without them, is an error", () => {
    const set = namedSet([
      ["v1", 100n],
      ["v2", 100n],
    ]);
    verifyValidatorSet(set);
    expectError(
      () =>
        applyNamed(set, [
          ["v1", 0n],
          ["v2", 0n],
        ]),
      "empty",
    );
    const empty: ValidatorSet = {
      validators: [],
      totalVotingPower: 0n,
      id: computeValidatorSetId([]),
      proposerIndex: 0,
    };
    expectError(() => incrementProposerPriority(empty, 1), "empty");
    expectError(() => nextHeightValidatorSet(empty), "empty");
    expectError(() => proposerIndex(empty, 1), "empty");
  });

  it("TestValSetUpdatesBasicTestsExecute", () => {
    const cases: { start: TestVal[]; update: TestVal[]; expected: TestVal[] }[] = [
      { start: testValSet(2, 10n), update: [], expected: testValSet(2, 10n) },
      {
        start: testValSet(2, 10n),
        update: [
          ["v2", 22n],
          ["v1", 11n],
        ],
        expected: [
          ["v2", 22n],
          ["v1", 11n],
        ],
      },
      {
        start: [
          ["v2", 20n],
          ["v1", 10n],
        ],
        update: [
          ["v4", 40n],
          ["v3", 30n],
        ],
        expected: [
          ["v4", 40n],
          ["v3", 30n],
          ["v2", 20n],
          ["v1", 10n],
        ],
      },
      {
        start: [
          ["v3", 20n],
          ["v1", 10n],
        ],
        update: [["v2", 30n]],
        expected: [
          ["v2", 30n],
          ["v3", 20n],
          ["v1", 10n],
        ],
      },
      {
        start: [
          ["v3", 20n],
          ["v2", 10n],
        ],
        update: [["v1", 30n]],
        expected: [
          ["v1", 30n],
          ["v3", 20n],
          ["v2", 10n],
        ],
      },
      {
        start: [
          ["v3", 30n],
          ["v2", 20n],
          ["v1", 10n],
        ],
        update: [["v2", 0n]],
        expected: [
          ["v3", 30n],
          ["v1", 10n],
        ],
      },
    ];
    for (const { start, update, expected } of cases) {
      const changes = namedChanges(update);
      const updated = nextHeightValidatorSetWithAddresses(namedSet(start), changes);
      // The set holds its own copies: editing the change list afterwards changes nothing.
      const before = testVals(updated);
      if (changes[0] !== undefined) (changes[0] as { votingPower: bigint }).votingPower += 1n;
      expect(testVals(updated)).toEqual(before);
      expect(testVals(updated)).toEqual(expected);
      verifyValidatorSet(updated);
    }
  });

  it("TestValSetUpdatesOrderIndependenceTestsExecute: every permutation of a change set gives the same set", () => {
    const cases: { start: TestVal[]; update: TestVal[] }[] = [
      {
        start: [
          ["v4", 40n],
          ["v3", 30n],
          ["v2", 10n],
          ["v1", 10n],
        ],
        update: [
          ["v4", 44n],
          ["v3", 33n],
          ["v2", 22n],
          ["v1", 11n],
        ],
      },
      {
        start: [
          ["v2", 20n],
          ["v1", 10n],
        ],
        update: [
          ["v3", 30n],
          ["v4", 40n],
          ["v5", 50n],
          ["v6", 60n],
        ],
      },
      {
        start: [
          ["v4", 40n],
          ["v3", 30n],
          ["v2", 20n],
          ["v1", 10n],
        ],
        update: [
          ["v1", 0n],
          ["v3", 0n],
          ["v4", 0n],
        ],
      },
      {
        start: [
          ["v4", 40n],
          ["v3", 30n],
          ["v2", 20n],
          ["v1", 10n],
        ],
        update: [
          ["v1", 0n],
          ["v3", 0n],
          ["v2", 22n],
          ["v5", 50n],
          ["v4", 44n],
        ],
      },
    ];
    for (const { start, update } of cases) {
      const set = namedSet(start);
      const expected = applyNamed(set, update);
      for (const perm of permutations(update)) {
        const got = applyNamed(set, perm);
        verifyValidatorSet(got);
        expect(got).toEqual(expected);
      }
    }
  });

  it("TestValSetApplyUpdatesTestsExecute: merged membership", () => {
    const cases: { start: TestVal[]; update: TestVal[]; expected: TestVal[] }[] = [
      {
        start: [
          ["v4", 44n],
          ["v5", 55n],
        ],
        update: [["v1", 11n]],
        expected: [
          ["v1", 11n],
          ["v4", 44n],
          ["v5", 55n],
        ],
      },
      {
        start: [
          ["v4", 44n],
          ["v5", 55n],
        ],
        update: [["v6", 66n]],
        expected: [
          ["v4", 44n],
          ["v5", 55n],
          ["v6", 66n],
        ],
      },
      {
        start: [
          ["v4", 44n],
          ["v6", 66n],
        ],
        update: [["v5", 55n]],
        expected: [
          ["v4", 44n],
          ["v5", 55n],
          ["v6", 66n],
        ],
      },
      {
        start: [
          ["v4", 44n],
          ["v6", 66n],
          ["v9", 99n],
        ],
        update: [
          ["v5", 55n],
          ["v7", 77n],
          ["v8", 88n],
        ],
        expected: [
          ["v4", 44n],
          ["v5", 55n],
          ["v6", 66n],
          ["v7", 77n],
          ["v8", 88n],
          ["v9", 99n],
        ],
      },
      {
        start: [
          ["v1", 111n],
          ["v2", 22n],
        ],
        update: [["v1", 11n]],
        expected: [
          ["v1", 11n],
          ["v2", 22n],
        ],
      },
      {
        start: [
          ["v1", 11n],
          ["v2", 222n],
        ],
        update: [["v2", 22n]],
        expected: [
          ["v1", 11n],
          ["v2", 22n],
        ],
      },
      {
        start: [
          ["v1", 11n],
          ["v2", 222n],
          ["v3", 33n],
        ],
        update: [["v2", 22n]],
        expected: [
          ["v1", 11n],
          ["v2", 22n],
          ["v3", 33n],
        ],
      },
      {
        start: [
          ["v1", 111n],
          ["v2", 222n],
          ["v3", 333n],
        ],
        update: [
          ["v1", 11n],
          ["v2", 22n],
          ["v3", 33n],
        ],
        expected: [
          ["v1", 11n],
          ["v2", 22n],
          ["v3", 33n],
        ],
      },
      {
        start: [
          ["v1", 111n],
          ["v2", 22n],
        ],
        update: [
          ["v1", 11n],
          ["v3", 33n],
          ["v4", 44n],
        ],
        expected: [
          ["v1", 11n],
          ["v2", 22n],
          ["v3", 33n],
          ["v4", 44n],
        ],
      },
    ];
    for (const { start, update, expected } of cases) {
      const got = testVals(applyNamed(namedSet(start), update)).sort((a, b) => (a[0] < b[0] ? -1 : 1));
      expect(got).toEqual(expected);
    }
  });

  describe("TestValSetUpdatePriorityOrderTests", () => {
    interface Cfg {
      start: TestVal[];
      deleted: TestVal[];
      updated: TestVal[];
      added: TestVal[];
      expected: TestVal[];
    }
    const byPower = (a: TestVal, b: TestVal) => (a[1] !== b[1] ? (a[1] > b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1);

    /** Port of randTestVSetCfg. */
    function randCfg(rand: (bound: number) => number, nBase: number, nAddMax: number): Cfg {
      const maxPower = 1000;
      const nOld = Math.floor(rand(nBase)) + 1;
      const nDel = nBase - nOld > 0 ? Math.floor(rand(nBase - nOld)) : 0;
      const nChanged = nBase - nOld - nDel;
      const nAdd = nAddMax > 0 ? Math.floor(rand(nAddMax)) + 1 : 0;
      const cfg: Cfg = { start: [], deleted: [], updated: [], added: [], expected: [] };
      const power = () => BigInt(Math.floor(rand(maxPower)) + 1);
      for (let i = 0; i < nBase; i++) {
        cfg.start.push([`v${i}`, power()]);
        if (i < nOld) cfg.expected.push(cfg.start[i] as TestVal);
        else if (i < nOld + nChanged) {
          const u: TestVal = [`v${i}`, power()];
          cfg.updated.push(u);
          cfg.expected.push(u);
        } else cfg.deleted.push([`v${i}`, 0n]);
      }
      for (let i = nBase; i < nBase + nAdd; i++) {
        const a: TestVal = [`v${i}`, power()];
        cfg.added.push(a);
        cfg.expected.push(a);
      }
      for (const list of [cfg.start, cfg.deleted, cfg.updated, cfg.added, cfg.expected]) list.sort(byPower);
      return cfg;
    }

    function verifyPriorityOrder(cfg: Cfg, elections: number): void {
      let set = namedSet(cfg.start);
      verifyValidatorSet(set);
      set = incrementProposerPriority(set, elections);
      const updated = applyNamed(set, [...cfg.added, ...cfg.updated, ...cfg.deleted]);
      expect(testVals(updated)).toEqual(cfg.expected.map(([n, p]) => [n, p]));
      verifyValidatorSet(updated);
      if (cfg.added.length === 0) return;
      // CometBFT checks right after UpdateWithChangeSet; our set also ran the height's increment, so undo its step.
      // The added validators have the smallest priorities, and all the same one.
      const pre = beforeLastStep(updated);
      const rows = updated.validators.map((v, i) => ({ name: nameOf(v.address), power: v.votingPower, pre: pre[i] }));
      rows.sort((a, b) =>
        (a.pre ?? 0n) !== (b.pre ?? 0n) ? ((a.pre ?? 0n) < (b.pre ?? 0n) ? -1 : 1) : a.name < b.name ? -1 : 1,
      );
      const lowest = rows.slice(0, cfg.added.length);
      expect(lowest.map((r) => [r.name, r.power] as TestVal).sort(byPower)).toEqual(cfg.added);
      for (const r of lowest) expect(r.pre).toBe(lowest[0]?.pre);
    }

    it("fixed cases 0-2", () => {
      const cases: Cfg[] = [
        {
          start: [
            ["v3", 1000n],
            ["v1", 1n],
            ["v2", 1n],
          ],
          deleted: [["v3", 0n]],
          updated: [],
          added: [],
          expected: [
            ["v1", 1n],
            ["v2", 1n],
          ],
        },
        {
          start: [
            ["v3", 1000n],
            ["v2", 10n],
            ["v1", 1n],
          ],
          deleted: [["v3", 0n]],
          updated: [],
          added: [],
          expected: [
            ["v2", 10n],
            ["v1", 1n],
          ],
        },
        {
          start: [
            ["v3", 1000n],
            ["v2", 2n],
            ["v1", 1n],
          ],
          deleted: [["v3", 0n]],
          updated: [["v2", 1n]],
          added: [
            ["v5", 50n],
            ["v4", 40n],
          ],
          expected: [
            ["v5", 50n],
            ["v4", 40n],
            ["v1", 1n],
            ["v2", 1n],
          ],
        },
      ];
      for (const cfg of cases) for (const elections of [1, 2, 3, 17, 4999]) verifyPriorityOrder(cfg, elections);
    });

    it("random configurations (randTestVSetCfg(100, 10), (10, 100), (100, 1000), (1000, 1000))", () => {
      const shapes: [number, number, number][] = [
        [100, 10, 5000],
        [10, 100, 5000],
        [100, 1000, 500],
        [1000, 1000, 50],
      ];
      fc.assert(
        fc.property(
          fc.integer(),
          fc.constantFrom(...shapes),
          fc.double({ min: 0, max: 1, noNaN: true }),
          (seed, shape, e) => {
            const [nBase, nAddMax, maxElections] = shape;
            verifyPriorityOrder(randCfg(mulberry32(seed), nBase, nAddMax), Math.floor(e * (maxElections - 1)) + 1);
          },
        ),
        { numRuns: 12 },
      );
    });
  });

  it("TestValSetUpdateOverflowRelated", () => {
    const cases: {
      name: string;
      start: TestVal[];
      changes: TestVal[];
      expected: TestVal[];
      code?: ValidatorSetErrorCode;
    }[] = [
      {
        name: "1 no false overflow error messages for updates",
        start: [
          ["v2", MAX_VP - 1n],
          ["v1", 1n],
        ],
        changes: [
          ["v1", MAX_VP - 1n],
          ["v2", 1n],
        ],
        expected: [
          ["v1", MAX_VP - 1n],
          ["v2", 1n],
        ],
      },
      {
        name: "2 no false overflow error messages for updates",
        start: [
          ["v2", MAX_VP - 1n],
          ["v1", 1n],
        ],
        changes: [
          ["v1", MAX_VP / 2n - 1n],
          ["v2", MAX_VP / 2n],
        ],
        expected: [
          ["v2", MAX_VP / 2n],
          ["v1", MAX_VP / 2n - 1n],
        ],
      },
      {
        name: "3 no false overflow error messages for deletes",
        start: [
          ["v1", MAX_VP - 2n],
          ["v2", 1n],
          ["v3", 1n],
        ],
        changes: [
          ["v4", MAX_VP - 2n],
          ["v1", 0n],
        ],
        expected: [
          ["v4", MAX_VP - 2n],
          ["v2", 1n],
          ["v3", 1n],
        ],
      },
      {
        name: "4 no false overflow error messages for adds, updates and deletes",
        start: [
          ["v1", MAX_VP / 4n],
          ["v2", MAX_VP / 4n],
          ["v3", MAX_VP / 4n],
          ["v4", MAX_VP / 4n],
        ],
        changes: [
          ["v5", 3n],
          ["v1", MAX_VP / 2n - 2n],
          ["v3", MAX_VP / 2n - 3n],
          ["v4", 2n],
          ["v2", 0n],
        ],
        expected: [
          ["v1", MAX_VP / 2n - 2n],
          ["v3", MAX_VP / 2n - 3n],
          ["v5", 3n],
          ["v4", 2n],
        ],
      },
      {
        name: "5 check panic on overflow is prevented: update 8 validators with power int64(math.MaxInt64)/8",
        start: testValSet(9, 1n),
        changes: [...testValSet(8, MAX_VP), ["v9", 8n]],
        expected: testValSet(9, 1n),
        code: "total_power_overflow",
      },
    ];
    for (const { name, start, changes, expected, code } of cases) {
      const set = namedSet(start);
      verifyValidatorSet(set);
      if (code !== undefined) {
        expectError(() => applyNamed(set, changes), code);
        expect(testVals(set), name).toEqual(expected);
        continue;
      }
      const updated = applyNamed(set, changes);
      expect(testVals(updated), name).toEqual(expected);
      verifyValidatorSet(updated);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// CometBFT state/state_test.go (updateState = nextHeightValidatorSet)

describe("CometBFT state vectors", () => {
  const key1 = fakeKey("val1");
  const key2 = fakeKey("val2");
  const addr1 = validatorAddress(key1);
  const addr2 = validatorAddress(key2);
  const prio = (set: ValidatorSet, address: Hex) => set.validators[indexOfAddress(set, address)]?.proposerPriority;
  const proposerAddress = (set: ValidatorSet) => set.validators[set.proposerIndex]?.address;

  it("TestProposerPriorityDoesNotGetResetToZero", () => {
    const state = createValidatorSet([{ publicKey: key1, votingPower: 10n }]);
    const updated = nextHeightValidatorSet(state, []);
    expect(updated.validators[0]?.proposerPriority).toBe(0n); // 0 + power - total
    // Add val2 (100): starts at -(110 + 110 >> 3) = -123; centre (avg -62): val1 62, val2 -61; step: val1 proposes.
    const updated2 = nextHeightValidatorSet(updated, [{ publicKey: key2, votingPower: 100n }]);
    expect(updated2.validators.length).toBe(2);
    expect(prio(updated2, addr1)).toBe(-38n);
    expect(prio(updated2, addr2)).toBe(39n);
    // val2 power 100 -> 1: spread 77 > 2 * 11, ratio 4: val1 -38/4 = -9, val2 39/4 = 9; step: val2 proposes.
    const updated3 = nextHeightValidatorSet(updated2, [{ publicKey: key2, votingPower: 1n }]);
    expect(prio(updated3, addr2)).toBe(-1n);
    expect(prio(updated3, addr1)).toBe(1n);
    expect(proposerAddress(updated3)).toBe(addr2);
  });

  it("TestProposerPriorityProposerAlternates", () => {
    const state = createValidatorSet([{ publicKey: key1, votingPower: 10n }]);
    expect(proposerAddress(state)).toBe(addr1);
    const updated = nextHeightValidatorSet(state);
    expect(updated.validators[0]?.proposerPriority).toBe(0n);
    expect(proposerAddress(updated)).toBe(addr1);
    // Add val2 with the same power: -22; centre (avg -11): val1 11, val2 -11; step: val1 21 - 20 = 1, val2 -1.
    const updated2 = nextHeightValidatorSet(updated, [{ publicKey: key2, votingPower: 10n }]);
    expect(proposerAddress(updated2)).toBe(addr1);
    expect(prio(updated2, addr1)).toBe(1n);
    expect(prio(updated2, addr2)).toBe(-1n);
    const updated3 = nextHeightValidatorSet(updated2);
    expect(proposerAddress(updated3)).toBe(addr1);
    expect(prio(updated3, addr1)).toBe(-9n);
    expect(prio(updated3, addr2)).toBe(9n);
    // No changes, equal powers: proposers alternate with cyclic priorities.
    let previous = updated3;
    let old = nextHeightValidatorSet(updated3);
    for (let i = 0; i < 1000; i++) {
      const next = nextHeightValidatorSet(old);
      expect(proposerAddress(next)).not.toBe(proposerAddress(old));
      expect(proposerAddress(next)).toBe(proposerAddress(previous));
      if (i % 2 === 0) {
        expect(proposerAddress(old)).toBe(addr2);
        expect([prio(next, addr1), prio(next, addr2)]).toEqual([-9n, 9n]);
      } else {
        expect(proposerAddress(old)).toBe(addr1);
        expect([prio(next, addr1), prio(next, addr2)]).toEqual([1n, -1n]);
      }
      previous = old;
      old = next;
    }
  });

  it("TestLargeGenesisValidator", () => {
    const genesisKey = fakeKey("genesis");
    const genesisAddress = validatorAddress(genesisKey);
    let state = createValidatorSet([{ publicKey: genesisKey, votingPower: MAX_VP / 1000n }]);
    for (let i = 0; i < 10; i++) {
      const next = nextHeightValidatorSet(state);
      expect(next).toEqual(state);
      expect(next.validators[next.proposerIndex]?.proposerPriority).toBe(0n);
      state = next;
    }
    const firstAddedKey = fakeKey("firstAdded");
    const firstAddedAddress = validatorAddress(firstAddedKey);
    const afterAdd = nextHeightValidatorSet(state, [{ publicKey: firstAddedKey, votingPower: 10n }]);
    let last = afterAdd;
    for (let i = 0; i < 200; i++) last = nextHeightValidatorSet(last);
    const p = (set: ValidatorSet, a: Hex) => prio(set, a) ?? fail("missing");
    expect(p(afterAdd, genesisAddress) > p(last, genesisAddress)).toBe(true);
    expect(p(afterAdd, firstAddedAddress) < p(last, firstAddedAddress)).toBe(true);
    // Add 10 validators with the same power as the first added one, one per height.
    let current = last;
    for (let i = 0; i < 10; i++) {
      current = nextHeightValidatorSet(current, [{ publicKey: fakeKey(`added${i}`), votingPower: 10n }]);
    }
    expect(current.validators.length).toBe(12);
    // Remove the genesis validator.
    let cur = nextHeightValidatorSet(current, [{ publicKey: genesisKey, votingPower: 0n }]);
    expect(cur.validators.length).toBe(11);
    // The proposer changes after one block.
    let count = 0;
    for (;;) {
      const next = nextHeightValidatorSet(cur);
      count++;
      const changed = proposerAddress(next) !== proposerAddress(cur);
      cur = next;
      if (changed) break;
    }
    expect(count).toBe(1);
    // Then proposers (with their priorities) cycle with period 11.
    const numVals = cur.validators.length;
    const seen: ({ address: Hex; priority: bigint } | undefined)[] = new Array(numVals);
    for (let i = 0; i < 100; i++) {
      cur = nextHeightValidatorSet(cur);
      const proposer = cur.validators[cur.proposerIndex] ?? fail("proposer");
      if (i > numVals) {
        const entry = { address: proposer.address, priority: proposer.proposerPriority };
        if (seen[i % numVals] === undefined) seen[i % numVals] = entry;
        else expect(entry).toEqual(seen[i % numVals]);
      }
    }
  });

  it("TestProposerFrequency: over P elections each validator proposes power times (bound n - 1)", () => {
    const cases: bigint[][] = [
      [1n, 1n],
      [1n, 2n],
      [1n, 100n],
      [5n, 5n],
      [5n, 100n],
      [50n, 50n],
      [50n, 100n],
      [1n, 1000n],
      [1n, 1n, 1n],
      [1n, 2n, 3n],
      [1n, 1n, 10n],
      [1n, 1n, 100n],
      [1n, 10n, 100n],
      [1n, 1n, 1000n],
      [1n, 10n, 1000n],
      [1n, 100n, 1000n],
      [1n, 1n, 1n, 1n],
      [1n, 2n, 3n, 4n],
      [1n, 1n, 1n, 10n],
      [1n, 1n, 1n, 100n],
      [1n, 1n, 1n, 1000n],
      [1n, 1n, 10n, 100n],
      [1n, 1n, 10n, 1000n],
      [1n, 1n, 100n, 1000n],
      [1n, 10n, 100n, 1000n],
    ];
    cases.forEach((powers, c) => {
      let set = createValidatorSet(powers.map((votingPower, i) => ({ publicKey: fakeKey(`f${c}-${i}`), votingPower })));
      const start = set;
      const freqs = new Array<number>(powers.length).fill(0);
      for (let i = 0; i < Number(set.totalVotingPower); i++) {
        freqs[set.proposerIndex] = (freqs[set.proposerIndex] ?? 0) + 1;
        set = incrementProposerPriority(set, 1);
      }
      start.validators.forEach((v, i) => {
        expect(Math.abs((freqs[i] ?? 0) - Number(v.votingPower))).toBeLessThanOrEqual(powers.length - 1);
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// spec/consensus/proposer-selection.md

describe("CometBFT proposer-selection.md examples", () => {
  it("Stable set p1=1, p2=3: [p2, p1, p2, p2]* and the priority table", () => {
    let set = namedSet([
      ["p1", 1n],
      ["p2", 3n],
    ]);
    const seq: string[] = [];
    const table: Record<string, bigint>[] = [];
    for (let i = 0; i < 12; i++) {
      seq.push(proposerName(set));
      table.push({ p1: priorityOf(set, "p1"), p2: priorityOf(set, "p2") });
      set = incrementProposerPriority(set, 1);
    }
    expect(seq.join(" ")).toBe("p2 p1 p2 p2 p2 p1 p2 p2 p2 p1 p2 p2");
    // Runs 1-4 (run 2 is a tie at 2: the lower address p1 wins).
    expect(table.slice(0, 4)).toEqual([
      { p1: 1n, p2: -1n },
      { p1: -2n, p2: 2n },
      { p1: -1n, p2: 1n },
      { p1: 0n, p2: 0n },
    ]);
  });

  it("Voting power change: p1 1 -> 4", () => {
    const last = rawSet([
      { name: "p1", power: 1n, priority: 1n },
      { name: "p2", power: 3n, priority: -1n },
    ]);
    const next = applyNamed(last, [["p1", 4n]]);
    expect(proposerName(next)).toBe("p1");
    expect([priorityOf(next, "p1"), priorityOf(next, "p2")]).toEqual([-2n, 2n]);
  });

  it("Validator removal: p2 removed, centring with avg -1", () => {
    const last = rawSet([
      { name: "p3", power: 3n, priority: -3n },
      { name: "p2", power: 2n, priority: 2n },
      { name: "p1", power: 1n, priority: 1n },
    ]);
    const next = applyNamed(last, [["p2", 0n]]);
    expect(names(next)).toEqual(["p3", "p1"]);
    expect(proposerName(next)).toBe("p1");
    expect([priorityOf(next, "p1"), priorityOf(next, "p3")]).toEqual([-1n, 1n]);
  });

  it("New validator p3 (8) starts at -1.125 * 12 = -13; centring uses Euclidean division", () => {
    const last = rawSet([
      { name: "p2", power: 3n, priority: -2n },
      { name: "p1", power: 1n, priority: 2n },
    ]);
    const next = applyNamed(last, [["p3", 8n]]);
    // The spec's table centres with avg = -4 (-13 / 3 truncated) and ends at p1 -5, p2 5, p3 -1. The code (big.Int Div)
    // uses floor(-13 / 3) = -5: p1 7, p2 3, p3 -8; step: p1 8, p2 6, p3 0; p1 proposes and pays 12. Same proposer.
    expect(proposerName(next)).toBe("p1");
    expect([priorityOf(next, "p1"), priorityOf(next, "p2"), priorityOf(next, "p3")]).toEqual([-4n, 6n, 0n]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Rounds, lookups, thresholds

describe("proposerIndex", () => {
  it("round 0 is set.proposerIndex, round r is incrementProposerPriority(set, r), in any query order", () => {
    const set = namedSet([
      ["a", 7n],
      ["b", 3n],
      ["c", 3n],
      ["d", 1n],
    ]);
    expect(proposerIndex(set, 0)).toBe(set.proposerIndex);
    const rounds = [40, 3, 0, 17, 1, 39, 100, 2];
    for (const r of rounds) {
      const expected = r === 0 ? set.proposerIndex : incrementProposerPriority(set, r).proposerIndex;
      expect(proposerIndex(set, r), `round ${r}`).toBe(expected);
    }
    expect(() => proposerIndex(set, -1)).toThrow(RangeError);
    expect(() => proposerIndex(set, 0.5)).toThrow(RangeError);
  });

  it("is a function of (set, round); CometBFT's entered-round set matches it while priorities stay in the window", () => {
    // CometBFT enterNewRound increments cs.Validators by (round - cs.Round), so rounds entered one by one give
    // inc(inc(set, 1), 1) while a skip gives inc(set, 2). Each call starts with a rescale, so the two agree whenever
    // priorities are within the 2 * total window after a step (observed for sets this module builds; see the
    // properties below). A hand-built set at the window's edge shows where they part.
    const edge = rawSet([
      { name: "k", power: 49n, priority: 67n },
      { name: "s", power: 50n, priority: 66n },
      { name: "j", power: 1n, priority: -133n },
    ]);
    const stepwise = incrementProposerPriority(incrementProposerPriority(edge, 1), 1);
    const skip = incrementProposerPriority(edge, 2);
    expect(priorities(stepwise)).not.toEqual(priorities(skip));
    expect(proposerIndex(edge, 2)).toBe(skip.proposerIndex);
  });
});

describe("indexOfAddress", () => {
  it("finds every validator, ignores case, returns -1 when absent", () => {
    const set = createValidatorSet(
      ["a", "b", "c"].map((s, i) => ({ publicKey: fakeKey(s), votingPower: BigInt(i + 1) })),
    );
    set.validators.forEach((v, i) => {
      expect(indexOfAddress(set, v.address)).toBe(i);
      expect(indexOfAddress(set, v.address.toUpperCase().replace("0X", "0x") as Hex)).toBe(i);
    });
    expect(indexOfAddress(set, validatorAddress(fakeKey("zzz")))).toBe(-1);
  });
});

describe("thresholds", () => {
  it("quorumThreshold is the smallest power with 3p > 2 * total", () => {
    const table: [bigint, bigint][] = [
      [0n, 1n],
      [1n, 1n],
      [2n, 2n],
      [3n, 3n],
      [4n, 3n],
      [5n, 4n],
      [6n, 5n],
      [7n, 5n],
      [100n, 67n],
      [MAX_VP, (2n * MAX_VP) / 3n + 1n],
    ];
    for (const [total, q] of table) expect(quorumThreshold(total), `total ${total}`).toBe(q);
    expect(() => quorumThreshold(-1n)).toThrow(RangeError);
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: MAX_VP }), (total) => {
        const q = quorumThreshold(total);
        expect(hasQuorum(q, total)).toBe(true);
        expect(hasQuorum(q - 1n, total)).toBe(false);
      }),
    );
  });

  it("hasQuorum is +2/3, exceedsOneThird is f+1", () => {
    expect(hasQuorum(2n, 3n)).toBe(false);
    expect(hasQuorum(3n, 3n)).toBe(true);
    expect(hasQuorum(67n, 100n)).toBe(true);
    expect(hasQuorum(66n, 100n)).toBe(false);
    expect(exceedsOneThird(1n, 3n)).toBe(false);
    expect(exceedsOneThird(2n, 3n)).toBe(true);
    expect(exceedsOneThird(34n, 100n)).toBe(true);
    expect(exceedsOneThird(33n, 100n)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties

describe("properties", () => {
  it("fairness: in any P consecutive rounds each validator proposes power times, within n - 1", () => {
    fc.assert(
      fc.property(inputsArb(6, 40n), fc.nat({ max: 200 }), (inputs, offset) => {
        const set = createValidatorSet(inputs);
        const total = Number(set.totalVotingPower);
        const counts = new Array<number>(set.validators.length).fill(0);
        for (let r = offset; r < offset + total; r++) {
          const i = proposerIndex(set, r);
          counts[i] = (counts[i] ?? 0) + 1;
        }
        set.validators.forEach((v, i) => {
          expect(Math.abs((counts[i] ?? 0) - Number(v.votingPower))).toBeLessThanOrEqual(set.validators.length - 1);
        });
      }),
      { numRuns: 150 },
    );
  });

  it("window and centring: after every height and increment, rescaled priorities span <= 2P and sum to [0, n)", () => {
    fc.assert(
      fc.property(
        inputsArb(8, 1000n),
        fc.array(fc.tuple(fc.array(changeOpArb, { maxLength: 4 }), fc.integer({ min: 1, max: 30 })), { maxLength: 12 }),
        (inputs, heights) => {
          let set = createValidatorSet(inputs);
          verifyValidatorSet(set);
          for (const [ops, rounds] of heights) {
            set = nextHeightValidatorSet(set, resolveChanges(set, ops));
            verifyValidatorSet(set);
            // Provable bound on the returned priorities: the window plus one step, <= 2P + (max power - min power).
            const powers = set.validators.map((v) => v.votingPower);
            const bound = 2n * set.totalVotingPower + spread(powers);
            expect(spread(priorities(set)) <= bound).toBe(true);
            const later = incrementProposerPriority(set, rounds);
            let sum = 0n;
            for (const p of priorities(later)) sum += p;
            expect(sum >= 0n && sum < BigInt(later.validators.length)).toBe(true);
            expect(later.proposerIndex).toBe(proposerIndex(set, rounds));
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("determinism: input order does not matter and the same inputs give the same sequence", () => {
    fc.assert(
      fc.property(
        inputsArb(8, 1000n).chain((inputs) =>
          fc.tuple(fc.constant(inputs), fc.shuffledSubarray(inputs, { minLength: inputs.length })),
        ),
        fc.array(changeOpArb, { maxLength: 5 }),
        ([inputs, shuffled], ops) => {
          const a = createValidatorSet(inputs);
          const b = createValidatorSet(shuffled);
          expect(b).toEqual(a);
          const seqA = Array.from({ length: 30 }, (_, r) => proposerIndex(a, r));
          const seqB = Array.from({ length: 30 }, (_, r) => incrementProposerPriority(b, r + 1).proposerIndex);
          expect(seqB.slice(0, 29)).toEqual(seqA.slice(1));
          const changes = resolveChanges(a, ops);
          const nextA = nextHeightValidatorSet(a, changes);
          expect(nextHeightValidatorSet(b, [...changes].reverse())).toEqual(nextA);
          expect(nextHeightValidatorSet(a, changes)).toEqual(nextA);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("immutability: no function mutates its input set, inputs or changes", () => {
    fc.assert(
      fc.property(inputsArb(6, 100n), fc.array(changeOpArb, { maxLength: 4 }), (inputs, ops) => {
        const inputsCopy = snapshot(inputs);
        const set = createValidatorSet(inputs);
        expect(inputs).toEqual(inputsCopy);
        const setCopy = snapshot(set);
        const changes = resolveChanges(set, ops);
        const changesCopy = snapshot(changes);
        incrementProposerPriority(set, 3);
        proposerIndex(set, 5);
        indexOfAddress(set, set.validators[0]?.address ?? "0x");
        const next = nextHeightValidatorSet(set, changes);
        nextHeightValidatorSet(next);
        expect(set).toEqual(setCopy);
        expect(changes).toEqual(changesCopy);
        expect(Object.isFrozen(next) && Object.isFrozen(next.validators)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});
