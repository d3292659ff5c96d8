//! Scale behaviour (emulator only): large paginated lists and watch event
//! throughput. The default sizes keep the debug-build test suite fast; the
//! `#[ignore]`d variants use the sizes of the benchmark (100k pods).

use crate::harness::{emu_config, env_with};
use emulator::EmulatorConfig;
use emulator::WriteCtx;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use serde_json::json;
use std::time::Instant;

fn bulk_load(emu: &emulator::Emulator, ns: &str, n: usize) {
    let store = emu.store();
    let def = store.def("", "pods").expect("pods served");
    let ctx = WriteCtx {
        verb: "create",
        subresource: None,
        field_manager: None,
        dry_run: false,
        api_version: "v1".into(),
    };
    for i in 0..n {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{i:06}"), "labels": {"app": format!("app-{}", i % 10)}},
            "spec": {"nodeName": format!("node-{}", i % 3), "containers": [{"name": "app", "image": "nginx:1.25"}]}});
        store.create(&def, ns, pod, &ctx).expect("create");
    }
}

async fn paginate(pods: &Api<Pod>, n: usize) {
    let t = Instant::now();
    let mut seen = 0usize;
    let mut last: Option<String> = None;
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(500);
        if let Some(c) = &token {
            lp = lp.continue_token(c);
        }
        let page = pods.list(&lp).await.expect("page");
        for p in &page.items {
            let name = p.metadata.name.clone().unwrap_or_default();
            assert!(
                last.as_ref().is_none_or(|l| *l < name),
                "sorted, no duplicates"
            );
            last = Some(name);
            seen += 1;
        }
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, n);
    eprintln!("listed {n} pods in pages of 500 in {:?}", t.elapsed());
    let t = Instant::now();
    let sel = pods
        .list(
            &ListParams::default()
                .labels("app=app-3")
                .fields("spec.nodeName=node-1"),
        )
        .await
        .expect("filtered");
    assert!(sel
        .items
        .iter()
        .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-1")));
    eprintln!("filtered list of {} in {:?}", sel.items.len(), t.elapsed());
}

async fn watch_throughput(pods: &Api<Pod>, from_rv: &str, n: usize) {
    let t = Instant::now();
    let mut s = pods
        .watch(&WatchParams::default().timeout(120), from_rv)
        .await
        .expect("watch")
        .boxed();
    let mut count = 0;
    while count < n {
        match s.next().await {
            Some(Ok(WatchEvent::Added(_))) => count += 1,
            Some(Ok(WatchEvent::Bookmark(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "watched {n} events in {secs:.2}s ({:.0}/s, including client decoding)",
        n as f64 / secs
    );
}

async fn run(n: usize) {
    // History large enough to replay every creation.
    let cfg = EmulatorConfig {
        watch_history: n + 1000,
        ..emu_config()
    };
    let Some(e) = env_with("perf", cfg).await else {
        return;
    };
    let Some(emu) = e.emulator("perf") else {
        return e.finish().await;
    };
    let rv = emu.resource_version().to_string();
    let t = Instant::now();
    bulk_load(emu, &e.ns, n);
    eprintln!("stored {n} pods in {:?}", t.elapsed());
    let pods: Api<Pod> = e.api();
    paginate(&pods, n).await;
    watch_throughput(&pods, &rv, n).await;
    e.finish().await;
}

#[tokio::test]
async fn paginated_list_and_watch_replay() {
    run(3_000).await;
}

#[tokio::test]
#[ignore]
async fn hundred_thousand_pods() {
    run(100_000).await;
}
