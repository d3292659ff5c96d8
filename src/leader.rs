//! Leadership: only the leader acts and writes; followers keep their caches
//! warm so that a failover is fast.
//!
//! [`Leadership`] is the shared flag the controllers check before every
//! write, and a `tokio::sync::watch` channel of it
//! ([`Leadership::subscribe`], [`Leadership::gains`]): a follower waits for
//! leadership instead of polling, and a lost lease is seen at once (the
//! channel turns `false` when a renewal is rejected, the lease shows another
//! holder, or the renew deadline passes). [`LeaderElector`] drives it from a `coordination.k8s.io/v1` Lease,
//! the way Kubernetes' own controllers elect a leader:
//!
//! - the holder renews `spec.renewTime` every retry period; every write is
//!   an update carrying the `resourceVersion` that was read (optimistic
//!   concurrency), so two candidates can never both win the same round;
//! - a candidate takes the lease over when it is free (no holder: released
//!   on graceful shutdown) or when it has seen the same lease record for a
//!   whole `leaseDurationSeconds` by its own monotonic clock (no trust in the
//!   holder's wall clock);
//! - the leader's right to act expires on its own `renew_deadline` after the
//!   start of its last successful renewal (shorter than the lease duration,
//!   so it stops before anyone may take over), and it steps down at once when
//!   a renewal is rejected or the lease shows another holder.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use crate::controller::Clock;

/// "Forever": the deadline of a leadership that does not expire.
const NO_DEADLINE: u64 = u64::MAX;

#[derive(Debug)]
struct Inner {
    /// Whether this instance leads, as its waiters see it: turned `false`
    /// at once when leadership ends (a rejected renewal, another holder,
    /// the renew deadline passing; see [`Leadership::lapse_at_deadlines`]).
    leading: watch::Sender<bool>,
    /// How many times this instance has become the leader (a waiter that
    /// missed a quick loss and regain still sees a new term).
    terms: AtomicU64,
    /// Nanoseconds after `base` at which leadership lapses by itself.
    until: AtomicU64,
    /// Signalled when the deadline moves (a renewal).
    renewed: Notify,
    base: Instant,
}

/// A cheap handle on "am I the leader right now", and a `watch` channel of
/// it for those who wait for leadership instead of polling.
#[derive(Debug, Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

impl Leadership {
    fn new(leading: bool) -> Self {
        let (tx, _) = watch::channel(leading);
        Leadership {
            inner: Arc::new(Inner {
                leading: tx,
                terms: AtomicU64::new(u64::from(leading)),
                until: AtomicU64::new(NO_DEADLINE),
                renewed: Notify::new(),
                base: Instant::now(),
            }),
        }
    }

    /// A single instance: always the leader.
    pub fn always() -> Self {
        Leadership::new(true)
    }

    /// Starts as a follower until [`Leadership::set`] says otherwise.
    pub fn follower() -> Self {
        Leadership::new(false)
    }

    /// Whether this instance may act and write now (checked against the
    /// deadline itself, so it never says yes after the deadline, even
    /// before the channel has turned `false`).
    pub fn is_leader(&self) -> bool {
        *self.inner.leading.borrow() && self.within_deadline(Instant::now())
    }

    /// How many times this instance has become the leader so far.
    pub fn term(&self) -> u64 {
        self.inner.terms.load(Ordering::SeqCst)
    }

