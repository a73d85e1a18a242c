"""The Rust rules' unit tests (guest/src/rules.rs), run against the Python
source under CPython: no component needed. Needs the generated bindings on
the path; `./build.sh test` arranges that."""

import unittest

from componentize_py_types import Err
from wit_world.imports.types import (
    Decision,
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

from app import WitWorld

LIMITS = Limits(max_quantity=1_000_000, max_stock_level=1_000_000_000)
U32_MAX = 2**32 - 1
RULES = WitWorld()


def decide(operation, current, sku="sku-1", limits=LIMITS):
    """The decision, or the rejection that was raised."""
    try:
        return RULES.decide(Request(sku=sku, operation=operation), current, limits)
    except Err as e:
        return e.value


def ok(level, low=False, sku="sku-1"):
    events = [Event_LowStock(LowStock(sku=sku, level=level))] if low else []
    return Decision(level=level, events=events)


class DefaultRules(unittest.TestCase):
    def test_describe_names_the_rules(self):
        self.assertEqual(RULES.describe(), RulesInfo(name="beaker-default-rules-py", version="1.0.0"))

    def test_add_to_an_unknown_product_starts_from_zero(self):
        self.assertEqual(decide(Operation_Add(5), None), ok(5))

    def test_add_to_a_known_product_adds(self):
        self.assertEqual(decide(Operation_Add(5), Stock(7)), ok(12))

    def test_add_never_emits_low_stock_even_when_the_level_stays_low(self):
        self.assertEqual(decide(Operation_Add(1), Stock(2)), ok(3))

    def test_add_refuses_zero_and_oversized_quantities(self):
        self.assertEqual(
            decide(Operation_Add(0), None),
            Rejection_InvalidRequest("quantity must be between 1 and 1000000, got 0"),
        )
        self.assertEqual(
            decide(Operation_Add(LIMITS.max_quantity + 1), None),
            Rejection_InvalidRequest("quantity must be between 1 and 1000000, got 1000001"),
        )

    def test_add_refuses_to_pass_the_stock_ceiling_and_never_wraps(self):
        self.assertEqual(
            decide(Operation_Add(1), Stock(LIMITS.max_stock_level)),
            Rejection_RuleViolated(
                "cannot add 1 units of sku-1: the stock level would exceed the maximum of "
                "1000000000 (it is 1000000000)"
            ),
        )
        self.assertEqual(
            decide(Operation_Add(2), Stock(U32_MAX - 1), sku="s", limits=Limits(U32_MAX, U32_MAX)),
            Rejection_RuleViolated(
                "cannot add 2 units of s: the stock level would exceed the maximum of "
                "4294967295 (it is 4294967294)"
            ),
        )
        self.assertEqual(
            decide(Operation_Add(1), Stock(LIMITS.max_stock_level - 1)), ok(LIMITS.max_stock_level)
        )

    def test_remove_from_an_unknown_product_is_not_found(self):
        self.assertEqual(
            decide(Operation_Remove(1), None),
            Rejection_UnknownProduct("product sku-1 is not known: it has never been stocked"),
        )

    def test_remove_below_zero_is_refused(self):
        self.assertEqual(
            decide(Operation_Remove(4), Stock(3)),
            Rejection_RuleViolated("cannot remove 4 units of sku-1: only 3 in stock"),
        )

    def test_remove_to_exactly_zero_is_allowed_and_low(self):
        self.assertEqual(decide(Operation_Remove(3), Stock(3)), ok(0, low=True))

    def test_low_stock_is_emitted_below_ten_only(self):
        self.assertEqual(decide(Operation_Remove(1), Stock(11)), ok(10))
        self.assertEqual(decide(Operation_Remove(1), Stock(10)), ok(9, low=True))

    def test_remove_refuses_zero_quantity_before_looking_at_the_stock(self):
        refusal = Rejection_InvalidRequest("quantity must be between 1 and 1000000, got 0")
        self.assertEqual(decide(Operation_Remove(0), Stock(5)), refusal)
        self.assertEqual(decide(Operation_Remove(0), None), refusal)

    def test_get_reports_the_level_and_zero_for_unknown(self):
        self.assertEqual(decide(Operation_Get(), Stock(42)), ok(42))
        self.assertEqual(decide(Operation_Get(), None), ok(0))


if __name__ == "__main__":
    unittest.main()
