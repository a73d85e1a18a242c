//! Micro-benchmarks of the request path's CPU work, outside any I/O:
//! the rules call (a fresh sandboxed instance, as the service makes per
//! request, against one reused instance; with the pooling allocator the
//! service uses against on-demand allocation), JSON Schema validation of a
//! request, and serialization of a reply.
//!
//! `cargo bench -p beaker-bench` (after `make build`, which builds the
//! rules component). `BEAKER_BENCH_RULES` names another component.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use beaker::contract::schema::Schemas;
use beaker::contract::wire::{Endpoint, Reply, StockRequest};
use beaker::rules::{Allocation, Operation, Request, Rules, RulesEngine, SandboxLimits};
use criterion::Criterion;
use serde_json::Value;

const REQUEST: &[u8] = br#"{"product-sku":"widget-1","quantity":5}"#;

fn rules_path() -> PathBuf {
    std::env::var_os("BEAKER_BENCH_RULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/wasm32-wasip2/release/beaker_rules.wasm")
        })
}

/// A runtime for the rules' async calls; the calls themselves never wait.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

fn engine_and_rules(
    rt: &tokio::runtime::Runtime,
    allocation: Allocation,
    component: &[u8],
) -> Result<(RulesEngine, Rules), String> {
    let engine = RulesEngine::with_allocation(SandboxLimits::default(), allocation)
        .map_err(|e| format!("cannot create the rules engine: {e}"))?;
    let rules = rt
        .block_on(engine.load(component))
        .map_err(|e| format!("cannot load the rules: {e}"))?;
    Ok((engine, rules))
}

fn bench_rules(c: &mut Criterion, component: &[u8]) -> Result<(), String> {
    let rt = runtime()?;
    let request = Request {
        sku: "widget-1".into(),
        operation: Operation::Remove(2),
    };
    let mut group = c.benchmark_group("rules decide");
    for (allocation, name) in [
        (Allocation::Pooling, "pooling"),
        (Allocation::OnDemand, "on-demand"),
    ] {
        let (engine, rules) = engine_and_rules(&rt, allocation, component)?;
        // Both paths must work before they are timed.
        rt.block_on(engine.decide(&rules, &request, Some(50)))
            .map_err(|e| format!("the rules failed: {e}"))?
            .map_err(|e| format!("the rules refused a plain remove: {e:?}"))?;
        let mut reused = rt
            .block_on(engine.instantiate(&rules))
            .map_err(|e| format!("cannot instantiate the rules: {e}"))?;

        group.bench_function(format!("fresh instance, {name}"), |b| {
            b.iter_custom(|iterations| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        let _ =
                            black_box(engine.decide(&rules, black_box(&request), Some(50)).await);
                    }
                    started.elapsed()
                })
            });
        });
        group.bench_function(format!("reused instance, {name}"), |b| {
            b.iter_custom(|iterations| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        let _ = black_box(reused.decide(black_box(&request), Some(50)).await);
                    }
                    started.elapsed()
                })
            });
        });
    }
    group.finish();
    Ok(())
}

/// What the service does with a request's bytes before touching the
/// database: parse, validate against the schema, canonicalize, decode.
fn decode(schemas: &Schemas, payload: &[u8]) -> Option<StockRequest> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    schemas.check_request(Endpoint::Add, &value).ok()?;
    let _canonical = black_box(value.to_string());
    serde_json::from_value(value).ok()
}

fn bench_schema(c: &mut Criterion, schemas: &Schemas) -> Result<(), String> {
    let value: Value =
        serde_json::from_slice(REQUEST).map_err(|e| format!("the sample request: {e}"))?;
    if decode(schemas, REQUEST).is_none() {
        return Err("the sample request does not pass validation".into());
    }
    let mut group = c.benchmark_group("request");
    group.bench_function("schema validation", |b| {
        b.iter(|| schemas.check_request(Endpoint::Add, black_box(&value)));
    });
    group.bench_function("parse, validate, decode", |b| {
        b.iter(|| decode(schemas, black_box(REQUEST)));
    });
    group.finish();
    Ok(())
}

fn bench_reply(c: &mut Criterion, schemas: &Schemas) {
    let reply = Reply::Ok {
        sku: "widget-1".into(),
        level: 42,
    };
    let mut group = c.benchmark_group("reply");
    group.bench_function("serialize", |b| b.iter(|| black_box(&reply).body_text()));
    // The service checks every reply against its schema before sending it.
    group.bench_function("serialize and check against the schema", |b| {
        b.iter(|| {
            let body = black_box(&reply).body_text();
            serde_json::from_str::<Value>(&body)
                .ok()
                .map(|value| schemas.check_response(Endpoint::Add, &value).is_ok())
        });
    });
    group.finish();
}

fn main() {
    let path = rules_path();
    let component = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!(
                "cannot read the rules component {}: {e}; run `make build` first",
                path.display()
            );
            std::process::exit(2);
        }
    };
    let schemas = match Schemas::compile() {
        Ok(schemas) => schemas,
        Err(e) => {
            eprintln!("the embedded schemas do not compile: {e}");
            std::process::exit(2);
        }
    };
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let outcome = bench_rules(&mut criterion, &component)
        .and_then(|()| bench_schema(&mut criterion, &schemas));
    if let Err(e) = outcome {
        eprintln!("{e}");
        std::process::exit(1);
    }
    bench_reply(&mut criterion, &schemas);
    criterion.final_summary();
}