    /// The is-leader channel: `true` while leading, `false` from the moment
    /// leadership ends.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.leading.subscribe()
    }

    /// Resolves once this instance is the leader (at once if it is).
    pub async fn acquired(&self) {
        let mut rx = self.subscribe();
        // The sender lives in `self`: the channel cannot close meanwhile.
        let _ = rx.wait_for(|leading| *leading).await;
    }

    /// Resolves once this instance is no longer the leader (at once if it is
    /// not): what an in-flight reconcile races against, so that a lost
    /// lease cancels it before it writes anything more.
    pub async fn lost(&self) {
        let mut rx = self.subscribe();
        if !self.is_leader() {
            return;
        }
        // The sender lives in `self`: the channel cannot close meanwhile.
        let _ = rx.wait_for(|leading| !*leading).await;
    }

    /// One item each time this instance becomes the leader again after
    /// subscribing (a new term): what a controller needs to look at
    /// everything it skipped as a follower.
    pub fn gains(&self) -> impl Stream<Item = ()> + Send + 'static {
        let mut rx = self.subscribe();
        rx.mark_unchanged();
        let inner = self.inner.clone();
        let seen = inner.terms.load(Ordering::SeqCst);
        futures::stream::unfold((rx, inner, seen), |(mut rx, inner, mut seen)| async move {
            loop {
                if rx.changed().await.is_err() {
                    return None;
                }
                let leading = *rx.borrow_and_update();
                let term = inner.terms.load(Ordering::SeqCst);
                if leading && term != seen {
                    seen = term;
                    return Some(((), (rx, inner, seen)));
                }
            }
        })
    }

    /// Record a change of leadership (without a deadline).
    pub fn set(&self, leading: bool) {
        self.inner.until.store(NO_DEADLINE, Ordering::SeqCst);
        self.inner.renewed.notify_waiters();
        self.publish(leading);
    }

    /// Lead until `deadline` unless renewed: leadership lapses by itself
    /// then, even if whoever renews it is stuck.
    pub fn lead_until(&self, deadline: Instant) {
        let nanos = self.nanos_since_base(deadline);
        self.inner.until.store(nanos, Ordering::SeqCst);
        self.inner.renewed.notify_waiters();
        self.publish(true);
    }

    /// Turn the channel `false` the moment a deadline passes without a
    /// renewal. Runs as long as the election runs (never returns while a
    /// handle exists).
    pub async fn lapse_at_deadlines(&self) {
        let mut rx = self.subscribe();
        loop {
            let renewed = self.inner.renewed.notified();
            tokio::pin!(renewed);
            renewed.as_mut().enable();
            let until = self.inner.until.load(Ordering::SeqCst);
            let leading = *rx.borrow_and_update();
            if leading && until != NO_DEADLINE {
                let at = self.inner.base + Duration::from_nanos(until);
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {
                        if !self.within_deadline(Instant::now()) {
                            self.publish(false);
                        }
                    }
                    _ = &mut renewed => {}
                    changed = rx.changed() => if changed.is_err() { return },
                }
            } else {
                tokio::select! {
                    _ = &mut renewed => {}
                    changed = rx.changed() => if changed.is_err() { return },
                }
            }
        }
    }

    fn publish(&self, leading: bool) {
        self.inner.leading.send_if_modified(|current| {
            if *current == leading {
                return false;
            }
            if leading {
                self.inner.terms.fetch_add(1, Ordering::SeqCst);
            }
            *current = leading;
            true
        });
    }

    fn within_deadline(&self, at: Instant) -> bool {
        self.nanos_since_base(at) < self.inner.until.load(Ordering::SeqCst)
    }

    fn nanos_since_base(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.inner.base);
        u64::try_from(d.as_nanos()).unwrap_or(NO_DEADLINE - 1)
    }
}

/// Settings of the Lease-based election.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own).
    pub lease_namespace: String,
    /// This instance's identity (unique per process).
    pub identity: String,
    /// How long a lease is valid after its last renewal
    /// (`spec.leaseDurationSeconds`; whole seconds, at least 1).
    pub lease_duration: Duration,
    /// How long the leader acts after the start of its last successful
    /// renewal; less than `lease_duration`.
    pub renew_deadline: Duration,
    /// How often candidates try and the leader renews; less than `renew_deadline`.
    pub retry_period: Duration,
}

