// Parameter schemas (zod) for the JSON-RPC methods. Every schema turns wire JSON into the value a handler wants
// (lowercase addresses, bigints, block references) and says in its message what was expected, so a caller sees
// "invalid argument 1 (block): expected a block tag ...".
import { z } from "zod";
import type { Hex } from "../../consensus/bytes.ts";
import type { SimulatedBlockRequest, SimulatedCallRequest } from "../execution/simulate.ts";
import type { TraceOptions } from "../execution/tracers.ts";
import type { RpcAccountOverride, RpcBlockOverrides, RpcCallRequest, RpcStateOverrides } from "./backend.ts";

/** Limits on parameter sizes; the HTTP body limit bounds everything else. */
export const MAX_ADDRESSES_PER_FILTER = 1_000;
export const MAX_TOPIC_ALTERNATIVES = 1_000;
export const MAX_TOPIC_POSITIONS = 4;
export const MAX_REWARD_PERCENTILES = 100;
export const MAX_DATA_BYTES = 1024 * 1024;
/** Same cap as the block wire format's MAX_TRANSACTION_BYTES. */
export const MAX_RAW_TX_BYTES = 128 * 1024;

const ADDRESS_RE = /^0x[0-9a-fA-F]{40}$/;
const HASH_RE = /^0x[0-9a-fA-F]{64}$/;
const QUANTITY_RE = /^0x[0-9a-fA-F]{1,64}$/;
const DATA_RE = /^0x([0-9a-fA-F]{2})*$/;
const SLOT_RE = /^0x[0-9a-fA-F]{0,64}$/;

export type BlockTag = "latest" | "safe" | "finalized" | "earliest" | "pending";
const BLOCK_TAGS: readonly string[] = ["latest", "safe", "finalized", "earliest", "pending"];

export type BlockRef =
  | { readonly kind: "tag"; readonly tag: BlockTag }
  | { readonly kind: "number"; readonly height: number }
  | { readonly kind: "hash"; readonly hash: Hex; readonly requireCanonical: boolean };

export const LATEST: BlockRef = { kind: "tag", tag: "latest" };

/** A short, non-recursive description of a JSON value for error messages (input may be huge or deeply nested). */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "string")
    return value.length > 80 ? `"${value.slice(0, 77)}..." (${value.length} chars)` : `"${value}"`;
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

function custom<T>(expected: string, parse: (value: unknown) => T | undefined) {
  return z.unknown().transform((value, ctx): T => {
    const out = parse(value);
    if (out === undefined) {
      ctx.issues.push({ code: "custom", message: `expected ${expected}, got ${describeValue(value)}`, input: value });
      return z.NEVER;
    }
    return out;
  });
}

function matching(re: RegExp) {
  return (value: unknown): string | undefined => (typeof value === "string" && re.test(value) ? value : undefined);
}

export const address = custom("a 20-byte hex address (0x + 40 hex digits)", (v) => {
  const s = matching(ADDRESS_RE)(v);
  return s === undefined ? undefined : (s.toLowerCase() as Hex);
});

export const hash32 = custom("a 32-byte hex hash (0x + 64 hex digits)", (v) => {
  const s = matching(HASH_RE)(v);
  return s === undefined ? undefined : (s.toLowerCase() as Hex);
});

export const quantity = custom("a hex quantity such as 0x1a (at most 256 bits)", (v) => {
  const s = matching(QUANTITY_RE)(v);
  return s === undefined ? undefined : BigInt(s);
});

export function hexData(maxBytes: number) {
  return custom(`even-length hex data (0x-prefixed, at most ${maxBytes} bytes)`, (v) => {
    const s = matching(DATA_RE)(v);
    return s === undefined || s.length > 2 + 2 * maxBytes ? undefined : (s.toLowerCase() as Hex);
  });
}

/** Storage slot: up to 32 bytes of hex, any length (geth accepts "0x0"); normalised to 32 bytes. */
/** eth_getProof storage keys: at most 1024 slots. */
export const storageKeys = custom("an array of at most 1024 storage slots (hex, at most 32 bytes each)", (v) => {
  if (!Array.isArray(v) || v.length > 1024) return undefined;
  const out: Hex[] = [];
  for (const k of v) {
    if (typeof k !== "string" || !SLOT_RE.test(k) || k.length < 3) return undefined;
    out.push(`0x${k.slice(2).toLowerCase().padStart(64, "0")}` as Hex);
  }
  return out;
});

