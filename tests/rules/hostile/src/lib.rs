//! Misbehaves on purpose, chosen by the request's SKU, so that the tests
//! can check the sandbox contains each kind of misbehaviour:
//! `loop` runs forever, `grow` allocates without bound, `panic` traps,
//! `huge-level` decides a level above the maximum, `wrong-event` announces
//! another product, `many-events` asks for a thousand events. Any other SKU
//! gets plain add/remove/get arithmetic, so the component passes the smoke
//! test and serves normal requests beside the hostile ones.
#![allow(unsafe_code)]

#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({ world: "rules", path: "../../../wit" });
}

use bindings::beaker::inventory::types::{
    Decision, Event, Limits, LowStock, Operation, Rejection, Request, RulesInfo, Stock,
};

struct Hostile;

impl bindings::Guest for Hostile {
    fn describe() -> RulesInfo {
        RulesInfo {
            name: "hostile-test-rules".into(),
            version: "0.1.0".into(),
        }
    }

    fn decide(
        request: Request,
        current: Option<Stock>,
        limits: Limits,
    ) -> Result<Decision, Rejection> {
        let level = current.map_or(0, |s| s.level);
        match request.sku.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile rules panic on purpose"),
            "huge-level" => Ok(Decision {
                level: limits.max_stock_level.saturating_add(1),
                events: vec![],
            }),
            "wrong-event" => Ok(Decision {
                level,
                events: vec![Event::LowStock(LowStock {
                    sku: "someone-else".into(),
                    level,
                })],
            }),
            "many-events" => Ok(Decision {
                level,
                events: (0..1000)
                    .map(|_| {
                        Event::LowStock(LowStock {
                            sku: request.sku.clone(),
                            level,
                        })
                    })
                    .collect(),
            }),
            _ => match request.operation {
                Operation::Get => Ok(Decision {
                    level,
                    events: vec![],
                }),
                Operation::Add(q) => Ok(Decision {
                    level: level.saturating_add(q),
                    events: vec![],
                }),
                Operation::Remove(q) => match level.checked_sub(q) {
                    Some(after) => Ok(Decision {
                        level: after,
                        events: vec![],
                    }),
                    None => Err(Rejection::RuleViolated("not enough".into())),
                },
            },
        }
    }
}

bindings::export!(Hostile with_types_in bindings);
