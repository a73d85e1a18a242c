//! A whole test environment: a NATS server, a database, one `beaker`,
//! and a client, with the calls most tests make.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;

use crate::beaker::{Beaker, BeakerConfig, GATEWAY_TOKEN};
use crate::client::{Answer, call};
use crate::database::TestDb;
use crate::http::Http;
use crate::nats_server::NatsServer;
use crate::paths::output_dir;
use crate::stream::{EVENTS_STREAM, StreamEvent, stream_events};

/// A whole test environment: NATS, a database, one beaker, a client.
#[derive(Debug)]
pub struct TestEnv {
    pub name: String,
    pub nats: NatsServer,
    pub db: TestDb,
    pub beaker: Beaker,
    pub client: async_nats::Client,
}

impl TestEnv {
    pub async fn start(name: &str) -> Result<Self> {
        Self::start_with(name, |c| c).await
    }

    /// Starts with a configuration adjusted by `adjust`.
    pub async fn start_with(
        name: &str,
        adjust: impl FnOnce(BeakerConfig) -> BeakerConfig,
    ) -> Result<Self> {
        // Logs of earlier runs of this test would only confuse.
        let _ = std::fs::remove_dir_all(output_dir(name));
        let nats = NatsServer::start(name)?;
        let db = TestDb::create().await?;
        let config = adjust(BeakerConfig::new(name, &nats, &db));
        let beaker = Beaker::start(&config)?;
        let client = nats.client().await?;
        Ok(Self {
            name: name.to_string(),
            nats,
            db,
            beaker,
            client,
        })
    }

    pub async fn call(&self, subject: &str, payload: impl Into<Bytes>) -> Result<Answer> {
        call(&self.client, subject, payload).await
    }

    pub async fn add(&self, sku: &str, quantity: i64) -> Result<Answer> {
        self.call(
            "stock.add",
            serde_json::json!({"product-sku": sku, "quantity": quantity}).to_string(),
        )
        .await
    }

    pub async fn remove(&self, sku: &str, quantity: i64) -> Result<Answer> {
        self.call(
            "stock.remove",
            serde_json::json!({"product-sku": sku, "quantity": quantity}).to_string(),
        )
        .await
    }

    pub async fn get(&self, sku: &str) -> Result<Answer> {
        self.call(
            "stock.get",
            serde_json::json!({"product-sku": sku}).to_string(),
        )
        .await
    }

    /// Starts with `beaker serve --gateway` (token [`GATEWAY_TOKEN`]).
    pub async fn start_with_gateway(name: &str) -> Result<Self> {
        Self::start_with(name, BeakerConfig::with_gateway).await
    }

    /// An HTTP client for the gateway inside this environment's beaker.
    pub fn http(&self) -> Result<Http> {
        Ok(Http::new(&self.beaker.gateway_url()?, GATEWAY_TOKEN))
    }
}

impl TestEnv {
    /// Starts another `beaker serve` on this environment's NATS and database.
    pub fn start_another(
        &self,
        adjust: impl FnOnce(BeakerConfig) -> BeakerConfig,
    ) -> Result<Beaker> {
        let config = adjust(BeakerConfig::new(&self.name, &self.nats, &self.db));
        Beaker::start(&config)
    }

    /// Every event in the default stream, after the outbox has drained.
    pub async fn published_events(&self) -> Result<Vec<StreamEvent>> {
        self.db.wait_outbox_drained(Duration::from_secs(30)).await?;
        stream_events(&self.client, EVENTS_STREAM).await
    }
}
