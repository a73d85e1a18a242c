// Beaker's default inventory rules, in JavaScript.
//
// The same rules, with the same messages, as the Rust component in
// `guest/src/rules.rs`, implementing the `beaker:inventory/rules` world of
// `wit/inventory.wit`. Built into a component by componentize-js (or,
// optionally, componentize-qjs); see `build.sh`.
//
// How the WIT types look from here, in both tools' bindings:
// - `request` is `{ sku, operation }`; `operation` is `{ tag: 'add' | 'remove', val }`
//   or `{ tag: 'get' }`;
// - `option<stock>` is `{ level }` for some, and `undefined` (componentize-js)
//   or `null` (componentize-qjs) for none: test with `== null`;
// - `limits` is `{ maxQuantity, maxStockLevel }`;
// - the `result` of `decide` is returned as the `decision` for ok and thrown
//   as the `rejection` for err; a rejection is a plain object
//   `{ tag: 'invalid-request' | 'unknown-product' | 'rule-violated', val: message }`.
//   (Throw no `Error`: componentize-js traps on one instead of returning it.)
//
// Numbers are JavaScript doubles, so `level + quantity` never wraps: every
// u32 sum is exact. What matters is never to return a level above
// `limits.maxStockLevel`. Every u32 is read through `>>> 0`, because
// componentize-qjs 0.4.5 hands u32 values of 2^31 and above over as
// negative numbers (the host keeps every level below 2^31, so this is
// belt and braces there).

/** The name these rules report through `describe`. */
export const NAME = 'beaker-default-rules-js';

/** The rules' own version. */
export const VERSION = '1.0.0';

/** A remove that leaves fewer units than this emits a low-stock event. */
export const LOW_STOCK_THRESHOLD = 10;

/** Names these rules. */
export function describe() {
  return { name: NAME, version: VERSION };
}

/**
 * Decides one request against the product's current stock (`current` is
 * undefined or null when the product has never been stocked). Returns the
 * decision; throws the rejection.
 */
export function decide(request, current, limits) {
  const { sku, operation } = request;
  const maxQuantity = limits.maxQuantity >>> 0;
  const maxStockLevel = limits.maxStockLevel >>> 0;
  const known = current != null;
  switch (operation.tag) {
    case 'get':
      return decision(known ? current.level >>> 0 : 0);

    case 'add': {
      const quantity = operation.val >>> 0;
      checkQuantity(quantity, maxQuantity);
      const level = known ? current.level >>> 0 : 0;
      const newLevel = level + quantity;
      if (newLevel > maxStockLevel) {
        throw rejection(
          'rule-violated',
          `cannot add ${quantity} units of ${sku}: the stock level would exceed the maximum of ${maxStockLevel} (it is ${level})`,
        );
      }
      return decision(newLevel);
    }

    case 'remove': {
      const quantity = operation.val >>> 0;
      checkQuantity(quantity, maxQuantity);
      if (!known) {
        throw rejection('unknown-product', `product ${sku} is not known: it has never been stocked`);
      }
      const level = current.level >>> 0;
      if (quantity > level) {
        throw rejection('rule-violated', `cannot remove ${quantity} units of ${sku}: only ${level} in stock`);
      }
      const newLevel = level - quantity;
      const events =
        newLevel < LOW_STOCK_THRESHOLD ? [{ tag: 'low-stock', val: { sku, level: newLevel } }] : [];
      return decision(newLevel, events);
    }

    default:
      // The WIT has no other operation; answer rather than trap if one appears.
      throw rejection('invalid-request', `unsupported operation ${String(operation.tag)}`);
  }
}

function checkQuantity(quantity, maxQuantity) {
  if (quantity === 0 || quantity > maxQuantity) {
    throw rejection('invalid-request', `quantity must be between 1 and ${maxQuantity}, got ${quantity}`);
  }
}

function decision(level, events = []) {
  return { level, events };
}

function rejection(tag, message) {
  return { tag, val: message };
}