export const storageSlot = custom("a storage slot: hex of at most 32 bytes", (v) => {
  const s = matching(SLOT_RE)(v);
  return s === undefined ? undefined : (`0x${s.slice(2).toLowerCase().padStart(64, "0")}` as Hex);
});

function toHeight(n: bigint): number {
  // Anything beyond 2^53 is far beyond the head; clamping keeps "not found" semantics without a second error path.
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

function parseTagOrNumber(v: unknown): BlockRef | undefined {
  if (typeof v !== "string") return undefined;
  if (BLOCK_TAGS.includes(v)) return { kind: "tag", tag: v as BlockTag };
  if (QUANTITY_RE.test(v)) return { kind: "number", height: toHeight(BigInt(v)) };
  return undefined;
}

/** A block tag or number (filters: fromBlock / toBlock). */
export const blockTagOrNumber = custom(
  'a block tag ("latest", "safe", "finalized", "earliest", "pending") or a hex block number',
  parseTagOrNumber,
);

/** A block tag, number, or EIP-1898 object {blockNumber} / {blockHash, requireCanonical?} (state reads, eth_call). */
export const blockRef = custom(
  'a block tag ("latest", "safe", "finalized", "earliest", "pending"), a hex block number, ' +
    "or an EIP-1898 object {blockNumber} / {blockHash, requireCanonical}",
  (v): BlockRef | undefined => {
    const simple = parseTagOrNumber(v);
    if (simple !== undefined) return simple;
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
    const o = v as Record<string, unknown>;
    const hasNumber = o.blockNumber !== undefined;
    const hasHash = o.blockHash !== undefined;
    if (hasNumber === hasHash) return undefined;
    if (hasNumber) return parseTagOrNumber(o.blockNumber);
    if (typeof o.blockHash !== "string" || !HASH_RE.test(o.blockHash)) return undefined;
    if (o.requireCanonical !== undefined && typeof o.requireCanonical !== "boolean") return undefined;
    return { kind: "hash", hash: o.blockHash.toLowerCase() as Hex, requireCanonical: o.requireCanonical === true };
  },
);

export const fullTransactions = custom("a boolean (true for full transaction objects)", (v) =>
  typeof v === "boolean" ? v : undefined,
);

/** eth_feeHistory block count: hex quantity, or decimal as geth accepts. */
export const blockCount = custom("a block count (hex quantity or decimal integer)", (v) => {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "string" && /^[0-9]{1,15}$/.test(v)) return Number(v);
  if (typeof v === "string" && QUANTITY_RE.test(v)) return toHeight(BigInt(v));
  return undefined;
});

export const rewardPercentiles = custom(
  `a list of at most ${MAX_REWARD_PERCENTILES} increasing percentiles between 0 and 100`,
  (v): number[] | undefined => {
    if (!Array.isArray(v) || v.length > MAX_REWARD_PERCENTILES) return undefined;
    let previous = 0;
    for (const p of v) {
      if (typeof p !== "number" || !Number.isFinite(p) || p < previous || p > 100) return undefined;
      previous = p;
    }
    return v as number[];
  },
);

export const rawTransaction = hexData(MAX_RAW_TX_BYTES);

const optionalQuantity = quantity.optional();

/** Entries of a call's access list: as many as a block of 30M gas could pay for (2,400 gas per address). */
export const MAX_ACCESS_LIST_ENTRIES = 12_500;

/** EIP-2930 access list: [{address, storageKeys}], slots of 32 bytes (shorter hex is padded). */
const accessList = z
  .array(z.object({ address, storageKeys: storageKeys.optional() }), {
    error: "expected an access list [{address, storageKeys}]",
  })
  .max(MAX_ACCESS_LIST_ENTRIES, { error: `at most ${MAX_ACCESS_LIST_ENTRIES} access list entries` });

