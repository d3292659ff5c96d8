//! Pod logs served from the shared log store.

use crate::harness::env;
use crate::util::{api_err, pod};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};

#[tokio::test]
async fn pod_logs_with_previous_tail_and_container() {
    let Some(e) = env("pod_logs").await else {
        return;
    };
    let Some(emu) = e.emulator("pod_logs_with_previous_tail_and_container") else {
        return e.finish().await;
    };
    let pods: Api<Pod> = e.api();
    pods.create(&PostParams::default(), &pod("p", &[]))
        .await
        .expect("pod");
    let logs = emu.pod_logs();
    logs.append(&e.ns, "p", "app", "one");
    logs.append(&e.ns, "p", "app", "two");
    assert_eq!(
        pods.logs("p", &LogParams::default()).await.expect("logs"),
        "one\ntwo\n"
    );
    let err = api_err(
        pods.logs(
            "p",
            &LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(err.code, 400);
    logs.restart(&e.ns, "p", "app");
    logs.append(&e.ns, "p", "app", "three");
    let prev = pods
        .logs(
            "p",
            &LogParams {
                previous: true,
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("previous");
    assert_eq!(prev, "two\n");
    let cur = pods
        .logs(
            "p",
            &LogParams {
                container: Some("app".into()),
                ..Default::default()
            },
        )
        .await
        .expect("current");
    assert_eq!(cur, "three\n");
    let err = api_err(
        pods.logs(
            "p",
            &LogParams {
                container: Some("nope".into()),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(err.code, 400);
    assert_eq!(
        api_err(pods.logs("missing", &LogParams::default()).await).code,
        404
    );
    e.finish().await;
}
