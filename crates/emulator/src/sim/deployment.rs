//! The deployment controller (`pkg/controller/deployment/`): the async part.
//! Reads deployments and ReplicaSets from the watch caches, computes with the
//! pure functions of [`super::rollout`] and writes like kube-controller-manager
//! (PUT with resourceVersion; status through `/status`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;

use super::events::EventReq;
use super::rollout::*;
use super::{Shared, SimError, CONTROLLER_MANAGER};
use ::rollout::{compute_hash, equal_ignore_hash, POD_TEMPLATE_HASH_LABEL};

fn pp() -> PostParams {
    PostParams {
        field_manager: Some(CONTROLLER_MANAGER.into()),
        ..Default::default()
    }
}

fn d_ref(d: &Deployment) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".into()),
        kind: Some("Deployment".into()),
        namespace: d.metadata.namespace.clone(),
        name: d.metadata.name.clone(),
        uid: d.metadata.uid.clone(),
        resource_version: d.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn record(sh: &Shared, d: &Deployment, type_: &str, reason: &str, message: String) {
    sh.events.record(EventReq {
        object: d_ref(d),
        type_: type_.into(),
        reason: reason.into(),
        message,
        component: "deployment-controller".into(),
        host: None,
    });
}

struct Ctx<'a> {
    sh: &'a Shared,
    ns: String,
    name: String,
    d: Deployment,
    rss: Vec<ReplicaSet>,
}

/// Drops zero counters like Go's `omitempty` so the written JSON matches kube-controller-manager's.
fn omit_zero(mut s: DeploymentStatus) -> DeploymentStatus {
    for f in [
        &mut s.replicas,
        &mut s.updated_replicas,
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.unavailable_replicas,
    ] {
        if *f == Some(0) {
            *f = None;
        }
    }
    s
}