/** Transaction-call object of eth_call / eth_estimateGas. Unknown fields (nonce, type...) are ignored. */
export const callRequest = z
  .object(
    {
      from: address.optional(),
      to: z.union([z.null(), address]).optional(),
      gas: optionalQuantity,
      gasPrice: optionalQuantity,
      maxFeePerGas: optionalQuantity,
      maxPriorityFeePerGas: optionalQuantity,
      value: optionalQuantity,
      data: hexData(MAX_DATA_BYTES).optional(),
      input: hexData(MAX_DATA_BYTES).optional(),
      accessList: accessList.optional(),
    },
    { error: "expected a transaction call object {from?, to?, gas?, gasPrice?, value?, data?, accessList?}" },
  )
  .transform((o, ctx): RpcCallRequest => {
    if (o.data !== undefined && o.input !== undefined && o.data !== o.input) {
      ctx.issues.push({ code: "custom", message: 'both "data" and "input" are set and not equal', input: o });
      return z.NEVER;
    }
    if (o.gasPrice !== undefined && (o.maxFeePerGas !== undefined || o.maxPriorityFeePerGas !== undefined)) {
      ctx.issues.push({
        code: "custom",
        message: "both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified",
        input: o,
      });
      return z.NEVER;
    }
    const out: RpcCallRequest = {};
    if (o.from !== undefined) out.from = o.from;
    if (o.to !== undefined) out.to = o.to;
    const data = o.input ?? o.data;
    if (data !== undefined) out.data = data;
    if (o.value !== undefined) out.value = o.value;
    if (o.gas !== undefined) out.gas = o.gas;
    if (o.gasPrice !== undefined) out.gasPrice = o.gasPrice;
    if (o.maxFeePerGas !== undefined) out.maxFeePerGas = o.maxFeePerGas;
    if (o.maxPriorityFeePerGas !== undefined) out.maxPriorityFeePerGas = o.maxPriorityFeePerGas;
    if (o.accessList !== undefined) {
      out.accessList = o.accessList.map((e) => ({ address: e.address, storageKeys: e.storageKeys ?? [] }));
    }
    return out;
  });

/** Bounds on one call's state overrides: accounts, and storage slots over all of them. */
export const MAX_OVERRIDE_ACCOUNTS = 256;
export const MAX_OVERRIDE_SLOTS = 4_096;
/** A nonce fits in 64 bits. */
const MAX_NONCE = 2n ** 64n - 1n;

const slotValues = z
  .record(z.string(), z.unknown(), { error: "expected an object {slot: value}" })
  .transform((o, ctx): [Hex, Hex][] => {
    const out: [Hex, Hex][] = [];
    for (const [key, value] of Object.entries(o)) {
      const slot = storageSlot.safeParse(key);
      const word = storageSlot.safeParse(value);
      if (!slot.success || !word.success) {
        ctx.issues.push({
          code: "custom",
          message: `storage override ${describeValue(key)}: ${describeValue(value)}: expected 32-byte hex slots and values`,
          input: o,
        });
        return z.NEVER;
      }
      out.push([slot.data, word.data]);
    }
    return out;
  });

const accountOverride = z
  .strictObject(
    {
      balance: quantity.optional(),
      nonce: quantity.optional(),
      code: hexData(MAX_DATA_BYTES).optional(),
      state: slotValues.optional(),
      stateDiff: slotValues.optional(),
      movePrecompileToAddress: z.unknown().optional(),
    },
    { error: "expected an account override {balance?, nonce?, code?, state?, stateDiff?}" },
  )
  .transform((o, ctx): RpcAccountOverride => {
    if (o.movePrecompileToAddress !== undefined) {
      ctx.issues.push({ code: "custom", message: "movePrecompileToAddress is not supported here", input: o });
      return z.NEVER;
    }
    if (o.state !== undefined && o.stateDiff !== undefined) {
      ctx.issues.push({ code: "custom", message: "an account override has both state and stateDiff", input: o });
      return z.NEVER;
    }
    if (o.nonce !== undefined && o.nonce > MAX_NONCE) {
      ctx.issues.push({ code: "custom", message: "an override's nonce is above 2^64 - 1", input: o });
      return z.NEVER;
    }
    const out: RpcAccountOverride = {};
    if (o.balance !== undefined) out.balance = o.balance;
    if (o.nonce !== undefined) out.nonce = o.nonce;
    if (o.code !== undefined) out.code = o.code;
    if (o.state !== undefined) out.state = o.state;
    if (o.stateDiff !== undefined) out.stateDiff = o.stateDiff;
    return out;
  });

