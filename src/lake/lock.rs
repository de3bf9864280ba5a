//! One writer at a time per lake.
//!
//! Two conversions merging into the same month file at once would each
//! rewrite it from the same old file, and the later one would drop the
//! earlier one's rows. So every writer (`convert`, `upgrade`) first holds the
//! lake's writer lock:
//! - a local lake: an advisory lock on `_auditlake/lock`, which the
//!   operating system releases when the process dies, however it dies;
//! - an S3 lake: a lease object, `_auditlake/lease.json`, created with
//!   `If-None-Match: *` (so exactly one writer creates it) and renewed with
//!   `If-Match` on its ETag every quarter of its length (30 s of the default
//!   120). A writer that was killed
//!   stops renewing; once its lease has expired the next writer takes it
//!   over, again with `If-Match`, so two waiting writers cannot both win.
//!
//! A writer waits for the holder and says (one warning line) whom it waits
//! for. A writer whose lease was taken from it (it stalled longer than the
//! lease lasts) refuses to commit anything more: [`LakeLock::check`].

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::layout::META_DIR;
use super::{Lake, store_error};

/// How long a lease lasts without renewal. `AUDITLAKE_LEASE_SECONDS`
/// overrides it (tests of killed writers use a short one).
const LEASE_SECONDS: i64 = 120;

/// How often the holder renews its lease: a quarter of its length.
fn lease_renew(lease: i64) -> Duration {
    Duration::from_secs((lease / 4).max(1) as u64)
}

/// How often a waiting writer looks at the lease again.
const POLL: Duration = Duration::from_millis(500);

