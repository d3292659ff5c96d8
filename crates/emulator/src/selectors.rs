//! Label and field selectors (`labelSelector=`, `fieldSelector=` query
//! parameters) with the grammar of `k8s.io/apimachinery/pkg/labels` and
//! `.../fields`.

use std::collections::BTreeMap;

/// A selector parse error (rendered as 400 BadRequest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The selector text is malformed.
    #[error("unable to parse requirement: {0}")]
    Parse(String),
    /// A field selector names an unsupported field.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// A label selector operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelOp {
    /// `k=v` / `k==v` / `k in (v1,v2)`.
    In(Vec<String>),
    /// `k!=v` / `k notin (v1,v2)` (also true when the label is absent).
    NotIn(Vec<String>),
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
    /// `k>n`.
    Gt(i64),
    /// `k<n`.
    Lt(i64),
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    /// The label key.
    pub key: String,
    /// The operator and values.
    pub op: LabelOp,
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// All requirements must hold.
    pub requirements: Vec<LabelRequirement>,
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|p| p.trim().to_string()).collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Parse(format!("{whole}: found '{rest}', expected: '('")))?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if vals.iter().any(|v| !valid_value(v)) {
        return Err(SelectorError::Parse(format!(
            "{whole}: invalid label value"
        )));
    }
    Ok(vals)
}

impl LabelSelector {
    /// Parse `labelSelector` text.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector { requirements });
        }
        for part in split_top_level(s) {
            if part.is_empty() {
                return Err(SelectorError::Parse(format!(
                    "{s}: found '', expected: identifier"
                )));
            }
            let req = if let Some(k) = part.strip_prefix('!') {
                LabelRequirement {
                    key: k.trim().to_string(),
                    op: LabelOp::DoesNotExist,
                }
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelRequirement {
                    key: k.trim().to_string(),
                    op: LabelOp::NotIn(vec![v.trim().to_string()]),
                }
            } else if let Some((k, v)) = part.split_once("==") {
                LabelRequirement {
                    key: k.trim().to_string(),
                    op: LabelOp::In(vec![v.trim().to_string()]),
                }
            } else if let Some((k, v)) = part.split_once('=') {
                LabelRequirement {
                    key: k.trim().to_string(),
                    op: LabelOp::In(vec![v.trim().to_string()]),
                }
            } else if let Some((k, v)) = part.split_once(" notin ") {
                LabelRequirement {
                    key: k.trim().to_string(),
                    op: LabelOp::NotIn(parse_set(v, &part)?),
                }
            } else if let Some((k, v)) = part.split_once(" in ") {
                LabelRequirement {
                    key: k.trim().to_string(),
                    op: LabelOp::In(parse_set(v, &part)?),
                }
            } else if let Some((k, v)) = part.split_once('>') {
                let n = v.trim().parse().map_err(|_| {
                    SelectorError::Parse(format!(
                        "{part}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ))
                })?;
                LabelRequirement {
                    key: k.trim().to_string(),
                    op: LabelOp::Gt(n),
                }
            } else if let Some((k, v)) = part.split_once('<') {
                let n = v.trim().parse().map_err(|_| {
                    SelectorError::Parse(format!(
                        "{part}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ))
                })?;
                LabelRequirement {
                    key: k.trim().to_string(),
                    op: LabelOp::Lt(n),
                }
            } else {
                LabelRequirement {
                    key: part.trim().to_string(),
                    op: LabelOp::Exists,
                }
            };
            if !valid_key(&req.key) {
                return Err(SelectorError::Parse(format!(
                    "{part}: invalid label key {:?}",
                    req.key
                )));
            }
            if let LabelOp::In(v) | LabelOp::NotIn(v) = &req.op {
                if v.iter().any(|x| !valid_value(x)) {
                    return Err(SelectorError::Parse(format!("{part}: invalid label value")));
                }
            }
            requirements.push(req);
        }
        Ok(LabelSelector { requirements })
    }

    /// Build from a `metav1.LabelSelector` JSON (`matchLabels` + `matchExpressions`).
    pub fn from_label_selector_json(v: &serde_json::Value) -> Self {
        let mut requirements = Vec::new();
        if let Some(m) = v.get("matchLabels").and_then(|m| m.as_object()) {
            for (k, val) in m {
                requirements.push(LabelRequirement {
                    key: k.clone(),
                    op: LabelOp::In(vec![val.as_str().unwrap_or_default().to_string()]),
                });
            }
        }
        if let Some(exprs) = v.get("matchExpressions").and_then(|m| m.as_array()) {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or_default().to_string();
                let vals: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let op = match e["operator"].as_str().unwrap_or_default() {
                    "In" => LabelOp::In(vals),
                    "NotIn" => LabelOp::NotIn(vals),
                    "Exists" => LabelOp::Exists,
                    _ => LabelOp::DoesNotExist,
                };
                requirements.push(LabelRequirement { key, op });
            }
        }
        LabelSelector { requirements }
    }

    /// Whether the selector is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Render as selector text (`a=b,c in (d,e)`), as in `Scale.status.selector`.
    pub fn to_text(&self) -> String {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match &r.op {
                LabelOp::In(v) if v.len() == 1 => format!("{}={}", r.key, v[0]),
                LabelOp::In(v) => format!("{} in ({})", r.key, v.join(",")),
                LabelOp::NotIn(v) if v.len() == 1 => format!("{}!={}", r.key, v[0]),
                LabelOp::NotIn(v) => format!("{} notin ({})", r.key, v.join(",")),
                LabelOp::Exists => r.key.clone(),
                LabelOp::DoesNotExist => format!("!{}", r.key),
                LabelOp::Gt(n) => format!("{}>{n}", r.key),
                LabelOp::Lt(n) => format!("{}<{n}", r.key),
            })
            .collect();
        parts.join(",")
    }

    /// Whether a label set matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let v = labels.get(&r.key);
            match &r.op {
                LabelOp::In(vals) => v.is_some_and(|v| vals.contains(v)),
                LabelOp::NotIn(vals) => v.is_none_or(|v| !vals.contains(v)),
                LabelOp::Exists => v.is_some(),
                LabelOp::DoesNotExist => v.is_none(),
                LabelOp::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                LabelOp::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }
}