/**
 * eth_call / eth_estimateGas / debug_traceCall state overrides, as geth takes them: {address: {balance?, nonce?,
 * code?, state? (the whole storage) | stateDiff? (some slots)}}. null or {}: none.
 */
export const stateOverrides = z
  .union([z.null(), z.record(z.string(), z.unknown())], { error: "expected state overrides {address: {...}} or null" })
  .transform((o, ctx): RpcStateOverrides | undefined => {
    if (o === null) return undefined;
    const entries = Object.entries(o);
    if (entries.length > MAX_OVERRIDE_ACCOUNTS) {
      ctx.issues.push({ code: "custom", message: `more than ${MAX_OVERRIDE_ACCOUNTS} accounts overridden`, input: o });
      return z.NEVER;
    }
    const out: (RpcAccountOverride & { address: Hex })[] = [];
    const seen = new Set<Hex>();
    let slots = 0;
    for (const [key, value] of entries) {
      const who = address.safeParse(key);
      if (!who.success || seen.has(who.data)) {
        ctx.issues.push({
          code: "custom",
          message: `state override key ${describeValue(key)}: expected each 20-byte hex address once`,
          input: o,
        });
        return z.NEVER;
      }
      seen.add(who.data);
      const parsed = accountOverride.safeParse(value);
      if (!parsed.success) {
        ctx.issues.push({
          code: "custom",
          message: `state override of ${who.data}: ${parsed.error.issues[0]?.message ?? "malformed"}`,
          input: o,
        });
        return z.NEVER;
      }
      slots += (parsed.data.state?.length ?? 0) + (parsed.data.stateDiff?.length ?? 0);
      out.push({ address: who.data, ...parsed.data });
    }
    if (slots > MAX_OVERRIDE_SLOTS) {
      ctx.issues.push({
        code: "custom",
        message: `more than ${MAX_OVERRIDE_SLOTS} storage slots overridden`,
        input: o,
      });
      return z.NEVER;
    }
    return out.length === 0 ? undefined : out;
  });

/** eth_call / debug_traceCall block overrides (geth's names); blobBaseFee has no meaning here (no blobs on L2). */
export const blockOverrides = z
  .union(
    [
      z.null(),
      z.strictObject({
        number: quantity.optional(),
        time: quantity.optional(),
        gasLimit: quantity.optional(),
        feeRecipient: address.optional(),
        prevRandao: hash32.optional(),
        baseFeePerGas: quantity.optional(),
      }),
    ],
    {
      error: "expected block overrides {number?, time?, gasLimit?, feeRecipient?, prevRandao?, baseFeePerGas?} or null",
    },
  )
  .transform((o, ctx): RpcBlockOverrides | undefined => {
    if (o === null) return undefined;
    const safe = (v: bigint | undefined) => v === undefined || v <= BigInt(Number.MAX_SAFE_INTEGER);
    if (!safe(o.number) || !safe(o.time === undefined ? undefined : o.time * 1000n)) {
      ctx.issues.push({ code: "custom", message: "block override number or time is out of range", input: o });
      return z.NEVER;
    }
    if (o.gasLimit !== undefined && o.gasLimit === 0n) {
      ctx.issues.push({ code: "custom", message: "block override gasLimit is 0", input: o });
      return z.NEVER;
    }
    const out: RpcBlockOverrides = {};
    if (o.number !== undefined) out.number = Number(o.number);
    if (o.time !== undefined) out.timestampMs = Number(o.time) * 1000;
    if (o.gasLimit !== undefined) out.gasLimit = o.gasLimit;
    if (o.feeRecipient !== undefined) out.feeRecipient = o.feeRecipient;
    if (o.prevRandao !== undefined) out.prevRandao = o.prevRandao;
    if (o.baseFeePerGas !== undefined) out.baseFeePerGas = o.baseFeePerGas;
    return Object.keys(out).length === 0 ? undefined : out;
  });

