//! Evidence kept with an Incident: the tail of the previous container logs
//! of failing pods, recent Events, the Deployment's rollout history.
//! Pure: the caps, the formatting, and the ConfigMap's data. The controller
//! (`src/controller/evidence.rs`) gathers the inputs.
//!
//! Caps (documented in docs/notifications.md, "Evidence"):
//! - pods: at most [`Caps::pods`] failing pods (flag `--evidence-pods`, default 3);
//! - logs: the last [`Caps::log_lines`] lines (default 50) of each container,
//!   at most [`Caps::log_bytes`] bytes each (default 8 KiB, cut at a line);
//! - events: the newest [`Caps::events`] Events (default 40);
//! - rollout history: the newest [`Caps::revisions`] revisions (default 10);
//! - each line taken from the cluster (an Event's message, a log's last
//!   line, a change-cause, a problem) at most [`LINE_BYTES`]; the summary,
//!   the Events and the rollout history at most [`PART_BYTES`] each;
//! - the whole ConfigMap (keys and values, as kube-apiserver counts its
//!   1 MiB limit): [`Caps::total_bytes`] (default 256 KiB, never more than
//!   [`MAX_TOTAL_BYTES`]); logs are cut first, newest kept; if the rest
//!   still does not fit, the largest parts are cut, each with a marker;
//! - time: before a mitigation's first workload write, collection waits at
//!   most [`Caps::max_wait`] (flag `--evidence-timeout`, default 5s); what
//!   it could not read by then is listed as missing (`missing.txt`).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::api::format_duration;

/// Size limits of an evidence ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    pub pods: usize,
    pub log_lines: i64,
    pub log_bytes: usize,
    pub events: usize,
    pub revisions: usize,
    pub total_bytes: usize,
    /// How long gathering may take; the rest is recorded as missing.
    pub max_wait: Duration,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            pods: 3,
            log_lines: 50,
            log_bytes: 8 * 1024,
            events: 40,
            revisions: 10,
            total_bytes: 256 * 1024,
            max_wait: Duration::from_secs(5),
        }
    }
}

/// kube-apiserver's limit on a ConfigMap's data (keys and values).
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;
/// The most [`Caps::total_bytes`] can allow: well within
/// [`CONFIGMAP_LIMIT`], with room for the object's metadata.
pub const MAX_TOTAL_BYTES: usize = 768 * 1024;
/// The most one line taken from the cluster keeps.
pub const LINE_BYTES: usize = 1024;
/// The most the summary, the Events and the rollout history keep each.
pub const PART_BYTES: usize = 64 * 1024;

/// The key of the summary in the ConfigMap.
pub const SUMMARY_KEY: &str = "summary.txt";
pub const EVENTS_KEY: &str = "events.txt";
pub const HISTORY_KEY: &str = "rollout-history.txt";
/// What should be in the evidence and is not, one line each (only present
/// when something is missing).
pub const MISSING_KEY: &str = "missing.txt";

/// The logs of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLogs {
    pub pod: String,
    pub container: String,
    /// Logs of the previous (terminated) instance, not the running one.
    pub previous: bool,
    /// The text, or why it could not be read.
    pub text: Result<String, String>,
}

/// One Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    pub time: Option<Timestamp>,
    pub type_: String,
    pub reason: String,
    /// `Pod/checkout-abc` or `Deployment/checkout`.
    pub object: String,
    pub message: String,
    pub count: i32,
}

/// One revision of a Deployment (from its ReplicaSets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub revision: i64,
    pub images: Vec<String>,
    pub change_cause: Option<String>,
    pub created: Option<Timestamp>,
    pub replicas: i32,
}

/// Everything gathered (inputs of [`build`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gathered {
    /// Why evidence was collected (`opened`, `severity SEV3 -> SEV2`).
    pub reason: String,
    pub target: String,
    pub logs: Vec<ContainerLogs>,
    pub events: Vec<EventLine>,
    pub history: Vec<Revision>,
    /// Problems while gathering (shown in the summary).
    pub problems: Vec<String>,
    /// Pieces of evidence that could not be captured (a read failed, or did
    /// not finish within [`Caps::max_wait`]), each with the reason.
    pub missing: Vec<String>,
}