fn lease_seconds() -> i64 {
    std::env::var("AUDITLAKE_LEASE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(LEASE_SECONDS)
}

/// Who holds a lake's writer lock, as written in the lease (and shown to
/// writers that wait for it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// When this writer took the lock (RFC 3339).
    pub since: String,
    /// When the lease lapses unless renewed (RFC 3339; S3 lakes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

impl Holder {
    fn this_process() -> Holder {
        Holder {
            host: host_name(),
            pid: std::process::id(),
            since: now_text(),
            expires: None,
        }
    }

    /// Whether the lease has lapsed at `now`.
    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_none_or(|t| t <= now)
    }

    /// Whether the holder is a process of this machine that is gone (a
    /// killed writer): its lease need not be waited out.
    fn gone(&self) -> bool {
        cfg!(target_os = "linux")
            && self.host == host_name()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// Whether the lease no longer holds the lake: lapsed, or its writer
    /// is known to be dead.
    fn released(&self, now: DateTime<Utc>) -> bool {
        self.expired(now) || self.gone()
    }

    /// `host pid 123, since …`.
    pub fn describe(&self) -> String {
        format!("{} pid {}, since {}", self.host, self.pid, self.since)
    }
}

/// This machine's name (for people reading a lease or a run journal).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

pub(crate) fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The lake's writer lock, released on drop (an S3 lease is deleted by
/// [`LakeLock::release`], or lapses).
pub struct LakeLock {
    held: Held,
}

enum Held {
    Local(#[allow(dead_code)] File),
    Lease(Lease),
}

struct Lease {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    /// The ETag of the lease as this writer last wrote it.
    etag: Arc<Mutex<Option<String>>>,
    /// Set when a renewal found the lease taken over.
    lost: Arc<AtomicBool>,
    renewer: JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Whether a lake has a live writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriterState {
    Idle,
    /// A writer holds the lock (who, when known: S3 leases name it).
    Writing(Option<Holder>),
}

impl Lake {
    fn lease_path(&self) -> ObjectPath {
        self.object_path(&format!("{META_DIR}/lease.json"))
    }

    /// Takes the lake's writer lock, waiting (with a warning naming the
    /// holder) while another writer holds it.
    pub async fn lock_for_writing(&self) -> anyhow::Result<LakeLock> {
        match self.local_root() {
            Some(root) => {
                let dir = root.join(META_DIR);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create the lake at {}", root.display()))?;
                let path = dir.join("lock");
                let file = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let file = tokio::task::spawn_blocking(move || {
                    match file.try_lock() {
                        Ok(()) => {}
                        Err(std::fs::TryLockError::WouldBlock) => {
                            tracing::warn!(
                                "waiting for the conversion that holds {} to finish",
                                path.display()
                            );
                            file.lock()
                                .with_context(|| format!("cannot lock {}", path.display()))?;
                        }
                        Err(std::fs::TryLockError::Error(e)) => {
                            return Err(e)
                                .with_context(|| format!("cannot lock {}", path.display()));
                        }
                    }
                    anyhow::Ok(file)
                })
                .await
                .context("taking the lake's lock panicked")??;
                Ok(LakeLock {
                    held: Held::Local(file),
                })
            }
            None => self.take_lease().await,
        }
    }

    /// Whether another process holds the writer lock now.
    pub async fn writer_state(&self) -> anyhow::Result<WriterState> {
        match self.local_root() {
            Some(root) => {
                let path = root.join(META_DIR).join("lock");
                let Ok(file) = File::open(&path) else {
                    return Ok(WriterState::Idle);
                };
                Ok(match file.try_lock_shared() {
                    Ok(()) => WriterState::Idle,
                    Err(_) => WriterState::Writing(None),
                })
            }
            None => Ok(match self.read_lease().await? {
                Some((holder, _)) if !holder.released(Utc::now()) => {
                    WriterState::Writing(Some(holder))
                }
                _ => WriterState::Idle,
            }),
        }
    }

    async fn read_lease(&self) -> anyhow::Result<Option<(Holder, Option<String>)>> {
        let path = self.lease_path();
        let result = match self.store().get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error(e, &self.object_url(&path))),
        };
        let etag = result.meta.e_tag.clone();
        let bytes = result
            .bytes()
            .await
            .map_err(|e| store_error(e, &self.object_url(&path)))?;
        // An unreadable lease is treated as lapsed: it will be replaced.
        let holder = serde_json::from_slice(&bytes).unwrap_or(Holder {
            host: "unknown".into(),
            pid: 0,
            since: String::new(),
            expires: None,
        });
        Ok(Some((holder, etag)))
    }

    async fn take_lease(&self) -> anyhow::Result<LakeLock> {
        let path = self.lease_path();
        let url = self.object_url(&path);
        let seconds = lease_seconds();
        let mut me = Holder::this_process();
        let mut waited_for: Option<Holder> = None;
        loop {
            me.expires = Some(expiry(seconds));
            let body = PutPayload::from(serde_json::to_vec_pretty(&me)?);
            let current = self.read_lease().await?;
            let mode = match &current {
                None => PutMode::Create,
                Some((holder, etag)) if holder.released(Utc::now()) => {
                    if holder.pid != 0 {
                        tracing::warn!(
                            "taking over the lapsed lease {url} of a writer that stopped ({})",
                            holder.describe()
                        );
                    }
                    PutMode::Update(UpdateVersion {
                        e_tag: etag.clone(),
                        version: None,
                    })
                }
                Some((holder, _)) => {
                    if waited_for.as_ref() != Some(holder) {
                        tracing::warn!(
                            "waiting for the conversion that holds {url} to finish ({}, lease until {})",
                            holder.describe(),
                            holder.expires.as_deref().unwrap_or("?")
                        );
                        waited_for = Some(holder.clone());
                    }
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            };
            let updating = matches!(mode, PutMode::Update(_));
            match self
                .store()
                .put_opts(&path, body, PutOptions::from(mode))
                .await
            {
                Ok(result) => {
                    let etag = Arc::new(Mutex::new(result.e_tag));
                    let lost = Arc::new(AtomicBool::new(false));
                    let renewer = tokio::spawn(renew(
                        self.store().clone(),
                        path.clone(),
                        me.clone(),
                        seconds,
                        etag.clone(),
                        lost.clone(),
                    ));
                    return Ok(LakeLock {
                        held: Held::Lease(Lease {
                            store: self.store().clone(),
                            path,
                            etag,
                            lost,
                            renewer,
                        }),
                    });
                }
                // Another writer won the race (or removed the lapsed lease
                // we meant to replace): look again.
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => continue,
                Err(object_store::Error::NotFound { .. }) if updating => continue,
                Err(object_store::Error::NotImplemented { .. }) => anyhow::bail!(
                    "{url}: this S3 server does not support conditional writes (If-None-Match), which two writers need to share a lake safely"
                ),
                Err(e) => return Err(store_error(e, &url)),
            }
        }
    }
}

fn expiry(seconds: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Renews the lease until aborted; marks it lost if another writer took it.
async fn renew(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    mut me: Holder,
    seconds: i64,
    etag: Arc<Mutex<Option<String>>>,
    lost: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(lease_renew(seconds)).await;
        me.expires = Some(expiry(seconds));
        let Ok(body) = serde_json::to_vec_pretty(&me) else {
            return;
        };
        let current = etag.lock().expect("lease etag").clone();
        let mode = PutMode::Update(UpdateVersion {
            e_tag: current,
            version: None,
        });
        match store
            .put_opts(&path, PutPayload::from(body), PutOptions::from(mode))
            .await
        {
            Ok(result) => *etag.lock().expect("lease etag") = result.e_tag,
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::NotFound { .. }) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // A transient failure: the lease still has time; try again.
            Err(e) => tracing::debug!("cannot renew the lease {path}: {e}"),
        }
    }
}

impl LakeLock {
    /// Fails if this writer no longer holds the lake (its lease lapsed and
    /// another writer took it): nothing more may be committed.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Held::Lease(lease) = &self.held
            && lease.lost.load(Ordering::SeqCst)
        {
            anyhow::bail!(
                "this conversion lost the lake's lease {} (it stalled longer than the lease lasts) and another writer took over: stopped before committing more; run it again",
                lease.path
            );
        }
        Ok(())
    }

    /// Releases the lock: deletes an S3 lease if this writer still holds it.
    pub async fn release(self) {
        if let Held::Lease(lease) = &self.held {
            lease.renewer.abort();
            let ours = lease.etag.lock().expect("lease etag").clone();
            let current = lease
                .store
                .head(&lease.path)
                .await
                .ok()
                .and_then(|m| m.e_tag);
            if ours.is_some() && current == ours {
                let _ = lease.store.delete(&lease.path).await;
            }
        }
    }
}
