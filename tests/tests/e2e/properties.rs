//! The properties of the `make fuzz` targets, checked in `make test` on the
//! committed seed corpus and on a few thousand inputs made at random.
//!
//! This is not coverage-guided fuzzing (`make fuzz` is; its instrumented
//! build is too slow for every run): it is the same property code, from
//! `fuzz/properties/`, on a short random run that needs no second build.
//! The random inputs start from a seed, printed first; set
//! `BEAKER_PROPERTY_SEED` to replay a run. A failing request payload or
//! corpus entry is written to `target/test-output/properties/` and named in
//! the failure; a failing random rules case is printed in it.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};
use beaker::contract::bounds::BOUNDS;
use beaker::contract::schema::Schemas;
use beaker::contract::wire::Endpoint;
use beaker_testkit::{default_rules, output_dir, workspace_root};

#[path = "../../../fuzz/properties/request.rs"]
mod request_property;
#[path = "../../../fuzz/properties/rules.rs"]
mod rules_property;

/// Random inputs per run for each target.
const REQUEST_INPUTS: usize = 20_000;
const RULES_CASES: usize = 1_000;

/// The committed seed corpus of a fuzz target.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = workspace_root().join("fuzz/corpus").join(target);
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(&path).ok()?))
        })
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no seed corpus in {}", dir.display());
    entries
}

fn rng() -> fastrand::Rng {
    let seed = std::env::var("BEAKER_PROPERTY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("BEAKER_PROPERTY_SEED={seed}");
    fastrand::Rng::with_seed(seed)
}

/// What a caught panic said.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Runs `check` on `input`; on a panic, keeps the input and fails naming
/// where it is.
fn checked(target: &str, what: &str, input: &[u8], check: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(check)) {
        let message = panic_message(&*panic);
        let path: PathBuf = output_dir("properties").join(format!("{target}-failure"));
        let _ = std::fs::write(&path, input);
        panic!(
            "{target}: {what} breaks the property: {message}\n\
             the input is in {} (replay it with `make fuzz`'s target: \
             cargo fuzz run --fuzz-dir fuzz {target} {})",
            path.display(),
            path.display()
        );
    }
}

