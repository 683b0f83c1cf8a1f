//! Bounded waits of the tests: a future that must finish within a limit, and a condition that
//! must come true within one. Every wait ends; nothing asserts how long something took.

use std::time::{Duration, Instant};

/// Awaits `f`, at most `limit`; panics naming `what` if it did not finish.
pub async fn bounded<T>(limit: Duration, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

/// Polls `done` every 10 ms until it holds, at most `limit`; false if it never did.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let every = Duration::from_millis(10);
    let deadline = tokio::time::Instant::now() + limit;
    let tries = limit.as_millis() / every.as_millis() + 1;
    for _ in 0..tries {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(every).await;
    }
    done()
}

/// Polls `f` every `every` until it holds, at most `bound`; Err names `what`.
pub fn wait_until(
    bound: Duration,
    every: Duration,
    what: &str,
    mut f: impl FnMut() -> bool,
) -> Result<(), String> {
    let until = Instant::now() + bound;
    while Instant::now() < until {
        if f() {
            return Ok(());
        }
        std::thread::sleep(every);
    }
    Err(format!("timed out waiting for: {what}"))
}