/** What eth_simulateV1 asks: its blocks (each call a transaction object, `nonce` taken too) and its flags. */
export interface SimulatePayload {
  readonly blocks: readonly SimulatedBlockRequest[];
  readonly validation: boolean;
  readonly traceTransfers: boolean;
  readonly returnFullTransactions: boolean;
}

const simulatedCall = z.unknown().transform((o, ctx): SimulatedCallRequest => {
  const call = callRequest.safeParse(o);
  const nonce = z.object({ nonce: optionalQuantity }).safeParse(o);
  if (!call.success || !nonce.success) {
    const issue = call.success ? nonce.error?.issues[0] : call.error.issues[0];
    ctx.issues.push({ code: "custom", message: `a call: ${issue?.message ?? "malformed"}`, input: o });
    return z.NEVER;
  }
  const n = nonce.data.nonce;
  if (n !== undefined && n > MAX_NONCE) {
    ctx.issues.push({ code: "custom", message: "a call's nonce is above 2^64 - 1", input: o });
    return z.NEVER;
  }
  return n === undefined ? call.data : { ...call.data, nonce: n };
});

/** eth_simulateV1's first parameter: {blockStateCalls: [{blockOverrides?, stateOverrides?, calls?}], flags}. */
export const simulatePayload = z
  .object(
    {
      blockStateCalls: z.array(
        z.object({
          blockOverrides: blockOverrides.optional(),
          stateOverrides: stateOverrides.optional(),
          calls: z.array(simulatedCall).optional(),
        }),
      ),
      validation: z.boolean().optional(),
      traceTransfers: z.boolean().optional(),
      returnFullTransactions: z.boolean().optional(),
    },
    {
      error:
        "expected {blockStateCalls: [{blockOverrides?, stateOverrides?, calls?}], validation?, traceTransfers?, returnFullTransactions?}",
    },
  )
  .transform(
    (o): SimulatePayload => ({
      blocks: o.blockStateCalls.map((b) => ({
        ...(b.blockOverrides?.number === undefined ? {} : { number: b.blockOverrides.number }),
        ...(b.blockOverrides?.timestampMs === undefined ? {} : { timestampMs: b.blockOverrides.timestampMs }),
        ...(b.blockOverrides?.gasLimit === undefined ? {} : { gasLimit: b.blockOverrides.gasLimit }),
        ...(b.blockOverrides?.feeRecipient === undefined ? {} : { feeRecipient: b.blockOverrides.feeRecipient }),
        ...(b.blockOverrides?.prevRandao === undefined ? {} : { prevRandao: b.blockOverrides.prevRandao }),
        ...(b.blockOverrides?.baseFeePerGas === undefined ? {} : { baseFeePerGas: b.blockOverrides.baseFeePerGas }),
        ...(b.stateOverrides === undefined ? {} : { stateOverrides: b.stateOverrides }),
        calls: b.calls ?? [],
      })),
      validation: o.validation === true,
      traceTransfers: o.traceTransfers === true,
      returnFullTransactions: o.returnFullTransactions === true,
    }),
  );

export interface LogFilter {
  readonly fromBlock: BlockRef;
  readonly toBlock: BlockRef;
  readonly blockHash: Hex | null;
  /** Empty: any address. */
  readonly addresses: readonly Hex[];
  /** Per position: null = wildcard, else the allowed topics (OR). */
  readonly topics: readonly (readonly Hex[] | null)[];
}

const topicAlternatives = z.union([
  z.null(),
  hash32,
  z
    .array(z.union([z.null(), hash32]))
    .max(MAX_TOPIC_ALTERNATIVES, { error: `at most ${MAX_TOPIC_ALTERNATIVES} alternatives per topic position` }),
]);

