//! List semantics: label and field selectors, pagination with continue
//! tokens, list resourceVersion and resourceVersionMatch.

use crate::harness::{env, eventually};
use crate::util::{api_err, cm, labelled, pod, unscheduled_pod, SET};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, VersionMatch};
use serde_json::json;

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|k| k.meta().name.clone().unwrap_or_default())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn label_selectors() {
    let Some(e) = env("label_selectors").await else {
        return;
    };
    let pods: Api<Pod> = e.api();
    for (n, app, tier) in [
        ("a", "web", Some("fe")),
        ("b", "web", None),
        ("c", "db", Some("be")),
    ] {
        let mut labels = vec![("app", app)];
        if let Some(t) = tier {
            labels.push(("tier", t));
        }
        pods.create(&PostParams::default(), &pod(n, &labels))
            .await
            .expect("pod");
    }
    let sel = |s: &'static str| {
        let pods = pods.clone();
        async move {
            names(
                &pods
                    .list(&ListParams::default().labels(s))
                    .await
                    .expect("list")
                    .items,
            )
        }
    };
    assert_eq!(sel("app=web").await, vec!["a", "b"]);
    assert_eq!(sel("app==web").await, vec!["a", "b"]);
    assert_eq!(sel("app!=web").await, vec!["c"]);
    assert_eq!(sel("app in (db,web),tier").await, vec!["a", "c"]);
    assert_eq!(sel("tier notin (fe)").await, vec!["b", "c"]);
    assert_eq!(sel("!tier").await, vec!["b"]);
    assert_eq!(sel("tier").await, vec!["a", "c"]);
    let err = api_err(pods.list(&ListParams::default().labels("app in web")).await);
    assert_eq!(err.code, 400);
    e.finish().await;
}

#[tokio::test]
async fn field_selectors() {
    let Some(e) = env("field_selectors").await else {
        return;
    };
    let pods: Api<Pod> = e.api();
    // Pods no scheduler picks up: on a real cluster the scheduler would bind
    // them and the kubelet would set their phase.
    for n in ["p1", "p2"] {
        pods.create(&PostParams::default(), &unscheduled_pod(n, &[]))
            .await
            .expect("pod");
    }
    pods.patch_status(
        "p2",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .expect("status");
    let f = |s: &'static str| {
        let pods = pods.clone();
        async move {
            names(
                &pods
                    .list(&ListParams::default().fields(s))
                    .await
                    .expect("list")
                    .items,
            )
        }
    };
    assert_eq!(f("metadata.name=p1").await, vec!["p1"]);
    assert_eq!(f("status.phase=Running").await, vec!["p2"]);
    assert_eq!(f("status.phase!=Running").await, vec!["p1"]);
    assert_eq!(
        f(&*Box::leak(
            format!("metadata.namespace={}", e.ns).into_boxed_str()
        ))
        .await,
        vec!["p1", "p2"]
    );
    assert_eq!(f("spec.nodeName=").await, vec!["p1", "p2"]);
    let err = api_err(
        pods.list(&ListParams::default().fields("spec.bogus=1"))
            .await,
    );
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .contains("field label not supported: spec.bogus"),
        "{}",
        err.message
    );
    // Events by involvedObject (what kubectl describe uses).
    let events: Api<Event> = e.api();
    let ev: Event = serde_json::from_value(json!({"metadata": {"name": "ev1"},
        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": e.ns},
        "reason": "Started", "message": "m", "type": "Normal"}))
    .expect("event");
    events
        .create(&PostParams::default(), &ev)
        .await
        .expect("event");
    let got = events
        .list(&ListParams::default().fields("involvedObject.kind=Pod,involvedObject.name=p1"))
        .await
        .expect("events");
    assert_eq!(names(&got.items), vec!["ev1"]);
    let none = events
        .list(&ListParams::default().fields("involvedObject.name=p2"))
        .await
        .expect("events");
    assert!(none.items.is_empty());
    e.finish().await;
}

