//! The installed-state check repeated on an interval, each change published
//! on a watch channel (what the operator's approvals gate reads).

use std::time::Duration;

use kube::Client;

use super::installed::{check_installed_for, PolicyState};

/// Check now, then every `interval`, publishing each change of the state;
/// the task ends when every receiver is dropped.
pub async fn watch_state(
    client: Client,
    interval: Duration,
) -> tokio::sync::watch::Receiver<PolicyState> {
    watch_state_instance(client, interval, None).await
}

/// [`watch_state`] of one installation (see [`check_installed_instance`]).
pub async fn watch_state_instance(
    client: Client,
    interval: Duration,
    instance: Option<String>,
) -> tokio::sync::watch::Receiver<PolicyState> {
    watch_state_for(client, interval, instance, None).await
}

/// [`watch_state_instance`] requiring the binding to cover `namespaces`
/// (see [`check_installed_for`]): what the operator uses, with the
/// namespaces it watches.
pub async fn watch_state_for(
    client: Client,
    interval: Duration,
    instance: Option<String>,
    namespaces: Option<Vec<String>>,
) -> tokio::sync::watch::Receiver<PolicyState> {
    let first = check_installed_for(&client, instance.as_deref(), namespaces.as_deref()).await;
    let (tx, rx) = tokio::sync::watch::channel(first);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let state =
                check_installed_for(&client, instance.as_deref(), namespaces.as_deref()).await;
            tx.send_if_modified(|current| {
                if *current == state {
                    false
                } else {
                    tracing::info!(%state, "admission policy state changed");
                    *current = state;
                    true
                }
            });
        }
    });
    rx
}