/// The last `max_bytes` of `text`, cut at a line boundary, with a marker
/// when something was cut.
pub fn tail_bytes(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    let cut = match cut.find('\n') {
        Some(i) if i + 1 < cut.len() => &cut[i + 1..],
        _ => cut,
    };
    format!(
        "[… {} earlier bytes cut by the evidence cap …]\n{cut}",
        text.len() - cut.len()
    )
}

/// The first `max_bytes` of a one-line `text` (newlines flattened), with
/// `…` when something was cut.
pub fn clip_line(text: &str, max_bytes: usize) -> String {
    let flat = |t: &str| t.replace(['\n', '\r'], " ");
    if text.len() <= max_bytes {
        return flat(text);
    }
    let mut end = max_bytes.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", flat(&text[..end]))
}

/// The first `max_bytes` of `text` (cut at a line; the marker included),
/// with a marker when something was cut: for parts read top down (the
/// newest Events and revisions come first).
pub fn head_bytes(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    // Room for the marker (well under 96 bytes).
    let mut end = max_bytes.saturating_sub(96);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    let head = head.rfind('\n').map_or(head, |i| &head[..=i]);
    format!(
        "{head}[… {} later bytes cut by the evidence cap …]\n",
        text.len() - head.len()
    )
}

/// The size of a ConfigMap's data as kube-apiserver counts it against
/// [`CONFIGMAP_LIMIT`]: keys and values.
pub fn data_size(data: &BTreeMap<String, String>) -> usize {
    data.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Cut the largest parts of `data` until it holds at most `limit` bytes
/// (keys included), each cut marked: logs keep their end (the newest
/// lines), the rest their beginning. The summary is cut last.
pub fn fit_total(data: &mut BTreeMap<String, String>, limit: usize) {
    const SMALL: usize = 256;
    loop {
        let size = data_size(data);
        if size <= limit {
            return;
        }
        let excess = size - limit;
        let largest = |summary: bool| {
            data.iter()
                .filter(|(k, v)| (k.as_str() == SUMMARY_KEY) == summary && v.len() > SMALL)
                .max_by_key(|(_, v)| v.len())
                .map(|(k, v)| (k.clone(), v.len()))
        };
        let Some((key, len)) = largest(false).or_else(|| largest(true)) else {
            // Only small parts are left: drop the log excerpts, then stop.
            let logs: Vec<String> = data
                .keys()
                .filter(|k| k.starts_with("logs."))
                .cloned()
                .collect();
            if logs.is_empty() {
                return;
            }
            for k in logs {
                data.remove(&k);
            }
            continue;
        };
        // The marker needs room too (under 128 bytes).
        let keep = len.saturating_sub(excess + 128).max(SMALL / 2);
        let text = data.remove(&key).unwrap_or_default();
        let cut = if key.starts_with("logs.") {
            tail_bytes(&text, keep)
        } else {
            head_bytes(&text, keep)
        };
        data.insert(key, cut);
    }
}

/// A ConfigMap key for a container's logs (valid key characters only).
pub fn log_key(pod: &str, container: &str, previous: bool) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    format!(
        "logs.{}.{}{}.txt",
        clean(pod),
        clean(container),
        if previous { ".previous" } else { "" }
    )
}

fn age(now: Timestamp, t: Option<Timestamp>) -> String {
    match t {
        Some(t) => {
            let d = Duration::try_from(now.duration_since(t)).unwrap_or(Duration::ZERO);
            format_duration(Duration::from_secs(d.as_secs()))
        }
        None => "—".into(),
    }
}

/// Events, newest first, capped.
pub fn format_events(events: &[EventLine], caps: &Caps, now: Timestamp) -> String {
    let mut ev: Vec<&EventLine> = events.iter().collect();
    ev.sort_by(|a, b| b.time.cmp(&a.time).then(a.object.cmp(&b.object)));
    let total = ev.len();
    let mut out = String::from("AGE\tTYPE\tREASON\tOBJECT\tCOUNT\tMESSAGE\n");
    for e in ev.iter().take(caps.events) {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            age(now, e.time),
            e.type_,
            e.reason,
            e.object,
            e.count.max(1),
            clip_line(&e.message, LINE_BYTES)
        ));
    }
    if total > caps.events {
        out.push_str(&format!(
            "[… {} older events left out by the evidence cap]\n",
            total - caps.events
        ));
    }
    out
}

