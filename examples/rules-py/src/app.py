"""Beaker's default inventory rules, in Python.

The same rules, with the same messages, as the Rust component in
`guest/src/rules.rs`, implementing the `beaker:inventory/rules` world of
`wit/inventory.wit`. Built into a component by componentize-py (see
`build.sh`), which generates the `wit_world` bindings imported here;
`build.sh test` writes them to `bindings/` to run this under CPython.

From Python, `option<stock>` is `None` or a `Stock`; a `result` is returned
as the `Decision` for ok, and raised as `Err(rejection)` for err.

Python integers do not overflow, so `level + quantity` never wraps; what
matters is never to return a level above `limits.max_stock_level`.
"""

from componentize_py_types import Err

import wit_world
from wit_world.imports.types import (
    Decision,
    Event,
    Event_LowStock,
    Limits,
    LowStock,
    Operation_Add,
    Operation_Get,
    Operation_Remove,
    Rejection_InvalidRequest,
    Rejection_RuleViolated,
    Rejection_UnknownProduct,
    Request,
    RulesInfo,
    Stock,
)

#: The name these rules report through `describe`.
NAME = "beaker-default-rules-py"
#: The rules' own version.
VERSION = "1.0.0"
#: A remove that leaves fewer units than this emits a low-stock event.
LOW_STOCK_THRESHOLD = 10


class WitWorld(wit_world.WitWorld):
    def describe(self) -> RulesInfo:
        return RulesInfo(name=NAME, version=VERSION)

    def decide(self, request: Request, current: Stock | None, limits: Limits) -> Decision:
        sku = request.sku
        operation = request.operation

        if isinstance(operation, Operation_Get):
            return Decision(level=0 if current is None else current.level, events=[])

        if isinstance(operation, Operation_Add):
            quantity = operation.value
            check_quantity(quantity, limits)
            level = 0 if current is None else current.level
            new_level = level + quantity
            if new_level > limits.max_stock_level:
                raise Err(
                    Rejection_RuleViolated(
                        f"cannot add {quantity} units of {sku}: the stock level would exceed "
                        f"the maximum of {limits.max_stock_level} (it is {level})"
                    )
                )
            return Decision(level=new_level, events=[])

        if isinstance(operation, Operation_Remove):
            quantity = operation.value
            check_quantity(quantity, limits)
            if current is None:
                raise Err(
                    Rejection_UnknownProduct(f"product {sku} is not known: it has never been stocked")
                )
            level = current.level
            if quantity > level:
                raise Err(
                    Rejection_RuleViolated(
                        f"cannot remove {quantity} units of {sku}: only {level} in stock"
                    )
                )
            new_level = level - quantity
            events: list[Event] = []
            if new_level < LOW_STOCK_THRESHOLD:
                events.append(Event_LowStock(LowStock(sku=sku, level=new_level)))
            return Decision(level=new_level, events=events)

        # The WIT has no other operation; answer rather than trap if one appears.
        raise Err(Rejection_InvalidRequest(f"unsupported operation {operation!r}"))


def check_quantity(quantity: int, limits: Limits) -> None:
    if quantity == 0 or quantity > limits.max_quantity:
        raise Err(
            Rejection_InvalidRequest(
                f"quantity must be between 1 and {limits.max_quantity}, got {quantity}"
            )
        )
