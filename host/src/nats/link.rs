//! The connection's state as the client's events report it, and what the
//! parts that follow it wait for: a connection that drops or is replaced
//! (what was sent on it will not be answered), one that comes back, one
//! that is down.

use tokio::sync::watch;

/// The state of the NATS connection, as the client's events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    /// Whether the connection is up.
    pub up: bool,
    /// Connections made so far: a change means a new connection, on which
    /// nothing sent on the old one will be answered.
    pub connections: u64,
}

/// Resolves when the connection is no longer the one given: it dropped, or
/// a new one replaced it. Never resolves if the link's sender is gone.
pub async fn replaced(link: &mut watch::Receiver<Link>, was: Link) {
    if link.wait_for(|now| *now != was).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves when a connection newer than the one given is up.
pub async fn back(link: &mut watch::Receiver<Link>, was: Link) {
    let back = |now: &Link| now.up && (now.connections > was.connections || !was.up);
    if link.wait_for(back).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves while the connection is down (never, if its watch is gone).
pub async fn down(link: &mut watch::Receiver<Link>) {
    if link.wait_for(|l| !l.up).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_dropped_or_replaced_connection_is_noticed_and_a_new_one_wakes() {
        let (tx, mut rx) = watch::channel(Link {
            up: true,
            connections: 1,
        });
        let was = *rx.borrow_and_update();
        tx.send_modify(|l| l.up = false);
        tokio::time::timeout(Duration::from_secs(1), replaced(&mut rx, was))
            .await
            .expect("a drop is a change");
        let down = *rx.borrow_and_update();
        let waiting = tokio::time::timeout(Duration::from_millis(20), back(&mut rx, down));
        assert!(waiting.await.is_err(), "still down: no reconnection yet");
        tx.send_modify(|l| {
            l.up = true;
            l.connections = 2;
        });
        tokio::time::timeout(Duration::from_secs(1), back(&mut rx, down))
            .await
            .expect("a new connection wakes");
    }
}
