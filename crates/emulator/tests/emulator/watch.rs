//! Watch semantics: resume from a resourceVersion, bookmarks, timeouts,
//! initial events, streaming lists, and 410 Expired.

use crate::harness::{emu_config, env, env_with};
use crate::util::{cm, labelled, SET};
use emulator::EmulatorConfig;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;
use std::time::Duration;

fn name_of(ev: &WatchEvent<ConfigMap>) -> String {
    match ev {
        WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
            o.metadata.name.clone().unwrap_or_default()
        }
        WatchEvent::Bookmark(_) => "<bookmark>".into(),
        WatchEvent::Error(e) => format!("<error {}>", e.code),
    }
}

async fn next_event<S>(s: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("event within 5s")
        .expect("stream open")
        .expect("event ok")
}

#[tokio::test]
async fn watch_resumes_from_resource_version() {
    let Some(e) = env("watch_resume").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let a = cms
        .create(&PostParams::default(), &labelled("a"))
        .await
        .expect("a");
    let rv = a.metadata.resource_version.clone().expect("rv");
    cms.create(&PostParams::default(), &labelled("b"))
        .await
        .expect("b");
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .expect("patch");
    cms.delete("b", &Default::default()).await.expect("delete");
    let mut s = cms
        .watch(&WatchParams::default().labels(SET).timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = next_event(&mut s).await;
        let t = match &ev {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            _ => "OTHER",
        };
        seen.push(format!("{t} {}", name_of(&ev)));
    }
    assert_eq!(seen, vec!["ADDED b", "MODIFIED a", "DELETED b"]);
    // Live events follow.
    cms.create(&PostParams::default(), &labelled("c"))
        .await
        .expect("c");
    assert_eq!(name_of(&next_event(&mut s).await), "c");
    e.finish().await;
}

fn initial_end(ev: &WatchEvent<ConfigMap>) -> bool {
    matches!(ev, WatchEvent::Bookmark(b)
        if b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str) == Some("true"))
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_synthetic_added() {
    let Some(e) = env("watch_initial").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    cms.create(&PostParams::default(), &labelled("x"))
        .await
        .expect("x");
    cms.create(&PostParams::default(), &labelled("y"))
        .await
        .expect("y");
    // From "" (unset) and "0": synthetic ADDED events for what exists;
    // sendInitialEvents defaults to true there, so with bookmarks allowed
    // (kube-rs asks for them) the initial-events-end bookmark follows.
    for from in ["", "0"] {
        let mut s = cms
            .watch(&WatchParams::default().labels(SET).timeout(10), from)
            .await
            .expect("watch")
            .boxed();
        let mut names = Vec::new();
        loop {
            let ev = next_event(&mut s).await;
            if initial_end(&ev) {
                break;
            }
            match ev {
                WatchEvent::Added(_) => names.push(name_of(&ev)),
                other => panic!("from {from:?}: unexpected {other:?}"),
            }
        }
        if from == "0" {
            // "0" means any version: kube-apiserver's watch cache may be a
            // moment behind, and what it missed follows as live ADDED events.
            while names.len() < 2 {
                match next_event(&mut s).await {
                    ev @ WatchEvent::Added(_) => names.push(name_of(&ev)),
                    WatchEvent::Bookmark(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        names.sort();
        assert_eq!(names, vec!["x", "y"], "from {from:?}");
    }
    // Without bookmarks there is no such marker: the next event is live.
    let mut s = cms
        .watch(
            &WatchParams::default()
                .labels(SET)
                .timeout(10)
                .disable_bookmarks(),
            "0",
        )
        .await
        .expect("watch")
        .boxed();
    for _ in 0..2 {
        assert!(matches!(next_event(&mut s).await, WatchEvent::Added(_)));
    }
    cms.create(&PostParams::default(), &labelled("z"))
        .await
        .expect("z");
    assert_eq!(name_of(&next_event(&mut s).await), "z");
    e.finish().await;
}

#[tokio::test]
async fn watch_label_selector_transitions() {
    let Some(e) = env("watch_selector").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let list = cms.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("rv");
    let mut s = cms
        .watch(&WatchParams::default().labels("sel=yes").timeout(10), &rv)
        .await
        .expect("watch")
        .boxed();
    cms.create(&PostParams::default(), &cm("n", &[]))
        .await
        .expect("n");
    cms.patch(
        "n",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "yes"}}})),
    )
    .await
    .expect("label");
    cms.patch(
        "n",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "no"}}})),
    )
    .await
    .expect("unlabel");
    assert!(matches!(next_event(&mut s).await, WatchEvent::Added(_)));
    assert!(matches!(next_event(&mut s).await, WatchEvent::Deleted(_)));
    e.finish().await;
}