/// Rollout history, newest revision first, capped.
pub fn format_history(history: &[Revision], caps: &Caps, now: Timestamp) -> String {
    let mut h: Vec<&Revision> = history.iter().collect();
    h.sort_by_key(|r| std::cmp::Reverse(r.revision));
    let mut out = String::from("REVISION\tAGE\tREPLICAS\tIMAGES\tCHANGE-CAUSE\n");
    for r in h.iter().take(caps.revisions) {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            r.revision,
            age(now, r.created),
            r.replicas,
            clip_line(&r.images.join(","), LINE_BYTES),
            clip_line(r.change_cause.as_deref().unwrap_or("<none>"), LINE_BYTES)
        ));
    }
    if h.len() > caps.revisions {
        out.push_str(&format!(
            "[… {} older revisions left out by the evidence cap]\n",
            h.len() - caps.revisions
        ));
    }
    out
}

/// The ConfigMap's data.
pub fn build(g: &Gathered, caps: &Caps, now: Timestamp) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    let mut summary = format!(
        "Evidence for {}\ncollected at {} ({})\n",
        g.target,
        now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        g.reason
    );
    summary.push_str(&format!(
        "caps: {} pods, {} log lines / {} bytes per container, {} events, {} revisions, {} bytes total\n",
        caps.pods, caps.log_lines, caps.log_bytes, caps.events, caps.revisions, caps.total_bytes
    ));
    let newest = g.history.iter().max_by_key(|r| r.revision);
    if let Some(r) = newest {
        summary.push_str(&format!(
            "current revision: {} ({}), {} revisions known\n",
            r.revision,
            r.images.join(","),
            g.history.len()
        ));
    }
    let warnings = g.events.iter().filter(|e| e.type_ == "Warning").count();
    summary.push_str(&format!(
        "events: {} ({} warnings)\n",
        g.events.len(),
        warnings
    ));
    let mut logs = Vec::new();
    for l in &g.logs {
        let key = log_key(&l.pod, &l.container, l.previous);
        match &l.text {
            Ok(t) => {
                let last = t.lines().rev().find(|s| !s.trim().is_empty()).unwrap_or("");
                summary.push_str(&format!(
                    "logs: pod {} container {}{}: last line: {}\n",
                    l.pod,
                    l.container,
                    if l.previous {
                        " (previous instance)"
                    } else {
                        ""
                    },
                    clip_line(last, LINE_BYTES / 4)
                ));
                logs.push((key, tail_bytes(t, caps.log_bytes)));
            }
            Err(e) => summary.push_str(&format!(
                "logs: pod {} container {}: not available: {}\n",
                l.pod,
                l.container,
                clip_line(e, LINE_BYTES)
            )),
        }
    }
    for p in &g.problems {
        summary.push_str(&format!("problem: {}\n", clip_line(p, LINE_BYTES)));
    }
    for m in &g.missing {
        summary.push_str(&format!("missing: {}\n", clip_line(m, LINE_BYTES)));
    }
    summary.push_str(
        "keys: summary.txt, events.txt, rollout-history.txt, logs.<pod>.<container>[.previous].txt",
    );
    if !g.missing.is_empty() {
        summary.push_str(", missing.txt");
        let mut text: String = g
            .missing
            .iter()
            .map(|m| format!("{}\n", clip_line(m, LINE_BYTES)))
            .collect();
        let max = caps.log_bytes.min(PART_BYTES);
        if text.len() > max {
            text = tail_bytes(&text, max);
        }
        data.insert(MISSING_KEY.to_string(), text);
    }
    summary.push('\n');
    data.insert(SUMMARY_KEY.to_string(), head_bytes(&summary, PART_BYTES));
    data.insert(
        EVENTS_KEY.to_string(),
        head_bytes(&format_events(&g.events, caps, now), PART_BYTES),
    );
    data.insert(
        HISTORY_KEY.to_string(),
        head_bytes(&format_history(&g.history, caps, now), PART_BYTES),
    );
    // Total cap: logs are cut (last ones first) until it fits; then, if the
    // rest alone is too large, the largest parts.
    let limit = caps.total_bytes.min(MAX_TOTAL_BYTES);
    let fixed = data_size(&data);
    let mut budget = limit.saturating_sub(fixed);
    for (key, text) in logs {
        let text_len = text.len() + key.len();
        if text_len <= budget {
            budget -= text_len;
            data.insert(key, text);
        } else if budget > 256 + key.len() {
            let t = tail_bytes(&text, budget - 128 - key.len());
            budget = budget.saturating_sub(t.len() + key.len());
            data.insert(key, t);
        } else {
            budget = 0;
        }
    }
    fit_total(&mut data, limit);
    data
}