export const logFilter = z
  .object(
    {
      fromBlock: blockTagOrNumber.optional(),
      toBlock: blockTagOrNumber.optional(),
      blockHash: hash32.optional(),
      address: z
        .union([
          address,
          z
            .array(address)
            .max(MAX_ADDRESSES_PER_FILTER, { error: `at most ${MAX_ADDRESSES_PER_FILTER} addresses per filter` }),
          z.null(),
        ])
        .optional(),
      topics: z
        .union([
          z.null(),
          z
            .array(topicAlternatives)
            .max(MAX_TOPIC_POSITIONS, { error: `at most ${MAX_TOPIC_POSITIONS} topic positions` }),
        ])
        .optional(),
    },
    { error: "expected a filter object {fromBlock?, toBlock?, blockHash?, address?, topics?}" },
  )
  .transform((o, ctx): LogFilter => {
    if (o.blockHash !== undefined && (o.fromBlock !== undefined || o.toBlock !== undefined)) {
      ctx.issues.push({ code: "custom", message: "cannot specify both blockHash and fromBlock/toBlock", input: o });
      return z.NEVER;
    }
    const addresses =
      o.address === undefined || o.address === null ? [] : Array.isArray(o.address) ? o.address : [o.address];
    const topics = (o.topics ?? []).map((t): readonly Hex[] | null => {
      if (t === null) return null;
      if (typeof t === "string") return [t];
      // A null inside an OR-list, or an empty list, matches anything at that position (geth's behaviour).
      if (t.length === 0 || t.includes(null)) return null;
      return t.filter((x): x is Hex => x !== null);
    });
    return {
      fromBlock: o.fromBlock ?? LATEST,
      toBlock: o.toBlock ?? LATEST,
      blockHash: o.blockHash ?? null,
      addresses,
      topics,
    };
  });

/** debug_trace* options (geth's TraceConfig): the opcode logger's switches, or the callTracer. */
const traceConfigShape = {
  tracer: z
    .union([z.literal(""), z.literal("callTracer"), z.literal("prestateTracer")], {
      error: 'tracer: "callTracer", "prestateTracer", or none for the opcode logger (the others are not served here)',
    })
    .optional(),
  tracerConfig: z
    .looseObject({
      onlyTopCall: z.boolean().optional(),
      withLog: z.boolean().optional(),
      diffMode: z.boolean().optional(),
      disableCode: z.boolean().optional(),
      disableStorage: z.boolean().optional(),
    })
    .optional(),
  disableStack: z.boolean().optional(),
  disableStorage: z.boolean().optional(),
  enableMemory: z.boolean().optional(),
  enableReturnData: z.boolean().optional(),
  limit: z.number().int().min(0).optional(),
  // geth's time limit ("5s"): accepted and not needed here, traces are bounded by their size.
  timeout: z.string().max(32).optional(),
};

function traceOptions(o: z.infer<z.ZodObject<typeof traceConfigShape>>): TraceOptions {
  const prestate = o.tracer === "prestateTracer";
  return {
    tracer: o.tracer === "" ? undefined : o.tracer,
    onlyTopCall: o.tracerConfig?.onlyTopCall,
    withLog: o.tracerConfig?.withLog,
    diffMode: prestate ? o.tracerConfig?.diffMode : undefined,
    disableCode: prestate ? o.tracerConfig?.disableCode : undefined,
    disableStack: o.disableStack,
    // The prestateTracer takes it in tracerConfig, the opcode logger at the top.
    disableStorage: prestate ? o.tracerConfig?.disableStorage : o.disableStorage,
    enableMemory: o.enableMemory,
    enableReturnData: o.enableReturnData,
    limit: o.limit,
  };
}

export const traceConfig = z
  .looseObject(traceConfigShape, {
    error: "expected a trace config object {tracer?, tracerConfig?, disableStack?, ...}",
  })
  .transform(traceOptions);

/** debug_traceCall's config: a trace config plus the call's state and block overrides, as in geth. */
export const traceCallConfig = z
  .looseObject(
    { ...traceConfigShape, stateOverrides: stateOverrides.optional(), blockOverrides: blockOverrides.optional() },
    { error: "expected a trace config object {tracer?, tracerConfig?, stateOverrides?, blockOverrides?, ...}" },
  )
  .transform((o) => ({
    options: traceOptions(o),
    stateOverrides: o.stateOverrides ?? undefined,
    blockOverrides: o.blockOverrides ?? undefined,
  }));
