//! How durations read in the benchmark's output.

use std::time::Duration;

/// A duration in milliseconds, with the digits that matter.
pub fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Signed nanoseconds in milliseconds.
pub fn signed_millis(nanos: i64) -> String {
    let text = millis(Duration::from_nanos(nanos.unsigned_abs()));
    if nanos < 0 {
        format!("−{text}")
    } else {
        text
    }
}
