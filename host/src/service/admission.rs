//! Which requests are taken now, which wait, and which are told the service
//! is busy.
//!
//! At most `max_in_flight` requests are processed at once (each holds a
//! rules instance and maybe a database connection). A burst beyond that is
//! not refused outright: a request waits for a slot for up to `max_wait`,
//! or less when its caller said it would give up sooner
//! ([`TIMEOUT_HEADER`]), and only then gets a 503. The queue is bounded
//! too: beyond `max_waiting` waiting requests, a new one gets its 503 at
//! once, so memory stays bounded whatever arrives.
//!
//! [`TIMEOUT_HEADER`]: crate::contract::wire::TIMEOUT_HEADER

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How requests are admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionSettings {
    /// Requests processed at once.
    pub max_in_flight: u32,
    /// Requests waiting for a slot at once; beyond, an immediate 503.
    pub max_waiting: u32,
    /// Longest a request waits for a slot before its 503.
    pub max_wait: Duration,
}

/// Why a request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Every slot was taken and the queue was full.
    QueueFull,
    /// No slot freed up in time (the host's limit or the caller's).
    WaitedTooLong,
}

impl Busy {
    /// The label of the `beaker_requests_busy_total` metric.
    pub fn reason(self) -> &'static str {
        match self {
            Busy::QueueFull => "queue_full",
            Busy::WaitedTooLong => "waited_too_long",
        }
    }
}

/// The slots and the queue.
#[derive(Debug)]
pub struct Admission {
    settings: AdmissionSettings,
    /// Processing slots.
    slots: Arc<Semaphore>,
    /// Places for requests taken in (processing or waiting): bounds the
    /// queue, and counts what a stop must wait for.
    places: Arc<Semaphore>,
}

/// A request taken in, before it has a slot: holds its place (released
/// when dropped).
#[derive(Debug)]
pub struct Place {
    _permit: OwnedSemaphorePermit,
}

/// A request being processed: holds its slot and its place.
#[derive(Debug)]
pub struct Slot {
    _slot: OwnedSemaphorePermit,
    _place: Place,
}

impl Admission {
    pub fn new(settings: AdmissionSettings) -> Admission {
        let max_in_flight = settings.max_in_flight.max(1);
        Admission {
            settings: AdmissionSettings {
                max_in_flight,
                ..settings
            },
            slots: Arc::new(Semaphore::new(max_in_flight as usize)),
            places: Arc::new(Semaphore::new(places(settings) as usize)),
        }
    }

    /// Takes a request in, if the queue has room; never waits.
    pub fn enter(&self) -> Result<Place, Busy> {
        self.places
            .clone()
            .try_acquire_owned()
            .map(|permit| Place { _permit: permit })
            .map_err(|_| Busy::QueueFull)
    }

    /// A slot for a request received at `received`, waiting until the
    /// host's limit or the caller's `deadline`, whichever comes first. A
    /// request refused keeps its place until it has been answered.
    pub async fn slot(
        &self,
        place: Place,
        received: Instant,
        deadline: Option<Instant>,
    ) -> Result<Slot, (Busy, Place)> {
        // The common case, with a slot free, takes no timer.
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(Slot {
                _slot: slot,
                _place: place,
            });
        }
        let limit = received + self.settings.max_wait;
        let until = deadline.map_or(limit, |d| d.min(limit));
        match tokio::time::timeout_at(until, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(Slot {
                _slot: slot,
                _place: place,
            }),
            // Timed out, or the semaphore was closed (never done).
            _ => Err((Busy::WaitedTooLong, place)),
        }
    }

    /// Requests being processed now.
    pub fn in_flight(&self) -> usize {
        (self.settings.max_in_flight as usize).saturating_sub(self.slots.available_permits())
    }

    /// Requests taken in (processing or waiting) now.
    pub fn taken(&self) -> usize {
        (places(self.settings) as usize).saturating_sub(self.places.available_permits())
    }

    /// Waits until every request taken in has been answered.
    pub async fn finished(&self) {
        let _ = self.places.acquire_many(places(self.settings)).await;
    }
}

fn places(settings: AdmissionSettings) -> u32 {
    settings
        .max_in_flight
        .max(1)
        .saturating_add(settings.max_waiting)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_in_flight: u32, max_waiting: u32, max_wait_ms: u64) -> Admission {
        Admission::new(AdmissionSettings {
            max_in_flight,
            max_waiting,
            max_wait: Duration::from_millis(max_wait_ms),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_for_a_slot_and_gets_the_one_freed() {
        let admission = admission(1, 1, 1_000);
        let first = admission
            .slot(admission.enter().expect("room"), Instant::now(), None)
            .await
            .expect("a free slot");
        let place = admission.enter().expect("room to wait");
        let received = Instant::now();
        let (slot, ()) = tokio::join!(admission.slot(place, received, None), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(first);
        });
        assert!(slot.is_ok());
        assert_eq!(received.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_queue_the_answer_is_immediate() {
        let admission = admission(1, 1, 1_000);
        let _processing = admission.enter().expect("room");
        let _waiting = admission.enter().expect("room to wait");
        assert_eq!(admission.enter().err(), Some(Busy::QueueFull));
        assert_eq!(admission.taken(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_at_the_hosts_limit_or_the_callers_deadline() {
        let admission = admission(1, 2, 1_000);
        let _held = admission
            .slot(admission.enter().expect("room"), Instant::now(), None)
            .await
            .expect("a free slot");
        let received = Instant::now();
        let waited = admission
            .slot(admission.enter().expect("room"), received, None)
            .await;
        assert_eq!(
            waited.err().map(|(busy, _)| busy),
            Some(Busy::WaitedTooLong)
        );
        assert_eq!(received.elapsed(), Duration::from_millis(1_000));

        let received = Instant::now();
        let deadline = received + Duration::from_millis(150);
        let waited = admission
            .slot(admission.enter().expect("room"), received, Some(deadline))
            .await;
        assert_eq!(
            waited.err().map(|(busy, _)| busy),
            Some(Busy::WaitedTooLong)
        );
        assert_eq!(received.elapsed(), Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn finished_waits_for_waiting_requests_too() {
        let admission = Arc::new(admission(1, 1, 60_000));
        let held = admission
            .slot(admission.enter().expect("room"), Instant::now(), None)
            .await
            .expect("a free slot");
        let place = admission.enter().expect("room to wait");
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.slot(place, Instant::now(), None).await.is_ok() })
        };
        let finished = tokio::time::timeout(Duration::from_secs(1), admission.finished()).await;
        assert!(finished.is_err(), "requests taken in hold the stop");
        drop(held);
        assert!(
            waiter.await.unwrap_or(false),
            "the waiting request got the slot"
        );
        tokio::time::timeout(Duration::from_secs(1), admission.finished())
            .await
            .expect("nothing left once both are answered");
    }
}