/// Invalid election settings or a failed Lease request.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("invalid leader election settings: {0}")]
    Config(String),
    #[error("cannot read Lease {namespace}/{name}: {source}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write Lease {namespace}/{name}: {source}")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Lease request timed out after {0:?}")]
    Timeout(Duration),
}

impl ElectionConfig {
    /// Check the timing rules (`retry < renew deadline < lease duration`).
    pub fn validate(&self) -> Result<(), LeaderError> {
        let bad = |m: String| Err(LeaderError::Config(m));
        if self.lease_name.is_empty() {
            return bad("--lease-name must not be empty".into());
        }
        if self.lease_namespace.is_empty() {
            return bad(
                "--lease-namespace (or POD_NAMESPACE) is required with --leader-elect".into(),
            );
        }
        if self.lease_duration < Duration::from_secs(1) || self.lease_duration.subsec_nanos() != 0 {
            return bad(format!(
                "--lease-duration must be whole seconds, at least 1s (got {:?})",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return bad(format!(
                "--lease-renew-deadline ({:?}) must be shorter than --lease-duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return bad(format!(
                "--lease-retry-period ({:?}) must be positive and shorter than --lease-renew-deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// What a candidate does with the lease it read (pure; see [`decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    TakeOver,
    /// Someone else holds a live lease.
    Follow,
}

/// What the elector knows about the lease record when deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen<'a> {
    /// `spec.holderIdentity` (None or empty: free).
    pub holder: Option<&'a str>,
    /// How long the current record has stayed unchanged, by our clock.
    pub unchanged_for: Duration,
    /// `spec.leaseDurationSeconds` of the record.
    pub lease_duration: Duration,
}

/// Decide what to do with a lease: pure, so the rules are unit-tested.
pub fn decide(me: &str, seen: Option<Seen<'_>>) -> Step {
    let Some(seen) = seen else {
        return Step::Create;
    };
    match seen.holder.filter(|h| !h.is_empty()) {
        None => Step::TakeOver,
        Some(h) if h == me => Step::Renew,
        Some(_) if seen.unchanged_for >= seen.lease_duration => Step::TakeOver,
        Some(_) => Step::Follow,
    }
}

/// The lease record last seen, and since when (our monotonic clock).
struct Observed {
    resource_version: Option<String>,
    since: Instant,
}

/// Runs the election and keeps a [`Leadership`] up to date.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: ElectionConfig,
    leadership: Leadership,
    clock: Clock,
    observed: Option<Observed>,
}

impl LeaderElector {
    /// An elector for `cfg`; its [`Leadership`] starts as a follower.
    pub fn new(client: Client, cfg: ElectionConfig, clock: Clock) -> Result<Self, LeaderError> {
        cfg.validate()?;
        Ok(LeaderElector {
            api: Api::namespaced(client, &cfg.lease_namespace),
            cfg,
            leadership: Leadership::follower(),
            clock,
            observed: None,
        })
    }

    /// The flag this elector drives.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Campaign, lead and renew until `shutdown` resolves; then step down
    /// and release the lease (so a successor takes over at once).
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()> + Send) {
        info!(
            lease = %self.cfg.lease_name,
            namespace = %self.cfg.lease_namespace,
            identity = %self.cfg.identity,
            "leader election: campaigning"
        );
        tokio::pin!(shutdown);
        // The deadline watchdog runs beside the campaign: a renewal stuck
        // in a slow request still ends leadership on time.
        let leadership = self.leadership.clone();
        tokio::select! {
            _ = self.campaign(shutdown.as_mut()) => {}
            _ = leadership.lapse_at_deadlines() => {}
        }
        self.leadership.set(false);
        // Release whenever the Lease names us, not only when the flag says
        // we lead: a shutdown that cut an attempt short may have left the
        // Lease written (acquired) before the flag was set. `release` reads
        // the holder first, so a follower changes nothing.
        match tokio::time::timeout(self.cfg.renew_deadline, self.release()).await {
            Ok(Ok(true)) => info!("leader election: released the lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => warn!(error = %e, "leader election: cannot release the lease"),
            Err(_) => warn!("leader election: releasing the lease timed out"),
        }
    }

    /// Try, renew and follow every retry period until `shutdown` resolves.
    async fn campaign(
        &mut self,
        mut shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) {
        let mut was_leader = false;
        loop {
            let started = Instant::now();
            let attempt = tokio::time::timeout(self.cfg.renew_deadline, self.attempt(started));
            tokio::select! {
                _ = &mut shutdown => return,
                result = attempt => {
                    let result = result.unwrap_or(Err(LeaderError::Timeout(self.cfg.renew_deadline)));
                    if let Err(e) = result {
                        warn!(error = %e, "leader election: attempt failed");
                    }
                }
            }
            let leading = self.leadership.is_leader();
            if leading != was_leader {
                if leading {
                    info!(identity = %self.cfg.identity, "leader election: became the leader");
                } else {
                    warn!(identity = %self.cfg.identity, "leader election: lost the lease; stopped acting");
                }
                was_leader = leading;
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.cfg.retry_period) => {}
            }
        }
    }

    /// One round: read, decide, write. Updates the leadership flag.
    async fn attempt(&mut self, started: Instant) -> Result<(), LeaderError> {
        let current = self
            .api
            .get_opt(&self.cfg.lease_name)
            .await
            .map_err(|source| LeaderError::Read {
                namespace: self.cfg.lease_namespace.clone(),
                name: self.cfg.lease_name.clone(),
                source,
            })?;
        if let Some(lease) = &current {
            let rv = lease.metadata.resource_version.clone();
            if self.observed.as_ref().map(|o| &o.resource_version) != Some(&rv) {
                self.observed = Some(Observed {
                    resource_version: rv,
                    since: started,
                });
            }
        }
        let spec = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let seen = current.as_ref().map(|_| Seen {
            holder: spec.holder_identity.as_deref(),
            unchanged_for: self.observed.as_ref().map_or(Duration::ZERO, |o| {
                started.saturating_duration_since(o.since)
            }),
            lease_duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.cfg.lease_duration, Duration::from_secs),
        });
        let step = decide(&self.cfg.identity, seen);
        let now = MicroTime((self.clock)());
        let mine = |acquire: Option<MicroTime>, transitions: i32| LeaseSpec {
            holder_identity: Some(self.cfg.identity.clone()),
            lease_duration_seconds: Some(self.cfg.duration_seconds()),
            acquire_time: acquire,
            renew_time: Some(now.clone()),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        let result = match (step, current) {
            (Step::Follow, _) => {
                if self.leadership.is_leader() {
                    warn!(holder = ?spec.holder_identity, "leader election: another instance holds the lease");
                }
                self.leadership.set(false);
                return Ok(());
            }
            (Step::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.lease_name.clone()),
                        namespace: Some(self.cfg.lease_namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(mine(Some(now.clone()), 0)),
                };
                self.api.create(&pp(), &lease).await
            }
            (Step::Renew, Some(mut lease)) => {
                lease.spec = Some(mine(
                    spec.acquire_time.clone().or(Some(now.clone())),
                    spec.lease_transitions.unwrap_or(0),
                ));
                self.api.replace(&self.cfg.lease_name, &pp(), &lease).await
            }
            (Step::TakeOver, Some(mut lease)) => {
                debug!(previous = ?spec.holder_identity, "leader election: taking over the lease");
                lease.spec = Some(mine(
                    Some(now.clone()),
                    spec.lease_transitions.unwrap_or(0).saturating_add(1),
                ));
                self.api.replace(&self.cfg.lease_name, &pp(), &lease).await
            }
            // decide() returns Renew/TakeOver only for an existing lease.
            (Step::Renew | Step::TakeOver, None) => return Ok(()),
        };
        match result {
            Ok(lease) => {
                self.observed = Some(Observed {
                    resource_version: lease.metadata.resource_version,
                    since: started,
                });
                self.leadership
                    .lead_until(started + self.cfg.renew_deadline);
                Ok(())
            }
            // Someone else wrote the lease since we read it: we did not win
            // (or no longer hold) it. Stop acting now.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                debug!("leader election: lost a write race for the lease");
                self.leadership.set(false);
                Ok(())
            }
            // Other failures: keep the current deadline (it lapses on its own).
            Err(source) => Err(LeaderError::Write {
                namespace: self.cfg.lease_namespace.clone(),
                name: self.cfg.lease_name.clone(),
                source,
            }),
        }
    }

    /// Give the lease up: no holder, so a candidate takes it at once.
    /// Give the Lease up if it names this instance; `Ok(true)` when it did.
    async fn release(&self) -> Result<bool, LeaderError> {
        // A 409 means the Lease changed since we read it: taken over (then
        // it no longer names us), or our own last renew landed in between
        // (then it still does, and we release the newer version).
        for _ in 0..RELEASE_ATTEMPTS {
            match self.release_once().await? {
                Release::Conflict => continue,
                Release::Done(released) => return Ok(released),
            }
        }
        Ok(false)
    }

    async fn release_once(&self) -> Result<Release, LeaderError> {
        let read_err = |source| LeaderError::Read {
            namespace: self.cfg.lease_namespace.clone(),
            name: self.cfg.lease_name.clone(),
            source,
        };
        let Some(mut lease) = self
            .api
            .get_opt(&self.cfg.lease_name)
            .await
            .map_err(read_err)?
        else {
            return Ok(Release::Done(false));
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(Release::Done(false));
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime((self.clock)()));
        lease.spec = Some(spec);
        match self.api.replace(&self.cfg.lease_name, &pp(), &lease).await {
            Ok(_) => Ok(Release::Done(true)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Release::Conflict),
            Err(source) => Err(LeaderError::Write {
                namespace: self.cfg.lease_namespace.clone(),
                name: self.cfg.lease_name.clone(),
                source,
            }),
        }
    }
}

/// How often a release is tried again after a conflict.
const RELEASE_ATTEMPTS: usize = 3;

/// The outcome of one release attempt.
enum Release {
    /// Released (`true`), or nothing of ours to release (`false`).
    Done(bool),
    /// The Lease changed since it was read: read it again.
    Conflict,
}

fn pp() -> PostParams {
    PostParams {
        field_manager: Some(crate::api::FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(holder: Option<&str>, unchanged: u64) -> Option<Seen<'_>> {
        Some(Seen {
            holder,
            unchanged_for: Duration::from_secs(unchanged),
            lease_duration: Duration::from_secs(15),
        })
    }

    #[test]
    fn decide_follows_the_lease_rules() {
        assert_eq!(decide("a", None), Step::Create);
        assert_eq!(decide("a", seen(Some("a"), 100)), Step::Renew);
        assert_eq!(decide("a", seen(None, 0)), Step::TakeOver);
        assert_eq!(decide("a", seen(Some(""), 0)), Step::TakeOver);
        assert_eq!(decide("a", seen(Some("b"), 14)), Step::Follow);
        assert_eq!(decide("a", seen(Some("b"), 15)), Step::TakeOver);
    }

    #[test]
    fn leadership_lapses_at_its_deadline() {
        let l = Leadership::follower();
        assert!(!l.is_leader());
        l.lead_until(Instant::now() + Duration::from_secs(60));
        assert!(l.is_leader());
        l.lead_until(Instant::now() - Duration::from_millis(1));
        assert!(!l.is_leader());
        l.set(true);
        assert!(l.is_leader(), "set(true) has no deadline");
        l.set(false);
        assert!(!l.is_leader());
        assert!(Leadership::always().is_leader());
    }

    #[tokio::test]
    async fn the_channel_turns_false_the_moment_the_deadline_passes() {
        let l = Leadership::follower();
        let mut rx = l.subscribe();
        let watchdog = tokio::spawn({
            let l = l.clone();
            async move { l.lapse_at_deadlines().await }
        });
        let started = Instant::now();
        l.lead_until(started + Duration::from_millis(150));
        assert!(*rx.borrow_and_update());
        // A renewal moves the deadline: no lapse at the first one.
        l.lead_until(started + Duration::from_millis(300));
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|leading| !*leading))
            .await
            .expect("lapses")
            .expect("channel open");
        let after = started.elapsed();
        assert!(after >= Duration::from_millis(300), "{after:?}");
        assert!(after < Duration::from_millis(1300), "{after:?}");
        assert!(!l.is_leader());
        // A lease lost on a rejected write turns it false at once too.
        l.lead_until(Instant::now() + Duration::from_secs(60));
        assert!(*rx.borrow_and_update());
        l.set(false);
        assert!(rx.has_changed().expect("open"));
        assert!(!*rx.borrow_and_update());
        watchdog.abort();
    }

