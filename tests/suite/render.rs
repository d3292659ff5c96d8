//! Render the Helm chart with `.ci/render-chart.py` (Helm's Go SDK via
//! helm-python-sdk). Without helm-python-sdk the chart tests say they were
//! skipped, except in CI (`CI` set), where `.ci/run` installs it and a
//! missing renderer is a failure.

#![allow(dead_code)] // each test crate uses part of it

use std::process::Command;

pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/kube-incident");
pub const RELEASE_NAMESPACE: &str = "kube-incident-system";

/// Every rendered object, or None when the renderer is not installed here.
pub fn render(values: &[&str], set_json: Option<&str>) -> Option<Vec<serde_yaml::Value>> {
    let text = render_text(values, set_json)?;
    let docs = split_docs(&text);
    assert!(!docs.is_empty(), "the chart rendered nothing");
    Some(docs)
}

/// The raw multi-document YAML.
pub fn render_text(values: &[&str], set_json: Option<&str>) -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/render-chart.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(["--namespace", RELEASE_NAMESPACE]);
    for v in values {
        cmd.arg("--values").arg(format!("{CHART}/{v}"));
    }
    if let Some(j) = set_json {
        cmd.args(["--set-json", j]);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return unavailable(&format!("cannot run python3: {e}")),
    };
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    match out.status.code() {
        Some(0) => Some(String::from_utf8(out.stdout).expect("rendered YAML is UTF-8")),
        Some(3) => unavailable(&stderr),
        _ => panic!("rendering the chart with {values:?} {set_json:?} failed: {stderr}"),
    }
}

/// Render expecting failure; returns the error text (None: renderer missing).
pub fn render_error(values: &[&str], set_json: Option<&str>) -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/render-chart.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(["--namespace", RELEASE_NAMESPACE]);
    for v in values {
        cmd.arg("--values").arg(format!("{CHART}/{v}"));
    }
    if let Some(j) = set_json {
        cmd.args(["--set-json", j]);
    }
    let out = cmd.output().ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    match out.status.code() {
        Some(3) => unavailable(&stderr),
        Some(0) => panic!("rendering with {set_json:?} should have failed"),
        _ => Some(stderr),
    }
}

fn unavailable<T>(why: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("the chart renderer is required in CI: {why}");
    }
    eprintln!("SKIPPED: chart not rendered ({})", why.trim());
    None
}

pub fn split_docs(text: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn kind(v: &serde_yaml::Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

pub fn name(v: &serde_yaml::Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn namespace(v: &serde_yaml::Value) -> &str {
    v["metadata"]["namespace"].as_str().unwrap_or_default()
}
