//! Every class of bad input gets a clean, schema-valid 400, changes
//! nothing, and leaves the service serving.

use anyhow::Result;
use beaker_testkit::{Contract, TestEnv};
use bytes::Bytes;

/// Words that would betray internals in a message meant for callers.
const INTERNALS: [&str; 8] = [
    "sqlx", "wasmtime", "panicked", "serde", "::", "Error {", "SQL", "trap",
];

fn bad_payloads() -> Vec<(&'static str, Bytes)> {
    let mut cases: Vec<(&'static str, Bytes)> = vec![
        ("empty", Bytes::new()),
        ("whitespace only", Bytes::from_static(b"  \n\t ")),
        ("invalid UTF-8", Bytes::from_static(b"\xff\xfe\xfd")),
        (
            "invalid UTF-8 inside a string",
            Bytes::from_static(b"{\"product-sku\":\"a\xff\",\"quantity\":1}"),
        ),
        ("not JSON", Bytes::from_static(b"hello")),
        ("truncated JSON", Bytes::from_static(b"{\"product-sku\":")),
        (
            "trailing garbage",
            Bytes::from_static(b"{\"product-sku\":\"a\",\"quantity\":1} x"),
        ),
        ("top-level array", Bytes::from_static(b"[]")),
        ("top-level string", Bytes::from_static(b"\"stock\"")),
        ("top-level null", Bytes::from_static(b"null")),
        (
            "quantity as string",
            Bytes::from_static(br#"{"product-sku":"a","quantity":"5"}"#),
        ),
        (
            "quantity as float",
            Bytes::from_static(br#"{"product-sku":"a","quantity":1.5}"#),
        ),
        (
            "quantity zero",
            Bytes::from_static(br#"{"product-sku":"a","quantity":0}"#),
        ),
        (
            "quantity negative",
            Bytes::from_static(br#"{"product-sku":"a","quantity":-3}"#),
        ),
        (
            "quantity above maximum",
            Bytes::from_static(br#"{"product-sku":"a","quantity":1000001}"#),
        ),
        (
            "quantity beyond i64",
            Bytes::from_static(br#"{"product-sku":"a","quantity":99999999999999999999999}"#),
        ),
        (
            "quantity beyond f64",
            Bytes::from_static(br#"{"product-sku":"a","quantity":1e400}"#),
        ),
        (
            "quantity null",
            Bytes::from_static(br#"{"product-sku":"a","quantity":null}"#),
        ),
        (
            "quantity bool",
            Bytes::from_static(br#"{"product-sku":"a","quantity":true}"#),
        ),
        (
            "quantity missing",
            Bytes::from_static(br#"{"product-sku":"a"}"#),
        ),
        ("sku missing", Bytes::from_static(br#"{"quantity":1}"#)),
        (
            "sku number",
            Bytes::from_static(br#"{"product-sku":5,"quantity":1}"#),
        ),
        (
            "sku empty",
            Bytes::from_static(br#"{"product-sku":"","quantity":1}"#),
        ),
        (
            "sku with a space",
            Bytes::from_static(br#"{"product-sku":"a b","quantity":1}"#),
        ),
        (
            "sku with a NUL",
            Bytes::from_static(br#"{"product-sku":"a\u0000","quantity":1}"#),
        ),
        (
            "sku unicode",
            Bytes::from_static("{\"product-sku\":\"é\",\"quantity\":1}".as_bytes()),
        ),
        (
            "sku 51 chars",
            Bytes::from(format!(
                r#"{{"product-sku":"{}","quantity":1}}"#,
                "a".repeat(51)
            )),
        ),
        (
            "extra field",
            Bytes::from_static(br#"{"product-sku":"a","quantity":1,"price":2}"#),
        ),
        (
            "duplicate key, last one bad",
            Bytes::from_static(br#"{"product-sku":"a","quantity":1,"quantity":-1}"#),
        ),
    ];
    // 1 MiB: NATS's default maximum payload, exactly.
    let mut big = br#"{"product-sku":"a","quantity":1,"pad":""#.to_vec();
    big.resize(1024 * 1024 - 2, b'x');
    big.extend_from_slice(br#""}"#);
    cases.push(("1 MiB body", Bytes::from(big)));
    cases.push(("deeply nested arrays", Bytes::from("[".repeat(100_000))));
    cases.push((
        "deeply nested objects",
        Bytes::from(r#"{"a":"#.repeat(10_000) + "1" + &"}".repeat(10_000)),
    ));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_a_clean_400_and_changes_nothing() -> Result<()> {
    let env = TestEnv::start("bad_input").await?;
    let contract = Contract::load()?;
    env.add("a", 20).await?;
    let movements = env.db.count("stock_movements").await?;

    for subject in ["stock.add", "stock.remove", "stock.get"] {
        let schema = format!("{}.response.json", subject.replace('.', "-"));
        for (what, payload) in bad_payloads() {
            if subject == "stock.get" && what == "quantity missing" {
                continue; // a get has no quantity: that one is valid there
            }
            let reply = env.call(subject, payload).await?;
            contract.assert_valid(&schema, &reply.body);
            assert_eq!(
                reply.code,
                Some(400),
                "{subject} / {what}: {:?}",
                reply.body
            );
            assert_eq!(reply.body["ok"], false, "{subject} / {what}");
            let message = reply.body["error"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "{subject} / {what}: empty message");
            assert!(
                message.len() <= 300,
                "{subject} / {what}: {} bytes",
                message.len()
            );
            for word in INTERNALS {
                assert!(
                    !message.contains(word),
                    "{subject} / {what}: {message:?} shows {word:?}"
                );
            }
            assert_eq!(
                reply.error.as_deref(),
                Some(message),
                "{subject} / {what}: header"
            );
        }
    }

    assert_eq!(env.db.level("a").await?, Some(20), "nothing changed");
    assert_eq!(env.db.count("stock_movements").await?, movements);
    assert_eq!(
        env.db.count("inventory").await?,
        1,
        "no product was created"
    );
    // And the service still serves.
    assert_eq!(env.get("a").await?.level(), Some(20));
    assert_eq!(env.add("a", 1).await?.level(), Some(21));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_say_what_is_wrong() -> Result<()> {
    let env = TestEnv::start("bad_input_messages").await?;
    let cases: [(&[u8], &str); 5] = [
        (b"", "empty"),
        (b"\xff", "UTF-8"),
        (b"{", "JSON"),
        (br#"{"product-sku":"a","quantity":0}"#, "quantity"),
        (
            br#"{"product-sku":"a","quantity":1,"colour":"red"}"#,
            "colour",
        ),
    ];
    for (payload, expected) in cases {
        let reply = env
            .call("stock.add", Bytes::copy_from_slice(payload))
            .await?;
        let message = reply.body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{message:?} should mention {expected}"
        );
    }
    let big = env
        .call("stock.add", Bytes::from(vec![b' '; 20_000]))
        .await?;
    let message = big.body["error"].as_str().unwrap_or_default();
    assert!(message.contains("20000 bytes"), "{message}");
    Ok(())
}
