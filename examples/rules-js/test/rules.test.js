// The Rust rules' unit tests (guest/src/rules.rs), run against the
// JavaScript source directly under Node's test runner: no component needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { decide as decideOrThrow, describe } from '../src/rules.js';

const LIMITS = { maxQuantity: 1_000_000, maxStockLevel: 1_000_000_000 };
const U32_MAX = 2 ** 32 - 1;

const add = (n) => ({ tag: 'add', val: n });
const remove = (n) => ({ tag: 'remove', val: n });
const get = { tag: 'get' };
const stock = (level) => ({ level });

// `decide` returns the decision and throws the rejection; as a result value
// (the shape the component model gives it) the two are easier to compare.
function decide(request, current, limits) {
  try {
    return { tag: 'ok', val: decideOrThrow(request, current, limits) };
  } catch (rejection) {
    assert.ok(!(rejection instanceof Error), `threw an Error, not a rejection: ${rejection}`);
    return { tag: 'err', val: rejection };
  }
}

function decideNow(operation, current) {
  return decide({ sku: 'sku-1', operation }, current, LIMITS);
}
const ok = (level, events = []) => ({ tag: 'ok', val: { level, events } });
const lowStock = (level, sku = 'sku-1') => [{ tag: 'low-stock', val: { sku, level } }];
const rejected = (tag, val) => ({ tag: 'err', val: { tag, val } });

test('describe names the rules', () => {
  assert.deepEqual(describe(), { name: 'beaker-default-rules-js', version: '1.0.0' });
});

test('add to an unknown product starts from zero', () => {
  assert.deepEqual(decideNow(add(5), undefined), ok(5));
});

test('add to a known product adds', () => {
  assert.deepEqual(decideNow(add(5), stock(7)), ok(12));
});

test('add never emits low stock even when the level stays low', () => {
  assert.deepEqual(decideNow(add(1), stock(2)), ok(3));
});

test('add refuses zero and oversized quantities', () => {
  assert.deepEqual(
    decideNow(add(0), undefined),
    rejected('invalid-request', 'quantity must be between 1 and 1000000, got 0'),
  );
  assert.deepEqual(
    decideNow(add(LIMITS.maxQuantity + 1), undefined),
    rejected('invalid-request', 'quantity must be between 1 and 1000000, got 1000001'),
  );
});

test('add refuses to pass the stock ceiling and never wraps', () => {
  assert.deepEqual(
    decideNow(add(1), stock(LIMITS.maxStockLevel)),
    rejected(
      'rule-violated',
      'cannot add 1 units of sku-1: the stock level would exceed the maximum of 1000000000 (it is 1000000000)',
    ),
  );
  assert.deepEqual(
    decide({ sku: 's', operation: add(2) }, stock(U32_MAX - 1), {
      maxQuantity: U32_MAX,
      maxStockLevel: U32_MAX,
    }),
    rejected(
      'rule-violated',
      'cannot add 2 units of s: the stock level would exceed the maximum of 4294967295 (it is 4294967294)',
    ),
  );
  assert.deepEqual(decideNow(add(1), stock(LIMITS.maxStockLevel - 1)), ok(LIMITS.maxStockLevel));
});

test('remove from an unknown product is not found', () => {
  assert.deepEqual(
    decideNow(remove(1), undefined),
    rejected('unknown-product', 'product sku-1 is not known: it has never been stocked'),
  );
});

test('remove below zero is refused', () => {
  assert.deepEqual(
    decideNow(remove(4), stock(3)),
    rejected('rule-violated', 'cannot remove 4 units of sku-1: only 3 in stock'),
  );
});

test('remove to exactly zero is allowed and low', () => {
  assert.deepEqual(decideNow(remove(3), stock(3)), ok(0, lowStock(0)));
});

test('low stock is emitted below ten only', () => {
  assert.deepEqual(decideNow(remove(1), stock(11)), ok(10));
  assert.deepEqual(decideNow(remove(1), stock(10)), ok(9, lowStock(9)));
});

test('remove refuses zero quantity, before looking at the stock', () => {
  assert.deepEqual(
    decideNow(remove(0), stock(5)),
    rejected('invalid-request', 'quantity must be between 1 and 1000000, got 0'),
  );
  assert.deepEqual(
    decideNow(remove(0), undefined),
    rejected('invalid-request', 'quantity must be between 1 and 1000000, got 0'),
  );
});

test('get reports the level and zero for unknown', () => {
  assert.deepEqual(decideNow(get, stock(42)), ok(42));
  assert.deepEqual(decideNow(get, undefined), ok(0));
});

test('an unknown product may arrive as null as well as undefined', () => {
  assert.deepEqual(decideNow(get, null), ok(0));
  assert.deepEqual(decideNow(add(5), null), ok(5));
  assert.deepEqual(
    decideNow(remove(1), null),
    rejected('unknown-product', 'product sku-1 is not known: it has never been stocked'),
  );
});

test('u32 values handed over as negative numbers are read as u32', () => {
  // componentize-qjs 0.4.5 passes u32 values of 2^31 and above this way.
  assert.deepEqual(
    decide({ sku: 's', operation: add(2) }, stock(-2), { maxQuantity: -1, maxStockLevel: -1 }),
    rejected(
      'rule-violated',
      'cannot add 2 units of s: the stock level would exceed the maximum of 4294967295 (it is 4294967294)',
    ),
  );
});
