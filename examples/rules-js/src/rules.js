// Beaker's default inventory rules, in JavaScript.
//
// The same rules, with the same messages, as the Rust component in
// `guest/src/rules.rs`, implementing the `beaker:inventory/rules` world of
// `wit/inventory.wit`. Built into a component by componentize-js; see
// `build.sh`.
//
// How the WIT types look from here (componentize-js bindings):
// - `request` is `{ sku, operation }`, `operation` is `{ tag: 'add' | 'remove', val }`
//   or `{ tag: 'get' }`;
// - `option<stock>` is `undefined` for none, `{ level }` for some;
// - `limits` is `{ maxQuantity, maxStockLevel }`;
// - a `result` is returned as `{ tag: 'ok', val }` or `{ tag: 'err', val }`,
//   and a `rejection` is `{ tag: 'invalid-request' | 'unknown-product' |
//   'rule-violated', val: message }`.
//
// Numbers are JavaScript doubles, so `level + quantity` never wraps: every
// u32 sum is exact. What matters is never to return a level above
// `limits.maxStockLevel` (the bindings would truncate anything past u32).

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
 * Decides one request against the product's current stock
 * (`current` is undefined when the product has never been stocked).
 */
export function decide(request, current, limits) {
  const { sku, operation } = request;
  switch (operation.tag) {
    case 'get':
      return ok(current === undefined ? 0 : current.level);

    case 'add': {
      const quantity = operation.val;
      const invalid = checkQuantity(quantity, limits);
      if (invalid) return invalid;
      const level = current === undefined ? 0 : current.level;
      const newLevel = level + quantity;
      if (newLevel > limits.maxStockLevel) {
        return err(
          'rule-violated',
          `cannot add ${quantity} units of ${sku}: the stock level would exceed the maximum of ${limits.maxStockLevel} (it is ${level})`,
        );
      }
      return ok(newLevel);
    }

    case 'remove': {
      const quantity = operation.val;
      const invalid = checkQuantity(quantity, limits);
      if (invalid) return invalid;
      if (current === undefined) {
        return err('unknown-product', `product ${sku} is not known: it has never been stocked`);
      }
      const level = current.level;
      if (quantity > level) {
        return err('rule-violated', `cannot remove ${quantity} units of ${sku}: only ${level} in stock`);
      }
      const newLevel = level - quantity;
      const events =
        newLevel < LOW_STOCK_THRESHOLD ? [{ tag: 'low-stock', val: { sku, level: newLevel } }] : [];
      return ok(newLevel, events);
    }

    default:
      // The WIT has no other operation; answer rather than trap if one appears.
      return err('invalid-request', `unsupported operation ${String(operation.tag)}`);
  }
}

function checkQuantity(quantity, limits) {
  if (quantity === 0 || quantity > limits.maxQuantity) {
    return err(
      'invalid-request',
      `quantity must be between 1 and ${limits.maxQuantity}, got ${quantity}`,
    );
  }
  return null;
}

function ok(level, events = []) {
  return { tag: 'ok', val: { level, events } };
}

function err(tag, message) {
  return { tag: 'err', val: { tag, val: message } };
}
