//! A NATS cluster on loopback: three (or more) `nats-server`s clustered
//! through routes, each with JetStream and a store of its own, as Synadia
//! Cloud runs them. Uses nothing newer than nats-server 2.9.
//!
//! A server reports ready before the cluster has formed; the cluster is
//! usable once JetStream has a meta leader, which [`NatsCluster::start`]
//! waits for (`$JS.API.INFO` answers only then).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::nats_server::NatsServer;
use crate::paths::free_port;

/// How long a forming cluster may take to elect its JetStream meta leader.
const META_LEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// A cluster of `nats-server`s.
#[derive(Debug)]
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
    /// Each server's name (`-n`), as JetStream reports leaders.
    pub names: Vec<String>,
    /// Each server's monitoring port (`/connz`: who is connected where).
    monitor_ports: Vec<u16>,
}

impl NatsCluster {
    /// Starts `size` servers clustered through routes and waits until
    /// JetStream has a meta leader.
    pub async fn start(name: &str, size: usize) -> Result<Self> {
        let client_ports = (0..size).map(|_| free_port()).collect::<Result<Vec<_>>>()?;
        let cluster_ports = (0..size).map(|_| free_port()).collect::<Result<Vec<_>>>()?;
        let monitor_ports = (0..size).map(|_| free_port()).collect::<Result<Vec<_>>>()?;
        let cluster_name = format!("beaker-test-{}", uuid::Uuid::new_v4().simple());
        let mut servers = Vec::with_capacity(size);
        let mut names = Vec::with_capacity(size);
        for i in 0..size {
            let server_name = format!("n{i}");
            let routes: Vec<String> = cluster_ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, port)| format!("nats://127.0.0.1:{port}"))
                .collect();
            let args = vec![
                "-n".to_string(),
                server_name.clone(),
                "--cluster_name".to_string(),
                cluster_name.clone(),
                "--cluster".to_string(),
                format!("nats://127.0.0.1:{}", cluster_ports[i]),
                "--routes".to_string(),
                routes.join(","),
                "-m".to_string(),
                monitor_ports[i].to_string(),
            ];
            servers.push(NatsServer::start_on(
                name,
                client_ports[i],
                &format!("nats-server-{server_name}.log"),
                args,
            )?);
            names.push(server_name);
        }
        let cluster = Self {
            servers,
            names,
            monitor_ports,
        };
        cluster.wait_for_meta_leader(META_LEADER_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Every server's URL, the one at `first` first: what a host that
    /// prefers that server is given as `NATS_URL`.
    pub fn urls_from(&self, first: usize) -> String {
        let n = self.servers.len();
        (0..n)
            .map(|k| self.servers[(first + k) % n].url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client that knows every server, so that it survives losing one.
    pub async fn client(&self) -> Result<async_nats::Client> {
        let urls: Vec<String> = self.servers.iter().map(NatsServer::url).collect();
        Ok(async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(urls)
            .await?)
    }

    /// Waits until `$JS.API.INFO` answers: the cluster has a JetStream
    /// meta leader and takes JetStream requests.
    pub async fn wait_for_meta_leader(&self, timeout: Duration) -> Result<()> {
        let client = self.client().await?;
        let deadline = Instant::now() + timeout;
        loop {
            let asked = tokio::time::timeout(
                Duration::from_secs(2),
                client.request("$JS.API.INFO", bytes::Bytes::new()),
            )
            .await;
            if let Ok(Ok(answer)) = asked
                && let Ok(info) = serde_json::from_slice::<Value>(&answer.payload)
                && info.get("error").is_none()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the cluster elected no JetStream meta leader within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of the running server a client whose connection name
    /// contains `name` is connected to (the host names its connection
    /// `beaker <instance id>`), if any.
    pub async fn server_of(&self, name: &str) -> Result<Option<usize>> {
        let http = monitor_client(Duration::from_secs(5))?;
        for i in 0..self.servers.len() {
            let Ok(connz) = self.monitor(&http, i, "connz?limit=1024").await else {
                continue; // a server that is down
            };
            let found = connz["connections"].as_array().is_some_and(|list| {
                list.iter()
                    .any(|c| c["name"].as_str().is_some_and(|n| n.contains(name)))
            });
            if found {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// What each server holds of `stream`, from its own monitoring port
    /// (`/jsz`): leader, messages, first and last sequence. Kept beside a
    /// failed run's books, since a stream read through the cluster shows
    /// only the leader's copy.
    pub async fn stream_states(&self, stream: &str) -> Vec<(String, Value)> {
        let Ok(http) = monitor_client(Duration::from_secs(5)) else {
            return Vec::new();
        };
        let mut states = Vec::with_capacity(self.servers.len());
        for (i, name) in self.names.iter().enumerate() {
            let state = match self
                .monitor(&http, i, "jsz?accounts=true&streams=true")
                .await
            {
                Err(e) => Value::String(format!("no answer: {e:#}")),
                Ok(jsz) => jsz["account_details"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
                    .find(|s| s["name"] == stream)
                    .map(|s| serde_json::json!({"cluster": s["cluster"], "state": s["state"]}))
                    .unwrap_or_else(|| Value::String(format!("holds no {stream}"))),
            };
            states.push((name.clone(), state));
        }
        states
    }

    /// A JSON page from server `i`'s monitoring port.
    async fn monitor(&self, http: &reqwest::Client, i: usize, page: &str) -> Result<Value> {
        let url = format!("http://127.0.0.1:{}/{page}", self.monitor_ports[i]);
        let text = http.get(&url).send().await?.text().await?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Waits until every running server says it is healthy (`/healthz`):
    /// JetStream current with the meta leader and every stream replica it
    /// holds current. The books are read only then, so that what they see
    /// of the stream does not depend on which server answers, one just
    /// restarted and still catching up included. Servers that are down
    /// (their monitoring port refuses) are skipped.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let http = monitor_client(Duration::from_secs(2))?;
        let deadline = Instant::now() + timeout;
        loop {
            let mut unhealthy = Vec::new();
            for (i, port) in self.monitor_ports.iter().enumerate() {
                let url = format!("http://127.0.0.1:{port}/healthz");
                match http.get(&url).send().await {
                    Err(e) if e.is_connect() => {} // down
                    Err(e) => unhealthy.push(format!("n{i}: {e}")),
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        unhealthy.push(format!("n{i}: {status} {body}"));
                    }
                }
            }
            if unhealthy.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the cluster did not become healthy within {timeout:?}: {unhealthy:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The index of the server that leads `stream`'s replicas, waiting (at
    /// most `LEADER_WITHIN`) until it exists and has a leader: on a fresh
    /// cluster the hosts serve at once and create their stream in the
    /// background, so a fault drawn early may come before it exists.
    pub async fn stream_leader(&self, client: &async_nats::Client, stream: &str) -> Result<usize> {
        const LEADER_WITHIN: Duration = Duration::from_secs(30);
        let deadline = Instant::now() + LEADER_WITHIN;
        loop {
            let answer = tokio::time::timeout(
                Duration::from_secs(5),
                client.request(format!("$JS.API.STREAM.INFO.{stream}"), bytes::Bytes::new()),
            )
            .await
            .map_err(anyhow::Error::from)
            .and_then(|answer| answer.map_err(anyhow::Error::from));
            let info: Option<Value> = answer
                .ok()
                .and_then(|answer| serde_json::from_slice(&answer.payload).ok());
            if let Some(leader) = info
                .as_ref()
                .and_then(|info| info["cluster"]["leader"].as_str())
            {
                return self
                    .names
                    .iter()
                    .position(|n| n == leader)
                    .with_context(|| {
                        format!("{stream}'s leader {leader} is none of {:?}", self.names)
                    });
            }
            if Instant::now() > deadline {
                bail!(
                    "{stream} reports no leader within {LEADER_WITHIN:?}: {}",
                    info.map_or_else(|| "no answer".to_string(), |i| i.to_string())
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An HTTP client for the servers' monitoring ports.
fn monitor_client(timeout: Duration) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(timeout).build()?)
}