/// A request body for `endpoint`, as callers send them: often right, often
/// wrong in one way (a missing or extra field, an odd SKU or quantity), now
/// and then damaged.
fn request_like(rng: &mut fastrand::Rng, endpoint: Endpoint) -> Vec<u8> {
    const GOOD_SKUS: [&str; 4] = [
        "widget-1",
        "a",
        "UPPER_lower-09",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    const BAD_SKUS: [&str; 6] = [
        "",
        "with space",
        "ünïcödé",
        "x\\u0000y",
        "../etc/passwd",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    const GOOD_QUANTITIES: [&str; 4] = ["1", "5", "999999", "1000000"];
    const BAD_QUANTITIES: [&str; 12] = [
        "0",
        "-1",
        "1000001",
        "2147483648",
        "4294967296",
        "1.5",
        "1e3",
        "\"5\"",
        "null",
        "true",
        "[1]",
        "{}",
    ];
    let pick = |rng: &mut fastrand::Rng, good: &[&'static str], bad: &[&'static str]| {
        if rng.u8(..4) == 0 {
            bad[rng.usize(..bad.len())]
        } else {
            good[rng.usize(..good.len())]
        }
    };
    let sku = pick(rng, &GOOD_SKUS, &BAD_SKUS);
    let quantity = pick(rng, &GOOD_QUANTITIES, &BAD_QUANTITIES);
    let mut fields = Vec::new();
    if rng.u8(..10) != 0 {
        fields.push(format!("\"product-sku\":\"{sku}\""));
    }
    // A get takes no quantity; a change must have one.
    let wants_quantity = endpoint != Endpoint::Get;
    if wants_quantity == (rng.u8(..10) != 0) {
        fields.push(format!("\"quantity\":{quantity}"));
    }
    if rng.u8(..10) == 0 {
        fields.push(r#""extra":{"nested":[1,2,{"deep":null}]}"#.to_string());
    }
    if rng.u8(..20) == 0 {
        // A duplicate key.
        fields.push(format!("\"quantity\":{quantity}"));
    }
    rng.shuffle(&mut fields);
    let mut body = format!("{{{}}}", fields.join(",")).into_bytes();
    if rng.u8(..4) == 0 {
        for _ in 0..=rng.usize(..3) {
            mutate(rng, &mut body);
        }
    }
    body
}

/// One small random change: a byte flipped, inserted or removed, or the end
/// cut off.
fn mutate(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.push(rng.u8(..));
        return;
    }
    let at = rng.usize(..bytes.len());
    match rng.u8(..4) {
        0 => bytes[at] ^= 1 << rng.u8(..8),
        1 => bytes.insert(at, rng.u8(..)),
        2 => {
            bytes.remove(at);
        }
        _ => bytes.truncate(at),
    }
}

#[test]
fn request_decoding_keeps_its_properties_on_the_corpus_and_random_inputs() {
    let schemas = Schemas::compile().expect("the embedded schemas compile");
    let seeds = corpus("request");
    for (name, input) in &seeds {
        checked("request", name, input, || {
            request_property::check(&schemas, input);
        });
    }
    let mut rng = rng();
    let mut accepted = 0;
    for n in 0..REQUEST_INPUTS {
        // The first byte picks the endpoint, as in the fuzz target.
        let mut input = vec![rng.u8(..)];
        match n % 3 {
            0 => {
                let endpoint = Endpoint::STOCK[usize::from(input[0]) % Endpoint::STOCK.len()];
                input.extend(request_like(&mut rng, endpoint));
            }
            1 => {
                let (_, seed) = &seeds[rng.usize(..seeds.len())];
                let mut body = seed.get(1..).unwrap_or_default().to_vec();
                for _ in 0..=rng.usize(..4) {
                    mutate(&mut rng, &mut body);
                }
                input.extend(body);
            }
            _ => {
                let len = rng.usize(..64);
                input.extend(std::iter::repeat_with(|| rng.u8(..)).take(len));
            }
        }
        checked("request", &format!("random input {n}"), &input, || {
            accepted += usize::from(request_property::check(&schemas, &input));
        });
    }
    eprintln!("{REQUEST_INPUTS} random inputs: {accepted} accepted");
    // The run must reach both sides of validation, or it proves little.
    assert!(
        accepted > REQUEST_INPUTS / 20 && accepted < REQUEST_INPUTS / 2,
        "{accepted} of {REQUEST_INPUTS} accepted"
    );
}

/// A quantity as callers send them: mostly small, sometimes at or past a
/// bound.
fn quantity(rng: &mut fastrand::Rng) -> u32 {
    let max = BOUNDS.max_quantity;
    match rng.u8(..10) {
        0 => [0, 1, max - 1, max, max + 1, u32::MAX][rng.usize(..6)],
        1 => rng.u32(..),
        _ => rng.u32(1..=20),
    }
}

/// A random case: a new product or one with some stock (now and then near
/// the ceiling), then up to 64 operations.
fn random_case(rng: &mut fastrand::Rng) -> rules_property::Case {
    let ceiling = BOUNDS.max_stock_level;
    let start = match rng.u8(..8) {
        0 => None,
        1 => Some(ceiling - rng.u32(..30)),
        _ => Some(rng.u32(..60)),
    };
    let ops = (0..rng.usize(1..=64))
        .map(|_| match rng.u8(..5) {
            0 => rules_property::Op::Get,
            1 | 2 => rules_property::Op::Add(quantity(rng)),
            _ => rules_property::Op::Remove(quantity(rng)),
        })
        .collect();
    rules_property::Case { start, ops }
}

#[test]
fn the_default_rules_keep_their_properties_on_the_corpus_and_random_cases() {
    let sandbox = rules_property::Sandbox::load(&default_rules());
    for (name, input) in corpus("rules") {
        let Ok(case) = rules_property::Case::arbitrary_take_rest(Unstructured::new(&input)) else {
            continue;
        };
        checked("rules", &name, &input, || {
            rules_property::check(&sandbox, &case);
        });
    }
    let mut rng = rng();
    let mut total = rules_property::Tally::default();
    for n in 0..RULES_CASES {
        let case = random_case(&mut rng);
        let what = format!("random case {n}: {case:?}");
        let tally = catch_unwind(AssertUnwindSafe(|| rules_property::check(&sandbox, &case)))
            .unwrap_or_else(|panic| {
                panic!(
                    "rules: {what} breaks the property: {}",
                    panic_message(&*panic)
                )
            });
        total.changed += tally.changed;
        total.refused += tally.refused;
        total.low_stock += tally.low_stock;
    }
    eprintln!("{RULES_CASES} random cases: {total:?}");
    // The run must reach every kind of outcome, or it proves little.
    assert!(
        total.changed > RULES_CASES && total.refused > 0 && total.low_stock > 0,
        "{total:?}"
    );
}
