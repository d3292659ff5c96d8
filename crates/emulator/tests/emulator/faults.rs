//! Fault injection (emulator only).

use crate::harness::env;
use crate::util::{api_err, cm};
use emulator::{FaultAction, FaultRule};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchParams};
use std::time::{Duration, Instant};

#[tokio::test]
async fn injected_errors_and_latency() {
    let Some(e) = env("faults").await else {
        return;
    };
    let Some(emu) = e.emulator("injected_errors_and_latency") else {
        return e.finish().await;
    };
    let f = emu.faults();
    let cms: Api<ConfigMap> = e.api();
    cms.create(&PostParams::default(), &cm("x", &[]))
        .await
        .expect("cm");
    f.add(
        FaultRule::new(FaultAction::InternalError)
            .verb("get")
            .resource("configmaps")
            .name("x")
            .times(1),
    );
    let err = api_err(cms.get("x").await);
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    cms.get("x").await.expect("rule spent after one use");
    f.add(
        FaultRule::new(FaultAction::Conflict)
            .verb("create")
            .resource("configmaps")
            .times(1),
    );
    let err = api_err(cms.create(&PostParams::default(), &cm("y", &[])).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    let id = f.add(
        FaultRule::new(FaultAction::TooManyRequests {
            retry_after_secs: 7,
        })
        .verb("list"),
    );
    // Raw request without client retries, to see the status and Retry-After header.
    let mut cfg = kube::Config::new(emu.url().parse().expect("url"));
    cfg.default_retry = false;
    let raw = kube::Client::try_from(cfg).expect("client");
    let req = http::Request::get(format!("/api/v1/namespaces/{}/configmaps", e.ns))
        .body(Vec::new())
        .expect("request");
    let resp = raw
        .send(req.map(kube::client::Body::from))
        .await
        .expect("response");
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|h| h.to_str().ok()),
        Some("7")
    );
    assert!(f.remove(id));
    // kube-rs honours Retry-After: two 429s then success.
    f.add(
        FaultRule::new(FaultAction::TooManyRequests {
            retry_after_secs: 1,
        })
        .verb("list")
        .times(2),
    );
    let t = Instant::now();
    cms.list(&Default::default())
        .await
        .expect("list succeeds after retries");
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    f.add(
        FaultRule::new(FaultAction::Latency(Duration::from_millis(300)))
            .verb("get")
            .probability(1.0),
    );
    let t = Instant::now();
    cms.get("x").await.expect("slow get");
    assert!(t.elapsed() >= Duration::from_millis(300));
    f.clear();
    cms.get("x")
        .await
        .expect("get after the faults are cleared");
    e.finish().await;
}

#[tokio::test]
async fn drop_watches_closes_streams() {
    let Some(e) = env("drop_watches").await else {
        return;
    };
    let Some(emu) = e.emulator("drop_watches_closes_streams") else {
        return e.finish().await;
    };
    let cms: Api<ConfigMap> = e.api();
    let mut s = cms
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .expect("watch")
        .boxed();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("initial ADDED");
    emu.faults().drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = s.next().await {
            if ev.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "stream closed promptly");
    e.finish().await;
}
