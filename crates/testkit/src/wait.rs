//! Waiting for a condition: poll, never sleep a fixed time.

use std::future::Future;
use std::time::Duration;

/// Poll `f` every 50 ms until it returns `Some`, or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`wait_for`] with the timeout in whole seconds.
pub async fn eventually<T, F, Fut>(secs: u64, f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for(Duration::from_secs(secs), f).await
}