    #[tokio::test]
    async fn gains_yield_once_per_new_term_even_after_a_quick_loss() {
        use futures::StreamExt;
        let l = Leadership::follower();
        let mut gains = Box::pin(l.gains());
        let next =
            |g: &mut std::pin::Pin<Box<_>>| futures::FutureExt::now_or_never(StreamExt::next(g));
        assert_eq!(next(&mut gains), None, "no leadership yet");
        l.set(true);
        assert_eq!(next(&mut gains), Some(Some(())));
        assert_eq!(l.term(), 1);
        // Renewals are not new terms.
        l.lead_until(Instant::now() + Duration::from_secs(60));
        assert_eq!(next(&mut gains), None);
        // Lost and regained before anyone looked: still a new term.
        l.set(false);
        l.set(true);
        assert_eq!(next(&mut gains), Some(Some(())));
        assert_eq!(l.term(), 2);
        // Lost: nothing until it is regained.
        l.set(false);
        assert_eq!(next(&mut gains), None);
        tokio::time::timeout(Duration::from_secs(1), l.acquired())
            .await
            .expect_err("a follower waits");
        l.set(true);
        tokio::time::timeout(Duration::from_secs(1), l.acquired())
            .await
            .expect("the leader does not wait");
        assert_eq!(next(&mut gains), Some(Some(())));
    }

