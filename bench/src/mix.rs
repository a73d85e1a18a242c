//! What the load sends: which product, which operation, how many units.
//!
//! Every pick is a pure function of (worker, sequence number), so a phase
//! sends the same requests on every run and the service and the same-SQL
//! baseline see exactly the same sequence.

use bytes::Bytes;

/// Units every seeded product starts with: adds and removes of 1 to 5 units
/// in equal numbers leave it far from both 0 and the low-stock threshold,
/// so the change mixes are never refused and raise no events.
pub const SEEDED_LEVEL: u32 = 1_000_000;

/// Which requests a phase sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Adds and removes, half each, on a few hot products: every request
    /// queues behind the row lock of one of them.
    ChangeHot,
    /// Adds and removes, half each, spread over many cold products: hardly
    /// two requests touch the same row.
    ChangeCold,
    /// `stock.get` alone, over the cold products.
    Get,
    /// Two adds, a get and a remove of twice as much (sometimes refused)
    /// over the cold products, which the adds create: needs no seeding.
    Mixed,
}

impl Mix {
    /// The name used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Mix::ChangeHot => "add/remove, hot",
            Mix::ChangeCold => "add/remove, cold",
            Mix::Get => "get, cold",
            Mix::Mixed => "add/get/remove",
        }
    }
}

/// The products a run uses.
#[derive(Debug, Clone, Copy)]
pub struct Products {
    pub hot: usize,
    pub cold: usize,
}

pub fn hot_sku(index: usize) -> String {
    format!("bench-hot-{index}")
}

pub fn cold_sku(index: usize) -> String {
    format!("bench-cold-{index}")
}

/// The `index`th product of the event phase named `phase`.
pub fn event_sku(phase: usize, index: usize) -> String {
    format!("bench-ev{phase}-{index}")
}

/// One operation on one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Add(u32),
    Remove(u32),
    Get,
}

/// One request of a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub sku: String,
    pub operation: Operation,
}

impl Pick {
    /// The NATS subject of the request.
    pub fn subject(&self) -> &'static str {
        match self.operation {
            Operation::Add(_) => "stock.add",
            Operation::Remove(_) => "stock.remove",
            Operation::Get => "stock.get",
        }
    }

    /// The request body, as a client of the reference service sends it.
    pub fn payload(&self) -> Bytes {
        let body = match self.operation {
            Operation::Add(quantity) | Operation::Remove(quantity) => {
                serde_json::json!({"product-sku": self.sku, "quantity": quantity})
            }
            Operation::Get => serde_json::json!({"product-sku": self.sku}),
        };
        Bytes::from(body.to_string())
    }
}

impl Mix {
    /// The `sequence`th request of worker `worker`.
    pub fn pick(self, products: Products, worker: usize, sequence: u64) -> Pick {
        let seed = (worker as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(sequence);
        let mut rng = fastrand::Rng::with_seed(seed);
        let quantity = rng.u32(1..=5);
        let change = |sku: String, rng: &mut fastrand::Rng| Pick {
            sku,
            operation: if rng.bool() {
                Operation::Add(quantity)
            } else {
                Operation::Remove(quantity)
            },
        };
        match self {
            Mix::ChangeHot => change(hot_sku(rng.usize(..products.hot.max(1))), &mut rng),
            Mix::ChangeCold => change(cold_sku(rng.usize(..products.cold.max(1))), &mut rng),
            Mix::Get => Pick {
                sku: cold_sku(rng.usize(..products.cold.max(1))),
                operation: Operation::Get,
            },
            Mix::Mixed => {
                let sku = cold_sku(rng.usize(..products.cold.max(1)));
                let operation = match sequence % 4 {
                    0 | 1 => Operation::Add(quantity),
                    2 => Operation::Get,
                    _ => Operation::Remove(quantity * 2),
                };
                Pick { sku, operation }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTS: Products = Products { hot: 4, cold: 100 };

    #[test]
    fn picks_are_reproducible() {
        for mix in [Mix::ChangeHot, Mix::ChangeCold, Mix::Get, Mix::Mixed] {
            assert_eq!(mix.pick(PRODUCTS, 3, 17), mix.pick(PRODUCTS, 3, 17));
        }
    }

    #[test]
    fn mixes_stay_on_their_products() {
        let hot: Vec<String> = (0..PRODUCTS.hot).map(hot_sku).collect();
        let mut adds = 0;
        for n in 0..1000 {
            let pick = Mix::ChangeHot.pick(PRODUCTS, 1, n);
            assert!(hot.contains(&pick.sku), "{pick:?}");
            adds += u32::from(matches!(pick.operation, Operation::Add(_)));
            let cold = Mix::ChangeCold.pick(PRODUCTS, 1, n);
            assert!(cold.sku.starts_with("bench-cold-"), "{cold:?}");
            assert!(matches!(
                Mix::Get.pick(PRODUCTS, 1, n).operation,
                Operation::Get
            ));
        }
        assert!(
            (400..600).contains(&adds),
            "adds and removes are balanced: {adds}"
        );
    }

    #[test]
    fn payloads_are_the_reference_wire_format() {
        let pick = Pick {
            sku: "bench-hot-0".into(),
            operation: Operation::Remove(3),
        };
        assert_eq!(pick.subject(), "stock.remove");
        assert_eq!(
            &pick.payload()[..],
            br#"{"product-sku":"bench-hot-0","quantity":3}"#
        );
        let get = Pick {
            sku: "x".into(),
            operation: Operation::Get,
        };
        assert_eq!(&get.payload()[..], br#"{"product-sku":"x"}"#);
    }
}
