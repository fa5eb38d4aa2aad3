import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Heap } from "../../src/mempool/heap.ts";

describe("Heap", () => {
  it("drains in comparator order whatever the mix of reset, push, pop and topChanged", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -50, max: 50 })),
        fc.array(
          fc.oneof(fc.integer({ min: -50, max: 50 }), fc.constant("pop" as const), fc.constant("bump" as const)),
        ),
        (initial, ops) => {
          const heap = new Heap<{ v: number }>((a, b) => a.v < b.v);
          heap.reset(initial.map((v) => ({ v })));
          const model = [...initial];
          for (const op of ops) {
            if (op === "pop") {
              model.sort((a, b) => a - b);
              expect(heap.pop()?.v).toBe(model.shift());
            } else if (op === "bump") {
              const top = heap.peek();
              if (top === undefined) continue;
              model.sort((a, b) => a - b);
              model[0] = (model[0] as number) + 7;
              top.v += 7;
              heap.topChanged();
            } else {
              heap.push({ v: op });
              model.push(op);
            }
            expect(heap.length).toBe(model.length);
          }
          const drained: number[] = [];
          for (let top = heap.pop(); top !== undefined; top = heap.pop()) drained.push(top.v);
          expect(drained).toEqual(model.sort((a, b) => a - b));
        },
      ),
      { numRuns: 300 },
    );
  });
});