#[tokio::test]
async fn bookmarks_and_timeout() {
    let Some(e) = env("bookmarks").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut s = cms
        .watch(
            &WatchParams::default()
                .labels(SET)
                .timeout(2)
                .disable_bookmarks(),
            &rv,
        )
        .await
        .expect("watch")
        .boxed();
    // No events and no bookmarks: the server ends the stream after timeoutSeconds.
    let start = std::time::Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(8), s.next())
        .await
        .expect("stream ends");
    assert!(end.is_none(), "{end:?}");
    assert!(start.elapsed() >= Duration::from_millis(1500));
    if e.emu.is_some() {
        // Emulator only: its bookmark interval is shortened in the test
        // configuration (kube-apiserver sends one about once a minute).
        let mut s = cms
            .watch(&WatchParams::default().timeout(5), &rv)
            .await
            .expect("watch")
            .boxed();
        match next_event(&mut s).await {
            WatchEvent::Bookmark(b) => {
                let brv: u64 = b.metadata.resource_version.parse().expect("rv");
                assert!(brv >= rv.parse::<u64>().expect("rv"));
            }
            other => panic!("expected a bookmark, got {other:?}"),
        }
    }
    e.finish().await;
}

#[tokio::test]
async fn streaming_list_initial_events_end_bookmark() {
    let Some(e) = env("streaming_list").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    cms.create(&PostParams::default(), &labelled("s1"))
        .await
        .expect("s1");
    let wp = WatchParams::default()
        .labels(SET)
        .initial_events()
        .timeout(10);
    let wp = WatchParams {
        bookmarks: true,
        ..wp
    };
    let mut s = cms.watch(&wp, "").await.expect("watch").boxed();
    let mut added = Vec::new();
    loop {
        match next_event(&mut s).await {
            WatchEvent::Added(o) => added.push(o.metadata.name.unwrap_or_default()),
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(added, vec!["s1"]);
    e.finish().await;
}

#[tokio::test]
async fn too_old_resource_version_is_410_error_event() {
    let cfg = EmulatorConfig {
        watch_history: 5,
        ..emu_config()
    };
    let Some(e) = env_with("watch_410", cfg).await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    // resourceVersion 1 is older than any server's watch history: the
    // emulator keeps 5 events here (and these writes push rv 1 out), a
    // real kube-apiserver's watch cache starts where it was started.
    let rv = "1";
    for i in 0..10 {
        cms.create(&PostParams::default(), &cm(&format!("n{i}"), &[]))
            .await
            .expect("cm");
    }
    let mut s = cms
        .watch(&WatchParams::default().timeout(5), rv)
        .await
        .expect("HTTP 200")
        .boxed();
    match next_event(&mut s).await {
        WatchEvent::Error(st) => {
            assert_eq!((st.code, st.reason.as_str()), (410, "Expired"));
            assert!(
                st.message
                    .starts_with(&format!("too old resource version: {rv} (")),
                "{}",
                st.message
            );
        }
        other => panic!("expected ERROR 410, got {other:?}"),
    }
    e.finish().await;
}

async fn wait_for(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, want: &str) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(t) = rx.recv().await {
            if t == want {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {want}"))
}

#[tokio::test]
async fn watcher_relists_after_forced_410() {
    let Some(e) = env("watcher_410").await else {
        return;
    };
    let Some(emu) = e.emulator("watcher_relists_after_forced_410") else {
        return e.finish().await;
    };
    let cms: Api<ConfigMap> = e.api();
    let stream = watcher(cms.clone(), watcher::Config::default().timeout(30));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut s = stream.boxed();
        while let Ok(Some(ev)) = s.try_next().await {
            let tag = match ev {
                watcher::Event::Init => "init".to_string(),
                watcher::Event::InitApply(o) => {
                    format!("initapply {}", o.metadata.name.unwrap_or_default())
                }
                watcher::Event::InitDone => "initdone".to_string(),
                watcher::Event::Apply(o) => {
                    format!("apply {}", o.metadata.name.unwrap_or_default())
                }
                watcher::Event::Delete(o) => {
                    format!("delete {}", o.metadata.name.unwrap_or_default())
                }
            };
            if tx.send(tag).is_err() {
                break;
            }
        }
    });
    wait_for(&mut rx, "initdone").await;
    cms.create(&PostParams::default(), &cm("one", &[]))
        .await
        .expect("one");
    wait_for(&mut rx, "apply one").await;
    // Compact history and cut the connection: the resume gets 410, the
    // watcher relists and sees objects created meanwhile.
    emu.faults().force_watch_expiry(Some("configmaps"));
    cms.create(&PostParams::default(), &cm("two", &[]))
        .await
        .expect("two");
    wait_for(&mut rx, "init").await;
    wait_for(&mut rx, "initapply two").await;
    wait_for(&mut rx, "initdone").await;
    task.abort();
    e.finish().await;
}
