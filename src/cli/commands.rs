//! The commands, as library functions over a [`Session`]: each returns the
//! text to print on stdout, or a [`CliError`].

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::args::{
    derive_name, random_suffix, validate_dns1123_subdomain, ApproveArgs, Command, DeclareArgs,
    ListArgs, NameArgs, OutputFormat, ResolveArgs,
};
use super::error::{one_line, CliError};
use super::format;
use super::identity::resolve_identity;
use super::session::{map_kube_error, Session};
use crate::api::{
    Approval, Incident, IncidentSource, IncidentSpec, Phase, StepState, GROUP, VERSION,
};

/// The field manager of every write the plugin makes.
pub const CLI_FIELD_MANAGER: &str = "kubectl-incident";

/// The ConfigMap key holding the post-mortem draft.
pub const POSTMORTEM_KEY: &str = "postmortem.md";

/// Run one command at the current time.
pub async fn run(command: &Command, session: &Session) -> Result<String, CliError> {
    run_at(command, session, Timestamp::now()).await
}

/// Run one command; `now` drives relative times in `list` and `describe`.
pub async fn run_at(
    command: &Command,
    session: &Session,
    now: Timestamp,
) -> Result<String, CliError> {
    match command {
        Command::List(args) => list(args, session, now).await,
        Command::Describe(args) => describe(args, session, now).await,
        Command::Declare(args) => declare(args, session).await,
        Command::Ack(args) => ack(args, session).await,
        Command::Approve(args) => approve(args, session).await,
        Command::Resolve(args) => resolve(args, session).await,
        Command::Postmortem(args) => postmortem(args, session).await,
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(CLI_FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// Is the Incident resource served? (discovery of `kubeincident.io/v1alpha1`)
async fn crd_installed(session: &Session) -> Result<bool, CliError> {
    match session
        .client
        .list_api_group_resources(&format!("{GROUP}/{VERSION}"))
        .await
    {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "incidents")),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(map_kube_error(e, &session.server_url)),
    }
}

/// Map an error of a request about the Incident `name` (or the list, when
/// `name` is `None`): a 404 is either the object or the whole CRD missing.
async fn incident_error(err: kube::Error, session: &Session, name: Option<&str>) -> CliError {
    match err {
        kube::Error::Api(status) if status.code == 404 => match crd_installed(session).await {
            Ok(false) => CliError::CrdNotInstalled,
            Err(e) => e,
            Ok(true) => match name {
                Some(name) => CliError::NotFound {
                    name: name.to_string(),
                    namespace: session.namespace.clone(),
                },
                None => CliError::Api {
                    code: 404,
                    message: one_line(&status.message),
                },
            },
        },
        other => map_kube_error(other, &session.server_url),
    }
}

fn incidents(session: &Session) -> Api<Incident> {
    Api::namespaced(session.client.clone(), &session.namespace)
}

/// Read one Incident.
pub async fn get_incident(session: &Session, name: &str) -> Result<Incident, CliError> {
    match incidents(session).get(name).await {
        Ok(inc) => Ok(inc),
        Err(e) => Err(incident_error(e, session, Some(name)).await),
    }
}

/// `list`.
pub async fn list(args: &ListArgs, session: &Session, now: Timestamp) -> Result<String, CliError> {
    let api: Api<Incident> = if args.all_namespaces {
        Api::all(session.client.clone())
    } else {
        incidents(session)
    };
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) => return Err(incident_error(e, session, None).await),
    };
    let mut items: Vec<Incident> = list
        .items
        .into_iter()
        .filter(|i| !(args.open && format::phase(i) == Some(Phase::Resolved)))
        .collect();
    format::sort_for_list(&mut items);
    match args.output {
        OutputFormat::Table if items.is_empty() => Ok(if args.all_namespaces {
            "No incidents found.\n".to_string()
        } else {
            format!("No incidents found in namespace {:?}.\n", session.namespace)
        }),
        OutputFormat::Table => Ok(format::list_table(&items, args.all_namespaces, now)),
        OutputFormat::Json => {
            let v = list_object(&items)?;
            serde_json::to_string_pretty(&v)
                .map(|s| s + "\n")
                .map_err(|e| CliError::Encode(e.to_string()))
        }
        OutputFormat::Yaml => {
            let v = list_object(&items)?;
            serde_yaml::to_string(&v).map_err(|e| CliError::Encode(e.to_string()))
        }
    }
}

