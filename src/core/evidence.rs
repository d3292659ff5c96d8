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
//! - the whole ConfigMap: [`Caps::total_bytes`] (default 256 KiB, far below
//!   the 1 MiB object limit); logs are cut first, newest kept;
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
            e.message.replace('\n', " ")
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
            r.images.join(","),
            r.change_cause.as_deref().unwrap_or("<none>")
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
                    last
                ));
                logs.push((key, tail_bytes(t, caps.log_bytes)));
            }
            Err(e) => summary.push_str(&format!(
                "logs: pod {} container {}: not available: {e}\n",
                l.pod, l.container
            )),
        }
    }
    for p in &g.problems {
        summary.push_str(&format!("problem: {p}\n"));
    }
    for m in &g.missing {
        summary.push_str(&format!("missing: {m}\n"));
    }
    summary.push_str(
        "keys: summary.txt, events.txt, rollout-history.txt, logs.<pod>.<container>[.previous].txt",
    );
    if !g.missing.is_empty() {
        summary.push_str(", missing.txt");
        let mut text: String = g.missing.iter().map(|m| format!("{m}\n")).collect();
        if text.len() > caps.log_bytes {
            text = tail_bytes(&text, caps.log_bytes);
        }
        data.insert(MISSING_KEY.to_string(), text);
    }
    summary.push('\n');
    data.insert(SUMMARY_KEY.to_string(), summary);
    data.insert(EVENTS_KEY.to_string(), format_events(&g.events, caps, now));
    data.insert(
        HISTORY_KEY.to_string(),
        format_history(&g.history, caps, now),
    );
    // Total cap: logs are cut (last ones first) until it fits.
    let fixed: usize = data.values().map(String::len).sum();
    let mut budget = caps.total_bytes.saturating_sub(fixed);
    for (key, text) in logs {
        if text.len() <= budget {
            budget -= text.len();
            data.insert(key, text);
        } else if budget > 256 {
            let t = tail_bytes(&text, budget - 128);
            budget = budget.saturating_sub(t.len());
            data.insert(key, t);
        } else {
            budget = 0;
        }
    }
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