/// The short summary `kubectl incident describe` prints: the first lines
/// of `summary.txt`.
pub fn summary_lines(summary: &str, max: usize) -> Vec<String> {
    summary.lines().take(max).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_790_000_000).unwrap()
    }

    #[test]
    fn tail_keeps_whole_lines_and_marks_the_cut() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail_bytes(&text, 40);
        assert!(t.starts_with("[… "), "{t}");
        assert!(t.ends_with("line 99\n"));
        assert!(!t.contains("line 9\n") || t.contains("line 99"));
        let body = t.split_once('\n').unwrap().1;
        assert!(body.len() <= 40);
        assert!(body.starts_with("line "));
        assert_eq!(tail_bytes("short\n", 40), "short\n");
    }

    #[test]
    fn events_newest_first_and_capped() {
        let caps = Caps {
            events: 2,
            ..Default::default()
        };
        let ev = |s: i64, reason: &str| EventLine {
            time: Some(Timestamp::from_second(1_790_000_000 - s).unwrap()),
            type_: "Warning".into(),
            reason: reason.into(),
            object: "Pod/p".into(),
            message: "m".into(),
            count: 3,
        };
        let out = format_events(
            &[ev(300, "Old"), ev(10, "New"), ev(60, "Mid")],
            &caps,
            now(),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].starts_with("10s\tWarning\tNew"), "{out}");
        assert!(lines[2].contains("Mid"));
        assert!(lines[3].contains("1 older events left out"));
    }

    #[test]
    fn history_newest_first() {
        let r = |n: i64, img: &str| Revision {
            revision: n,
            images: vec![img.into()],
            change_cause: (n == 2).then(|| "deploy v2".into()),
            created: Some(Timestamp::from_second(1_790_000_000 - 3600 * n).unwrap()),
            replicas: if n == 2 { 4 } else { 0 },
        };
        let out = format_history(&[r(1, "app:v1"), r(2, "app:v2")], &Caps::default(), now());
        assert_eq!(
            out,
            "REVISION\tAGE\tREPLICAS\tIMAGES\tCHANGE-CAUSE\n2\t2h\t4\tapp:v2\tdeploy v2\n1\t1h\t0\tapp:v1\t<none>\n"
        );
    }

    #[test]
    fn build_respects_the_total_cap_and_summarizes() {
        let big: String = (0..5000).map(|i| format!("log line {i}\n")).collect();
        let g = Gathered {
            reason: "opened".into(),
            target: "Deployment shop/checkout".into(),
            logs: vec![
                ContainerLogs {
                    pod: "checkout-1".into(),
                    container: "app".into(),
                    previous: true,
                    text: Ok(big.clone()),
                },
                ContainerLogs {
                    pod: "checkout-2".into(),
                    container: "app".into(),
                    previous: true,
                    text: Err("previous terminated container not found".into()),
                },
            ],
            ..Default::default()
        };
        let caps = Caps {
            log_bytes: 4096,
            total_bytes: 3000,
            ..Default::default()
        };
        let data = build(&g, &caps, now());
        let total: usize = data.values().map(String::len).sum();
        assert!(total <= 3000, "{total}");
        let s = &data[SUMMARY_KEY];
        assert!(s.contains("last line: log line 4999"), "{s}");
        assert!(s.contains("checkout-2 container app: not available"), "{s}");
        let key = log_key("checkout-1", "app", true);
        assert_eq!(key, "logs.checkout-1.app.previous.txt");
        assert!(data[&key].ends_with("log line 4999\n"));
        assert!(!data.contains_key(MISSING_KEY), "nothing missing");
    }

    #[test]
    fn every_part_is_capped_and_the_whole_stays_far_below_the_object_limit() {
        // Everything as large as a hostile or broken cluster can make it.
        let huge_line = "x".repeat(20_000);
        let g = Gathered {
            reason: "opened".into(),
            target: "Deployment shop/checkout".into(),
            logs: (0..50)
                .map(|i| ContainerLogs {
                    pod: format!("checkout-{i}"),
                    container: "app".into(),
                    previous: true,
                    text: Ok(format!("{huge_line}\n{}\n", "y".repeat(20_000))),
                })
                .collect(),
            events: (0..500)
                .map(|i| EventLine {
                    time: None,
                    type_: "Warning".into(),
                    reason: "BackOff".into(),
                    object: format!("Pod/checkout-{i}"),
                    message: huge_line.clone(),
                    count: 1,
                })
                .collect(),
            history: (0..100)
                .map(|i| Revision {
                    revision: i,
                    images: vec![huge_line.clone()],
                    change_cause: Some(huge_line.clone()),
                    created: None,
                    replicas: 1,
                })
                .collect(),
            problems: vec![huge_line.clone(); 300],
            missing: vec![huge_line.clone(); 300],
        };
        // Even with caps raised past the object limit.
        let caps = Caps {
            events: 500,
            revisions: 100,
            log_bytes: 2 * CONFIGMAP_LIMIT,
            total_bytes: 10 * CONFIGMAP_LIMIT,
            ..Default::default()
        };
        let data = build(&g, &caps, now());
        let size = data_size(&data);
        assert!(size <= MAX_TOTAL_BYTES, "{size}");
        assert!(size < CONFIGMAP_LIMIT);
        for (k, v) in &data {
            if !k.starts_with("logs.") {
                assert!(v.len() <= PART_BYTES, "{k}: {}", v.len());
            }
        }
        assert!(data[SUMMARY_KEY].starts_with("Evidence for Deployment shop/checkout"));
        assert!(
            data[EVENTS_KEY].contains("later bytes cut by the evidence cap"),
            "the cut is marked"
        );
        // The default caps: within their 256 KiB.
        let data = build(&g, &Caps::default(), now());
        assert!(data_size(&data) <= 256 * 1024, "{}", data_size(&data));
    }

    #[test]
    fn the_total_cap_cuts_the_largest_parts_with_a_marker() {
        let mut data = BTreeMap::from([
            (SUMMARY_KEY.to_string(), "summary\n".repeat(100)),
            (EVENTS_KEY.to_string(), "event line\n".repeat(2000)),
            (
                "logs.p.app.txt".to_string(),
                (0..2000).map(|i| format!("log {i}\n")).collect(),
            ),
        ]);
        fit_total(&mut data, 8 * 1024);
        assert!(data_size(&data) <= 8 * 1024, "{}", data_size(&data));
        assert!(
            data[EVENTS_KEY].starts_with("event line\n"),
            "events keep their head"
        );
        assert!(data[EVENTS_KEY].ends_with("later bytes cut by the evidence cap …]\n"));
        let logs = &data["logs.p.app.txt"];
        assert!(logs.ends_with("log 1999\n"), "logs keep their end");
        assert!(logs.starts_with("[… "), "{logs}");
        assert_eq!(data[SUMMARY_KEY], "summary\n".repeat(100), "summary kept");
        assert_eq!(clip_line("a\nb", 10), "a b");
        assert_eq!(clip_line(&"é".repeat(10), 8), "éé…");
    }

    #[test]
    fn what_could_not_be_captured_is_listed_as_missing() {
        let g = Gathered {
            reason: "before mitigation \"rollback\"".into(),
            target: "Deployment shop/checkout".into(),
            events: vec![EventLine {
                time: None,
                type_: "Warning".into(),
                reason: "BackOff".into(),
                object: "Pod/checkout-1".into(),
                message: "Back-off restarting failed container".into(),
                count: 4,
            }],
            missing: vec![
                "logs of pod checkout-1 container app: not captured within 5s".into(),
                "events of Deployment/checkout: not captured within 5s".into(),
            ],
            ..Default::default()
        };
        let data = build(&g, &Caps::default(), now());
        assert_eq!(
            data[MISSING_KEY],
            "logs of pod checkout-1 container app: not captured within 5s\nevents of Deployment/checkout: not captured within 5s\n"
        );
        let s = &data[SUMMARY_KEY];
        assert!(
            s.contains("missing: logs of pod checkout-1 container app: not captured within 5s"),
            "{s}"
        );
        assert!(s.contains("missing.txt"), "{s}");
        // What was captured is kept.
        assert!(data[EVENTS_KEY].contains("BackOff"));
    }
}