impl Ctx<'_> {
    fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.sh.client.clone(), &self.ns)
    }

    fn d_api(&self) -> Api<Deployment> {
        Api::namespaced(self.sh.client.clone(), &self.ns)
    }

    fn time_scale(&self) -> f64 {
        self.sh.cfg.time_scale
    }

    /// `UpdateStatus` of the deployment (including its revision annotation,
    /// which kube-apiserver's deployment status strategy keeps).
    async fn update_status(&mut self, status: DeploymentStatus) -> Result<(), SimError> {
        let mut obj = self.d.clone();
        obj.status = Some(omit_zero(status));
        let mut out = self.d_api().replace_status(&self.name, &pp(), &obj).await?;
        let want = obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .cloned();
        let got = out
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .cloned();
        if want.is_some() && want != got {
            // A server whose status endpoint ignores metadata: set it on the main resource.
            let patch =
                serde_json::json!({"metadata": {"annotations": {REVISION_ANNOTATION: want}}});
            let pp = PatchParams {
                field_manager: Some(CONTROLLER_MANAGER.into()),
                ..Default::default()
            };
            out = self
                .d_api()
                .patch(&self.name, &pp, &Patch::Merge(&patch))
                .await?;
        }
        self.sh.deployments.insert(out.clone());
        self.d = out;
        Ok(())
    }

    /// `SetDeploymentRevision`.
    fn set_deployment_revision(&mut self, revision: &str) -> bool {
        let ann = self
            .d
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        if ann.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
            return false;
        }
        ann.insert(REVISION_ANNOTATION.into(), revision.into());
        true
    }

    /// `getAllReplicaSetsAndSyncRevision` / `getNewReplicaSet`: index of the new RS.
    async fn sync_revision(&mut self, create: bool) -> Result<Option<usize>, SimError> {
        let existing = find_new_rs(&self.d, &self.rss);
        let max_old = max_revision(
            self.rss
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != existing)
                .map(|(_, r)| r),
        );
        let new_revision = max_old + 1;
        let now = now_secs();
        if let Some(i) = existing {
            let mut rs_copy = self.rss[i].clone();
            let ann = rs_copy
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new);
            let ann_updated = set_new_rs_annotations(&self.d, ann, new_revision, true);
            let d_mrs = min_ready_seconds(&self.d);
            let spec = rs_copy.spec.get_or_insert_with(Default::default);
            let mrs_update = spec.min_ready_seconds.unwrap_or(0) != d_mrs;
            if ann_updated || mrs_update {
                spec.min_ready_seconds = (d_mrs != 0).then_some(d_mrs);
                let out = self
                    .rs_api()
                    .replace(&rs_name(&rs_copy), &pp(), &rs_copy)
                    .await?;
                self.sh.replicasets.insert(out.clone());
                self.rss[i] = out;
                return Ok(Some(i));
            }
            let rev = revision(&self.rss[i]).to_string();
            let mut needs_update = self.set_deployment_revision(&rev);
            let mut status = self.d.status.clone().unwrap_or_default();
            if progress_deadline_seconds(&self.d).is_some()
                && get_condition(&status, COND_PROGRESSING).is_none()
            {
                let msg = format!("Found new replica set \"{}\"", rs_name(&self.rss[i]));
                set_condition(
                    &mut status,
                    new_condition(COND_PROGRESSING, "True", FOUND_NEW_RS_REASON, msg, now),
                );
                needs_update = true;
            }
            if needs_update {
                self.update_status(status).await?;
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        let spec = self
            .d
            .spec
            .clone()
            .ok_or_else(|| SimError::Invalid("deployment without spec".into()))?;
        let collision = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&deployment_template(&self.d), collision);
        let mut template = spec.template.clone();
        let tm = template.metadata.get_or_insert_with(Default::default);
        tm.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let labels = tm.labels.clone();
        let mut selector: LabelSelector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
        let new_name = format!("{}-{}", self.name, hash);
        let mrs = min_ready_seconds(&self.d);
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(new_name.clone()),
                namespace: Some(self.ns.clone()),
                labels,
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: self.name.clone(),
                    uid: self.d.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: (mrs != 0).then_some(mrs),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let mut all = self.rss.clone();
        all.push(new_rs.clone());
        let count = new_rs_new_replicas(&self.d, &all, all.len() - 1);
        set_rs_replicas(&mut new_rs, count);
        let ann = new_rs
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        set_new_rs_annotations(&self.d, ann, new_revision, false);
        let (created, already_exists) = match self.rs_api().create(&pp(), &new_rs).await {
            Ok(rs) => (rs, false),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let rs = self.rs_api().get(&new_name).await?;
                let ours = super::cache::controller_uid(&rs) == self.d.metadata.uid;
                if ours && equal_ignore_hash(&rs_template(&rs), &deployment_template(&self.d)) {
                    (rs, true)
                } else {
                    let mut status = self.d.status.clone().unwrap_or_default();
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    self.update_status(status).await?;
                    return Err(SimError::HashCollision(new_name));
                }
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set \"{new_name}\": {e}");
                if progress_deadline_seconds(&self.d).is_some() {
                    let mut status = self.d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut status,
                        new_condition(
                            COND_PROGRESSING,
                            "False",
                            "ReplicaSetCreateError",
                            msg.clone(),
                            now,
                        ),
                    );
                    let _ = self.update_status(status).await;
                }
                record(self.sh, &self.d, "Warning", "ReplicaSetCreateError", msg);
                return Err(e.into());
            }
        };
        if !already_exists && count > 0 {
            record(
                self.sh,
                &self.d,
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {new_name} from 0 to {count}"),
            );
        }
        let mut needs_update = self.set_deployment_revision(&new_revision.to_string());
        let mut status = self.d.status.clone().unwrap_or_default();
        if !already_exists && progress_deadline_seconds(&self.d).is_some() {
            let msg = format!("Created new replica set \"{new_name}\"");
            set_condition(
                &mut status,
                new_condition(COND_PROGRESSING, "True", NEW_RS_REASON, msg, now),
            );
            needs_update = true;
        }
        self.sh.replicasets.insert(created.clone());
        self.rss.push(created);
        if needs_update {
            self.update_status(status).await?;
        }
        Ok(Some(self.rss.len() - 1))
    }

    /// `scaleReplicaSet`: size and desired/max annotations; returns whether the size changed.
    async fn scale_rs(&mut self, i: usize, new_scale: i32) -> Result<bool, SimError> {
        let rs = &self.rss[i];
        let old = rs_replicas(rs);
        let size_needs = old != new_scale;
        let desired = desired_replicas(&self.d);
        let mut ann = rs.metadata.annotations.clone().unwrap_or_default();
        let ann_needs = set_replicas_annotations(&mut ann, desired, desired + max_surge(&self.d));
        if !(size_needs || ann_needs) {
            return Ok(false);
        }
        let mut copy = rs.clone();
        set_rs_replicas(&mut copy, new_scale);
        copy.metadata.annotations = Some(ann);
        let name = rs_name(&copy);
        let out = self.rs_api().replace(&name, &pp(), &copy).await?;
        self.sh.replicasets.insert(out.clone());
        self.rss[i] = out;
        if size_needs {
            let op = if old < new_scale { "up" } else { "down" };
            record(
                self.sh,
                &self.d,
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled {op} replica set {name} from {old} to {new_scale}"),
            );
        }
        Ok(size_needs)
    }

    /// `scaleReplicaSetAndRecordEvent`.
    async fn scale_rs_and_record(&mut self, i: usize, new_scale: i32) -> Result<bool, SimError> {
        if rs_replicas(&self.rss[i]) == new_scale {
            return Ok(false);
        }
        self.scale_rs(i, new_scale).await
    }

    /// `syncRolloutStatus`.
    async fn sync_rollout_status(
        &mut self,
        new_idx: Option<usize>,
    ) -> Result<Option<Duration>, SimError> {
        let now = now_secs();
        let status = rollout_status(&self.d, &self.rss, new_idx, now, self.time_scale());
        let cur = serde_json::to_value(self.d.status.clone().unwrap_or_default())?;
        if super::same_json(&cur, &serde_json::to_value(&status)?) {
            return Ok(requeue_stuck_after(
                &self.d,
                &status,
                now,
                self.time_scale(),
            ));
        }
        self.update_status(status).await?;
        Ok(None)
    }

    /// `syncDeploymentStatus`.
    async fn sync_status(&mut self, new_idx: Option<usize>) -> Result<Option<Duration>, SimError> {
        let status = calculate_status(&self.d, &self.rss, new_idx, now_secs());
        let cur = serde_json::to_value(self.d.status.clone().unwrap_or_default())?;
        if !super::same_json(&cur, &serde_json::to_value(&status)?) {
            self.update_status(status).await?;
        }
        Ok(None)
    }

    /// `cleanupDeployment`.
    async fn cleanup(&mut self, new_idx: Option<usize>) -> Result<(), SimError> {
        let old: Vec<ReplicaSet> = self
            .rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_idx)
            .map(|(_, r)| r.clone())
            .collect();
        for name in cleanup_plan(&self.d, &old) {
            tracing::debug!(deployment = %self.name, replicaset = %name, "cleaning up old replica set");
            match self.rs_api().delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// `sync` (scaling event or paused).
    async fn sync_scale(&mut self) -> Result<Option<Duration>, SimError> {
        let new_idx = self.sync_revision(false).await?;
        for (i, size) in scale_plan(&self.d, &self.rss, new_idx) {
            self.scale_rs(i, size).await?;
        }
        if is_paused(&self.d) {
            self.cleanup(new_idx).await?;
        }
        self.sync_status(new_idx).await
    }

    /// `rolloutRolling`.
    async fn rollout_rolling(&mut self) -> Result<Option<Duration>, SimError> {
        let Some(n) = self.sync_revision(true).await? else {
            return Err(SimError::Invalid("no new replica set".into()));
        };
        // reconcileNewReplicaSet
        let desired = desired_replicas(&self.d);
        let cur = rs_replicas(&self.rss[n]);
        if cur != desired {
            let target = if cur > desired {
                desired
            } else {
                new_rs_new_replicas(&self.d, &self.rss, n)
            };
            if self.scale_rs_and_record(n, target).await? {
                return self.sync_rollout_status(Some(n)).await;
            }
        }
        // reconcileOldReplicaSets
        let mut scaled_down = false;
        for (i, size) in reconcile_old_plan(&self.d, &self.rss, n) {
            scaled_down |= self.scale_rs_and_record(i, size).await?;
        }
        if scaled_down {
            return self.sync_rollout_status(Some(n)).await;
        }
        let st = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &st) {
            self.cleanup(Some(n)).await?;
        }
        self.sync_rollout_status(Some(n)).await
    }

    /// `oldPodsRunning`.
    fn old_pods_running(&self, new_idx: Option<usize>) -> bool {
        let old = self
            .rss
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != new_idx);
        let mut any = false;
        for (_, rs) in old {
            if rs.status.as_ref().is_some_and(|s| s.replicas > 0) {
                return true;
            }
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            any |= self.sh.pods.owned_by(&uid).iter().any(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Failed") | Some("Succeeded")
                )
            });
        }
        any
    }

    /// `rolloutRecreate`.
    async fn rollout_recreate(&mut self) -> Result<Option<Duration>, SimError> {
        let mut new_idx = self.sync_revision(false).await?;
        let mut scaled_down = false;
        for i in 0..self.rss.len() {
            if Some(i) != new_idx && rs_replicas(&self.rss[i]) > 0 {
                scaled_down |= self.scale_rs_and_record(i, 0).await?;
            }
        }
        if scaled_down || self.old_pods_running(new_idx) {
            return self.sync_rollout_status(new_idx).await;
        }
        if new_idx.is_none() {
            new_idx = self.sync_revision(true).await?;
        }
        if let Some(n) = new_idx {
            let desired = desired_replicas(&self.d);
            self.scale_rs_and_record(n, desired).await?;
        }
        let st = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &st) {
            self.cleanup(new_idx).await?;
        }
        self.sync_rollout_status(new_idx).await
    }
}