#[tokio::test]
async fn pagination_with_continue() {
    let Some(e) = env("pagination").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    // Labelled, and listed by label: a real cluster adds ConfigMaps of its
    // own to every namespace (kube-root-ca.crt, and more in some
    // distributions), asynchronously.
    for i in 0..25 {
        cms.create(&PostParams::default(), &labelled(&format!("cm-{i:02}")))
            .await
            .expect("cm");
    }
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    let mut first_rv = None;
    loop {
        let mut lp = ListParams::default().labels(SET).limit(10);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = cms.list(&lp).await.expect("page");
        pages += 1;
        if first_rv.is_none() {
            first_rv = page.metadata.resource_version.clone();
            // Written between pages: not visible in this (consistent) list.
            cms.create(&PostParams::default(), &labelled("cm-99"))
                .await
                .expect("late");
        } else {
            assert_eq!(
                page.metadata.resource_version, first_rv,
                "pages share the list resourceVersion"
            );
        }
        assert!(page.items.len() <= 10);
        all.extend(page.items);
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    let got = names(&all);
    assert_eq!(pages, 3);
    assert_eq!(got.len(), 25, "{got:?}");
    assert!(!got.contains(&"cm-99".to_string()));
    let err = api_err(
        cms.list(&ListParams::default().continue_token("not-a-token"))
            .await,
    );
    assert_eq!(err.code, 400);
    e.finish().await;
}

#[tokio::test]
async fn resource_version_match_on_list() {
    let Some(e) = env("rv_match").await else {
        return;
    };
    let cms: Api<ConfigMap> = e.api();
    cms.create(&PostParams::default(), &labelled("a"))
        .await
        .expect("a");
    let l1 = cms.list(&ListParams::default()).await.expect("list");
    let rv1 = l1.metadata.resource_version.clone().expect("rv");
    cms.create(&PostParams::default(), &labelled("b"))
        .await
        .expect("b");
    cms.delete("a", &Default::default())
        .await
        .expect("delete a");
    let exact = cms
        .list(
            &ListParams::default()
                .labels(SET)
                .at(&rv1)
                .matching(VersionMatch::Exact),
        )
        .await
        .expect("exact");
    assert_eq!(
        exact.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    assert_eq!(names(&exact.items), vec!["a"]);
    // NotOlderThan and "0" (any) may be served by a watch cache a moment
    // behind the latest write: at least rv1, and the latest state soon.
    let rv_of = |l: &kube::core::ObjectList<ConfigMap>| -> u64 {
        l.metadata
            .resource_version
            .as_deref()
            .unwrap_or("0")
            .parse()
            .expect("rv")
    };
    let rv1n: u64 = rv1.parse().expect("rv");
    for lp in [
        ListParams::default()
            .labels(SET)
            .at(&rv1)
            .matching(VersionMatch::NotOlderThan),
        ListParams::default().labels(SET).at("0"),
    ] {
        let latest = eventually(10, || {
            let (cms, lp) = (cms.clone(), lp.clone());
            async move {
                let l = cms.list(&lp).await.expect("list");
                assert!(rv_of(&l) >= rv1n, "not older than {rv1n}");
                (names(&l.items) == vec!["b"]).then_some(())
            }
        })
        .await;
        assert!(latest.is_some(), "{lp:?} reaches the latest state");
    }
    e.finish().await;
}

#[tokio::test]
async fn expired_continue_token_is_410() {
    let Some(e) = env("continue_expired").await else {
        return;
    };
    let Some(emu) = e.emulator("expired_continue_token_is_410") else {
        return e.finish().await;
    };
    let cms: Api<ConfigMap> = e.api();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), &[]))
            .await
            .expect("cm");
    }
    let page = cms
        .list(&ListParams::default().limit(2))
        .await
        .expect("page");
    let token = page.metadata.continue_.expect("continue");
    cms.create(&PostParams::default(), &cm("later", &[]))
        .await
        .expect("cm");
    emu.faults().expire_history(Some("configmaps"));
    let err = api_err(
        cms.list(&ListParams::default().limit(2).continue_token(&token))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
    assert!(
        err.message.contains("continue parameter is too old"),
        "{}",
        err.message
    );
    e.finish().await;
}