/// One field selector requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Field label, e.g. `status.phase`.
    pub field: String,
    /// Expected value.
    pub value: String,
    /// `!=` instead of `=`.
    pub negate: bool,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    /// All requirements must hold.
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parse `fieldSelector` text; `supported` says whether a field label is served.
    pub fn parse(s: &str, supported: impl Fn(&str) -> bool) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector { requirements });
        }
        for part in s.split(',') {
            let (field, value, negate) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, true)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, v, false)
            } else {
                return Err(SelectorError::Parse(format!(
                    "invalid field selector: '{part}': does not contain an operator"
                )));
            };
            let field = field.trim().to_string();
            if !supported(&field) {
                return Err(SelectorError::UnsupportedField(field));
            }
            requirements.push(FieldRequirement {
                field,
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the selector is empty.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The fields this selector needs.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// Whether an object matches; `get` returns a field's value (`""` when absent).
    pub fn matches(&self, get: impl Fn(&str) -> String) -> bool {
        self.requirements
            .iter()
            .all(|r| (get(&r.field) == r.value) != r.negate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_operators() {
        let l = labels(&[("app", "web"), ("tier", "fe"), ("n", "5")]);
        let m = |s: &str| LabelSelector::parse(s).map(|sel| sel.matches(&l));
        assert_eq!(m("app=web"), Ok(true));
        assert_eq!(m("app==web"), Ok(true));
        assert_eq!(m("app!=web"), Ok(false));
        assert_eq!(m("app!=db"), Ok(true));
        assert_eq!(m("missing!=x"), Ok(true));
        assert_eq!(m("app in (db, web)"), Ok(true));
        assert_eq!(m("app notin (db,web)"), Ok(false));
        assert_eq!(m("tier,app=web"), Ok(true));
        assert_eq!(m("!tier"), Ok(false));
        assert_eq!(m("!missing"), Ok(true));
        assert_eq!(m("missing"), Ok(false));
        assert_eq!(m("n>4,n<6"), Ok(true));
        assert_eq!(m("app in (web),tier notin (be)"), Ok(true));
        assert_eq!(m(""), Ok(true));
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a=b,,c").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn label_selector_json_and_text() {
        let v = serde_json::json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]});
        let s = LabelSelector::from_label_selector_json(&v);
        assert_eq!(s.to_text(), "app=web,tier in (a,b)");
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "b")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
    }

    #[test]
    fn field_selectors() {
        let ok = |f: &str| f == "status.phase" || f == "metadata.name";
        let s = FieldSelector::parse("status.phase=Running,metadata.name!=x", ok);
        let s = s.unwrap_or_default();
        assert_eq!(s.requirements.len(), 2);
        assert!(s.matches(|f| if f == "status.phase" {
            "Running".into()
        } else {
            "y".into()
        }));
        assert!(!s.matches(|_| "x".into()));
        assert_eq!(
            FieldSelector::parse("spec.foo=1", ok),
            Err(SelectorError::UnsupportedField("spec.foo".into()))
        );
        assert!(FieldSelector::parse("nonsense", ok).is_err());
    }
}