    #[tokio::test]
    async fn lost_resolves_when_leadership_ends_and_at_once_for_a_follower() {
        let follower = Leadership::follower();
        tokio::time::timeout(Duration::from_millis(100), follower.lost())
            .await
            .expect("a follower has nothing to lose");
        let l = Leadership::always();
        tokio::time::timeout(Duration::from_millis(100), l.lost())
            .await
            .expect_err("the leader keeps leading");
        let waiting = tokio::spawn({
            let l = l.clone();
            async move { l.lost().await }
        });
        tokio::task::yield_now().await;
        l.set(false);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("resolves at once")
            .expect("no panic");
        // Past its deadline (before the watchdog turned the channel false).
        let l = Leadership::follower();
        l.lead_until(Instant::now() - Duration::from_millis(1));
        tokio::time::timeout(Duration::from_millis(100), l.lost())
            .await
            .expect("a lapsed deadline counts as lost");
    }

    fn cfg() -> ElectionConfig {
        ElectionConfig {
            lease_name: "kube-incident".into(),
            lease_namespace: "ops".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn timing_rules_are_checked() {
        assert!(cfg().validate().is_ok());
        let mut c = cfg();
        c.renew_deadline = Duration::from_secs(15);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("shorter than --lease-duration"));
        let mut c = cfg();
        c.retry_period = Duration::from_secs(10);
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.lease_duration = Duration::from_millis(1500);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("whole seconds"));
        let mut c = cfg();
        c.lease_namespace = String::new();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("POD_NAMESPACE"));
    }
}