/// A `v1` `List` of the Incidents as `kubectl get -o json` prints it:
/// `apiVersion`/`kind` on every item, `managedFields` left out.
fn list_object(items: &[Incident]) -> Result<serde_json::Value, CliError> {
    let mut out = Vec::new();
    for inc in items {
        let mut v = serde_json::to_value(inc).map_err(|e| CliError::Encode(e.to_string()))?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("apiVersion".into(), json!(format!("{GROUP}/{VERSION}")));
            obj.insert("kind".into(), json!("Incident"));
            if let Some(meta) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                meta.remove("managedFields");
            }
        }
        out.push(v);
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": out,
        "metadata": {"resourceVersion": ""},
    }))
}

/// `describe`.
pub async fn describe(
    args: &NameArgs,
    session: &Session,
    now: Timestamp,
) -> Result<String, CliError> {
    let inc = get_incident(session, &args.name).await?;
    let mut out = format::describe(&inc, now);
    out.push_str(&evidence_summary(&inc, session).await);
    Ok(out)
}

/// The first lines of the evidence ConfigMap's `summary.txt` and how to read
/// the rest (empty when there is no evidence or it cannot be read).
async fn evidence_summary(inc: &Incident, session: &Session) -> String {
    let Some(cm_name) = inc
        .status
        .as_ref()
        .and_then(|s| s.evidence_ref.as_ref())
        .map(|r| r.name.clone())
    else {
        return String::new();
    };
    let api: Api<ConfigMap> = Api::namespaced(session.client.clone(), &session.namespace);
    let Ok(cm) = api.get(&cm_name).await else {
        return String::new();
    };
    let Some(summary) = cm
        .data
        .as_ref()
        .and_then(|d| d.get(crate::core::evidence::SUMMARY_KEY))
    else {
        return String::new();
    };
    let ns = &session.namespace;
    let mut out = String::from("\nEvidence summary:\n");
    for line in crate::core::evidence::summary_lines(summary, 20) {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str(&format!(
        "  read a key: kubectl get configmap {cm_name} -n {ns} -o jsonpath='{{.data.events\\.txt}}'\n"
    ));
    out
}

/// `declare --step NAME[=ACTION]`: steps requested by name. Without an
/// action, it is taken from a Runbook in the namespace that lists the step
/// (the operator then checks the whole step against the governing Runbook).
async fn requested_steps(
    specs: &[String],
    session: &Session,
) -> Result<Vec<crate::api::MitigationStep>, CliError> {
    use crate::api::{MitigationAction, MitigationStep, Runbook};
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let mut runbooks: Option<Vec<Runbook>> = None;
    let mut out = Vec::new();
    for spec in specs {
        let (name, action) = match spec.split_once('=') {
            Some((n, a)) => {
                let action: MitigationAction = serde_json::from_value(serde_json::json!(a))
                    .map_err(|_| {
                        CliError::Usage(format!(
                            "--step {spec}: unknown action {a:?} (RolloutUndo, Scale, SetEnv, RolloutRestart)"
                        ))
                    })?;
                (n.to_string(), action)
            }
            None => {
                if runbooks.is_none() {
                    let api: kube::Api<Runbook> =
                        kube::Api::namespaced(session.client.clone(), &session.namespace);
                    runbooks = Some(
                        api.list(&Default::default())
                            .await
                            .map(|l| l.items)
                            .unwrap_or_default(),
                    );
                }
                let found = runbooks
                    .iter()
                    .flatten()
                    .flat_map(|rb| rb.spec.mitigations.iter())
                    .find(|m| m.name == *spec)
                    .map(|m| m.action);
                let Some(action) = found else {
                    return Err(CliError::Usage(format!(
                        "--step {spec}: no Runbook in namespace {} lists a step named {spec:?}; give it as {spec}=ACTION for a cluster-wide Runbook's step",
                        session.namespace
                    )));
                };
                (spec.clone(), action)
            }
        };
        out.push(MitigationStep::new(name, action));
    }
    Ok(out)
}

/// `declare`.
pub async fn declare(args: &DeclareArgs, session: &Session) -> Result<String, CliError> {
    let title = args.title_text();
    if title.is_empty() {
        return Err(CliError::Usage("the title must not be empty".into()));
    }
    let name = match &args.name {
        Some(n) => n.clone(),
        None => derive_name(args.target.as_ref(), &title, &random_suffix()),
    };
    validate_dns1123_subdomain(&name).map_err(|reason| CliError::InvalidName {
        name: name.clone(),
        reason,
    })?;
    let mitigations = requested_steps(&args.steps, session).await?;
    for step in &mitigations {
        let kind = args.target.as_ref().map(|t| t.kind);
        if !kind.is_some_and(|k| crate::core::mitigation::action_applies(step.action, k)) {
            return Err(CliError::Usage(format!(
                "--step {}: {} needs a {} target (--target KIND/NAME)",
                step.name,
                step.action,
                crate::core::mitigation::kinds_of(step.action)
            )));
        }
    }
    let spec = IncidentSpec {
        title,
        severity: args.severity,
        source: IncidentSource::Manual,
        target: args.target.clone(),
        runbook_ref: None,
        commander: args.commander.clone().filter(|c| !c.trim().is_empty()),
        acknowledged_by: None,
        root_cause: None,
        mitigations,
        resolution: None,
        resume_git_ops: None,
    };
    let incident = Incident::new(&name, spec);
    let pp = PostParams {
        field_manager: Some(CLI_FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match incidents(session).create(&pp, &incident).await {
        Ok(created) => Ok(format!(
            "incident.{GROUP}/{} declared\n",
            created.metadata.name.unwrap_or(name)
        )),
        Err(kube::Error::Api(status)) if status.code == 409 => Err(CliError::AlreadyExists {
            name,
            namespace: session.namespace.clone(),
        }),
        Err(e) => Err(incident_error(e, session, None).await),
    }
}

/// The ClusterRole a person needs for `verb` (`acknowledge`, `resolve`,
/// `approve`), as the chart and `kube-incident install-manifests` name it
/// with the default prefix.
fn role_for(verb: &str) -> String {
    if verb == "approve" {
        crate::admission::approver_role(crate::admission::DEFAULT_PREFIX)
    } else {
        crate::admission::responder_role(crate::admission::DEFAULT_PREFIX)
    }
}

/// A refusal of a write that acknowledges, resolves or approves (`verb`),
/// as one line naming what is missing: the admission policy's own message
/// (403 with reason Forbidden, or 422 Invalid where a policy is configured
/// so), or RBAC's refusal with the ClusterRole that grants the write.
/// `None` for any other error.
pub fn refusal(err: &kube::Error, verb: &str) -> Option<CliError> {
    let kube::Error::Api(status) = err else {
        return None;
    };
    if status.code != 403 && status.code != 422 {
        return None;
    }
    const MARK: &str = "denied request: ";
    if status.message.contains("ValidatingAdmissionPolicy") {
        if let Some(at) = status.message.find(MARK) {
            let msg = one_line(&status.message[at + MARK.len()..]);
            return Some(CliError::Denied(if msg.starts_with("cannot ") {
                msg
            } else {
                format!("cannot {verb}: {msg}")
            }));
        }
    }
    (status.code == 403).then(|| {
        CliError::Forbidden(format!(
            "{} (bind ClusterRole {})",
            one_line(&status.message),
            role_for(verb)
        ))
    })
}

/// Apply a merge patch guarded by the resourceVersion that was read, so a
/// concurrent change is a 409 instead of being overwritten.
async fn guarded_merge_patch(
    session: &Session,
    inc: &Incident,
    name: &str,
    spec_patch: serde_json::Value,
    (verb, action): (&str, &str),
) -> Result<(), CliError> {
    let mut body = json!({ "spec": spec_patch });
    if let Some(rv) = &inc.metadata.resource_version {
        body["metadata"] = json!({ "resourceVersion": rv });
    }
    match incidents(session)
        .patch(name, &patch_params(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Err(CliError::Conflict {
            name: name.to_string(),
            action: action.to_string(),
        }),
        Err(e) => match refusal(&e, verb) {
            Some(refused) => Err(refused),
            None => Err(incident_error(e, session, Some(name)).await),
        },
    }
}

/// `ack`: set `spec.acknowledgedBy`.
pub async fn ack(args: &NameArgs, session: &Session) -> Result<String, CliError> {
    let inc = get_incident(session, &args.name).await?;
    if let Some(by) = &inc.spec.acknowledged_by {
        return Ok(format!(
            "incident.{GROUP}/{} already acknowledged by {by}; nothing changed\n",
            args.name
        ));
    }
    let who = resolve_identity(session).await?;
    write_acknowledgement(session, &inc, &who.name).await?;
    Ok(format!(
        "incident.{GROUP}/{} acknowledged by {}\n",
        args.name, who.name
    ))
}

/// Set `spec.acknowledgedBy = who` on the Incident as it was `read`: the
/// merge patch carries the read `resourceVersion`, so a change made since
/// is a [`CliError::Conflict`], never overwritten.
pub async fn write_acknowledgement(
    session: &Session,
    read: &Incident,
    who: &str,
) -> Result<(), CliError> {
    let name = read.metadata.name.clone().unwrap_or_default();
    guarded_merge_patch(
        session,
        read,
        &name,
        json!({ "acknowledgedBy": who }),
        ("acknowledge", "acknowledging it"),
    )
    .await
}

/// `resolve`: set `spec.resolution {by, summary}`.
pub async fn resolve(args: &ResolveArgs, session: &Session) -> Result<String, CliError> {
    let summary = args.summary.trim();
    if summary.is_empty() {
        return Err(CliError::Usage("--summary must not be empty".into()));
    }
    let inc = get_incident(session, &args.name).await?;
    if let Some(r) = &inc.spec.resolution {
        return Ok(format!(
            "incident.{GROUP}/{} already resolved by {}; nothing changed\n",
            args.name, r.by
        ));
    }
    if format::phase(&inc) == Some(Phase::Resolved) {
        let when = inc
            .status
            .as_ref()
            .and_then(|s| s.resolved_at.as_ref())
            .map(|t| format!(" at {}", format::format_time(t.0)))
            .unwrap_or_default();
        return Ok(format!(
            "incident.{GROUP}/{} already resolved{when}; nothing changed\n",
            args.name
        ));
    }
    let who = resolve_identity(session).await?;
    write_resolution(session, &inc, &who.name, summary).await?;
    Ok(format!(
        "incident.{GROUP}/{} resolved by {}\n",
        args.name, who.name
    ))
}

/// Set `spec.resolution {by: who, summary}` on the Incident as it was
/// `read` (guarded by its `resourceVersion`, like [`write_acknowledgement`]).
pub async fn write_resolution(
    session: &Session,
    read: &Incident,
    who: &str,
    summary: &str,
) -> Result<(), CliError> {
    let name = read.metadata.name.clone().unwrap_or_default();
    guarded_merge_patch(
        session,
        read,
        &name,
        json!({ "resolution": { "by": who, "summary": summary } }),
        ("resolve", "resolving it"),
    )
    .await
}

/// What `approve` decided to do with an Incident (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovePlan {
    /// Patch step `index` (named `step`).
    Approve {
        /// Position in `spec.mitigations`.
        index: usize,
        /// The step's name.
        step: String,
    },
    /// Already approved by this person: change nothing.
    AlreadyApproved {
        /// The step's name.
        step: String,
        /// Who approved it.
        by: String,
    },
}

/// Decide which step `approve` acts on, and refuse what must be refused.
pub fn plan_approval(inc: &Incident, step: Option<&str>) -> Result<ApprovePlan, CliError> {
    let name = inc.metadata.name.clone().unwrap_or_default();
    let steps = &inc.spec.mitigations;
    let states = || {
        if steps.is_empty() {
            "it has no mitigation steps".to_string()
        } else {
            steps
                .iter()
                .map(|s| format!("{} {}", s.name, format::step_state(inc, &s.name).as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let index = match step {
        Some(wanted) => {
            steps
                .iter()
                .position(|s| s.name == wanted)
                .ok_or_else(|| CliError::UnknownStep {
                    name: name.clone(),
                    step: wanted.to_string(),
                    valid: if steps.is_empty() {
                        "none".to_string()
                    } else {
                        steps
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                })?
        }
        None => {
            let awaiting: Vec<usize> = steps
                .iter()
                .enumerate()
                .filter(|(_, s)| format::step_state(inc, &s.name) == StepState::AwaitingApproval)
                .map(|(i, _)| i)
                .collect();
            match awaiting.as_slice() {
                [i] => *i,
                [] => {
                    return Err(CliError::NoStepAwaiting {
                        name,
                        steps: states(),
                    })
                }
                many => {
                    return Err(CliError::AmbiguousStep {
                        name,
                        steps: many
                            .iter()
                            .map(|i| steps[*i].name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
    };
    let s = &steps[index];
    if s.approval != Approval::Manual {
        return Err(CliError::NotManual {
            name,
            step: s.name.clone(),
        });
    }
    if let Some(by) = &s.approved_by {
        return Ok(ApprovePlan::AlreadyApproved {
            step: s.name.clone(),
            by: by.clone(),
        });
    }
    let state = format::step_state(inc, &s.name);
    if state.is_final() {
        return Err(CliError::StepFinal {
            name,
            step: s.name.clone(),
            state: state.as_str().to_string(),
        });
    }
    if format::phase(inc) == Some(Phase::Resolved) || inc.spec.resolution.is_some() {
        return Err(CliError::Usage(format!(
            "incident {name:?} is resolved: its steps will not run any more"
        )));
    }
    Ok(ApprovePlan::Approve {
        index,
        step: s.name.clone(),
    })
}

/// The JSON patch of `approve`: test that position `index` still holds
/// `step`, then add its `approvedBy`.
pub fn approve_patch(index: usize, step: &str, who: &str) -> json_patch::Patch {
    let ops = json!([
        {"op": "test", "path": format!("/spec/mitigations/{index}/name"), "value": step},
        {"op": "add", "path": format!("/spec/mitigations/{index}/approvedBy"), "value": who},
    ]);
    // The literal above always matches the RFC 6902 shape.
    serde_json::from_value(ops).unwrap_or_else(|_| json_patch::Patch(Vec::new()))
}

/// `approve`: set `spec.mitigations[i].approvedBy`.
pub async fn approve(args: &ApproveArgs, session: &Session) -> Result<String, CliError> {
    let inc = get_incident(session, &args.name).await?;
    let (index, step) = match plan_approval(&inc, args.step.as_deref())? {
        ApprovePlan::AlreadyApproved { step, by } => {
            return Ok(format!(
                "step {step:?} of incident.{GROUP}/{} already approved by {by}; nothing changed\n",
                args.name
            ))
        }
        ApprovePlan::Approve { index, step } => (index, step),
    };
    let who = resolve_identity(session).await?;
    write_approval(session, &args.name, index, &step, &who.name).await?;
    Ok(format!(
        "step {step:?} of incident.{GROUP}/{} approved by {}\n",
        args.name, who.name
    ))
}

/// Approve step `step`, read at position `index` of `spec.mitigations`, with
/// [`approve_patch`]. If the list changed so that `index` no longer holds
/// `step`, the server refuses the `test` (422) and this is a
/// [`CliError::Conflict`].
pub async fn write_approval(
    session: &Session,
    name: &str,
    index: usize,
    step: &str,
    who: &str,
) -> Result<(), CliError> {
    let patch = approve_patch(index, step, who);
    if patch.0.len() != 2 {
        return Err(CliError::Encode("cannot build the approval patch".into()));
    }
    let result = incidents(session)
        .patch(name, &patch_params(), &Patch::<()>::Json(patch))
        .await;
    if let Err(e) = &result {
        if let Some(refused) = refusal(e, "approve") {
            return Err(refused);
        }
    }
    match result {
        Ok(_) => Ok(()),
        // the `test` failed (or the path vanished): the list was edited since it was read
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 409 => {
            Err(CliError::Conflict {
                name: name.to_string(),
                action: format!("approving step {step:?}"),
            })
        }
        Err(e) => Err(incident_error(e, session, Some(name)).await),
    }
}

/// `postmortem`: the Markdown draft from `status.postmortemRef`.
pub async fn postmortem(args: &NameArgs, session: &Session) -> Result<String, CliError> {
    let inc = get_incident(session, &args.name).await?;
    let Some(cm_name) = inc
        .status
        .as_ref()
        .and_then(|s| s.postmortem_ref.as_ref())
        .map(|r| r.name.clone())
    else {
        return Err(CliError::NoPostmortem {
            name: args.name.clone(),
        });
    };
    let api: Api<ConfigMap> = Api::namespaced(session.client.clone(), &session.namespace);
    let unreadable = |problem: String| CliError::PostmortemUnreadable {
        name: args.name.clone(),
        configmap: cm_name.clone(),
        problem,
    };
    let cm = match api.get(&cm_name).await {
        Ok(cm) => cm,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(unreadable("does not exist".into()))
        }
        Err(e) => return Err(map_kube_error(e, &session.server_url)),
    };
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(POSTMORTEM_KEY))
        .ok_or_else(|| unreadable(format!("has no key {POSTMORTEM_KEY:?}")))?;
    let mut text = text.clone();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