fn rs_name(rs: &ReplicaSet) -> String {
    rs.metadata.name.clone().unwrap_or_default()
}

/// Syncs one deployment (`syncDeployment`); returns when to look again.
pub(crate) async fn sync(sh: &Shared, ns: &str, name: &str) -> Result<Option<Duration>, SimError> {
    let Some(d) = sh.deployments.get(ns, name) else {
        return Ok(None);
    };
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let rss: Vec<ReplicaSet> = sh
        .replicasets
        .owned_by(&uid)
        .iter()
        .map(|r: &Arc<ReplicaSet>| (**r).clone())
        .collect();
    let mut cx = Ctx {
        sh,
        ns: ns.to_string(),
        name: name.to_string(),
        d: (*d).clone(),
        rss,
    };
    if cx.d.metadata.deletion_timestamp.is_some() {
        let new_idx = find_new_rs(&cx.d, &cx.rss);
        return cx.sync_status(new_idx).await;
    }
    if let Some(status) = paused_conditions(&cx.d, now_secs()) {
        cx.update_status(status).await?;
    }
    if is_paused(&cx.d) || is_scaling_event(&cx.d, &cx.rss) {
        return cx.sync_scale().await;
    }
    if is_rolling_update(&cx.d) {
        cx.rollout_rolling().await
    } else {
        cx.rollout_recreate().await
    }
}
