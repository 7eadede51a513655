//! Which parameters are worth a shared volume — the bookkeeping only, no Docker calls.
//!
//! Copying `/drover/params.json` into a container through the Docker API costs the daemon
//! an extraction in a re-executed helper (~45 ms of CPU on Docker 20.10, about a fifth of
//! a whole `docker run`). Parameters often repeat (a distribution's ticks, parameterless
//! actions), so the second time the same bytes are seen within [`ParamsCache::ttl`] they
//! are copied once into a volume that every later job with those bytes mounts read-only
//! at `/drover`. Parameters seen once keep the per-job copy. Keys are the exact bytes, so
//! two different parameter sets can never share a volume.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A volume holding one `params.json`, and the never-started container that keeps it in
/// use (so `docker volume prune` cannot take it from under running jobs).
#[derive(Debug, PartialEq, Eq)]
pub struct ParamsVolume {
    /// The volume's name.
    pub name: String,
    /// The holder container's id.
    pub holder: String,
}

#[derive(Debug)]
enum Entry {
    /// Seen once, at this time.
    Seen(Instant),
    /// A slot started building the volume at this time; others copy meanwhile.
    Building(Instant),
    /// Built; last handed out at this time.
    Ready(Arc<ParamsVolume>, Instant),
}

/// What to do for one container.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Copy the file into the container.
    Copy,
    /// Build the shared volume (then call [`ParamsCache::built`]), and use it.
    Build,
    /// Mount this volume read-only.
    Mount(Arc<ParamsVolume>),
}

/// The bookkeeping: which parameter bytes were seen, which have a volume.
#[derive(Debug)]
pub struct ParamsCache {
    entries: HashMap<Vec<u8>, Entry>,
    /// How long a sighting or an unused volume is remembered.
    ttl: Duration,
    /// At most this many volumes (each is a volume and a created container).
    max_volumes: usize,
    /// At most this many remembered sightings.
    max_seen: usize,
}

impl ParamsCache {
    /// An empty cache.
    pub fn new(ttl: Duration, max_volumes: usize, max_seen: usize) -> ParamsCache {
        ParamsCache {
            entries: HashMap::new(),
            ttl,
            max_volumes,
            max_seen,
        }
    }

    /// Remembered sightings (parameters seen once).
    fn sightings(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, Entry::Seen(_)))
            .count()
    }

    /// Decides how `params` reach the next container.
    pub fn decide(&mut self, params: &[u8], now: Instant) -> Decision {
        let ttl = self.ttl;
        let room = self.entries.len() - self.sightings() < self.max_volumes;
        match self.entries.get_mut(params) {
            Some(Entry::Ready(volume, used)) => {
                *used = now;
                Decision::Mount(volume.clone())
            }
            Some(Entry::Building(since)) if now.duration_since(*since) < ttl => Decision::Copy,
            Some(entry) => {
                let fresh = matches!(entry, Entry::Seen(seen) if now.duration_since(*seen) < ttl);
                if fresh && room {
                    *entry = Entry::Building(now);
                    Decision::Build
                } else {
                    *entry = Entry::Seen(now);
                    Decision::Copy
                }
            }
            None => {
                if self.sightings() >= self.max_seen {
                    self.entries.retain(|_, e| !matches!(e, Entry::Seen(_)));
                }
                self.entries.insert(params.to_vec(), Entry::Seen(now));
                Decision::Copy
            }
        }
    }

    /// Records the outcome of a [`Decision::Build`]: the volume, or `None` when building
    /// failed (the bytes count as seen again, so a later job retries).
    pub fn built(&mut self, params: &[u8], volume: Option<Arc<ParamsVolume>>, now: Instant) {
        let entry = match volume {
            Some(volume) => Entry::Ready(volume, now),
            None => Entry::Seen(now),
        };
        self.entries.insert(params.to_vec(), entry);
    }

    /// Forgets sightings older than the ttl and hands back the volumes no container uses
    /// that were last handed out longer than the ttl ago: the caller removes them.
    pub fn expired(&mut self, now: Instant) -> Vec<Arc<ParamsVolume>> {
        let ttl = self.ttl;
        let mut gone = Vec::new();
        self.entries.retain(|_, entry| match entry {
            Entry::Seen(seen) => now.duration_since(*seen) < ttl,
            // a build that never reported back (its task was cancelled) is forgotten
            Entry::Building(since) => now.duration_since(*since) < ttl,
            Entry::Ready(volume, used) => {
                // one reference is ours: any other is a container's lease
                let keep = Arc::strong_count(volume) > 1 || now.duration_since(*used) < ttl;
                if !keep {
                    gone.push(volume.clone());
                }
                keep
            }
        });
        gone
    }

    /// Forgets everything and hands back every volume (the executor is stopping).
    pub fn take_all(&mut self) -> Vec<Arc<ParamsVolume>> {
        self.entries
            .drain()
            .filter_map(|(_, e)| match e {
                Entry::Ready(volume, _) => Some(volume),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(name: &str) -> Arc<ParamsVolume> {
        Arc::new(ParamsVolume {
            name: name.into(),
            holder: format!("holder-{name}"),
        })
    }

    #[test]
    fn copies_the_first_time_builds_the_second_then_mounts() {
        let t = Instant::now();
        let mut cache = ParamsCache::new(Duration::from_secs(60), 8, 8);
        assert_eq!(cache.decide(b"{}", t), Decision::Copy);
        assert_eq!(cache.decide(b"{\"a\":1}", t), Decision::Copy);
        assert_eq!(cache.decide(b"{}", t), Decision::Build);
        // while one slot builds, the others copy rather than wait
        assert_eq!(cache.decide(b"{}", t), Decision::Copy);
        let v = volume("v1");
        cache.built(b"{}", Some(v.clone()), t);
        assert_eq!(cache.decide(b"{}", t), Decision::Mount(v.clone()));
        // exact bytes only
        assert_eq!(cache.decide(b"{ }", t), Decision::Copy);
    }

    #[test]
    fn a_failed_build_is_retried_by_a_later_job() {
        let t = Instant::now();
        let mut cache = ParamsCache::new(Duration::from_secs(60), 8, 8);
        cache.decide(b"{}", t);
        assert_eq!(cache.decide(b"{}", t), Decision::Build);
        cache.built(b"{}", None, t);
        assert_eq!(cache.decide(b"{}", t), Decision::Build);
        // a build that never reports back does not block the bytes for ever
        let later = t + Duration::from_secs(61);
        assert_eq!(cache.decide(b"{}", later), Decision::Copy);
        assert_eq!(cache.decide(b"{}", later), Decision::Build);
    }

    #[test]
    fn sightings_older_than_the_ttl_do_not_count() {
        let t = Instant::now();
        let mut cache = ParamsCache::new(Duration::from_secs(60), 8, 8);
        cache.decide(b"{}", t);
        let later = t + Duration::from_secs(61);
        assert_eq!(cache.decide(b"{}", later), Decision::Copy);
        assert_eq!(cache.decide(b"{}", later), Decision::Build);
    }

    #[test]
    fn volumes_are_capped_and_sightings_bounded() {
        let t = Instant::now();
        let mut cache = ParamsCache::new(Duration::from_secs(60), 1, 2);
        cache.decide(b"1", t);
        assert_eq!(cache.decide(b"1", t), Decision::Build);
        cache.built(b"1", Some(volume("v1")), t);
        cache.decide(b"2", t);
        assert_eq!(
            cache.decide(b"2", t),
            Decision::Copy,
            "no room for a second volume"
        );
        cache.decide(b"3", t);
        cache.decide(b"4", t);
        assert!(cache.sightings() <= 2);
        assert!(matches!(cache.decide(b"1", t), Decision::Mount(_)));
    }

    #[test]
    fn only_unused_and_idle_volumes_expire() {
        let t = Instant::now();
        let mut cache = ParamsCache::new(Duration::from_secs(60), 8, 8);
        for p in [b"1", b"2"] {
            cache.decide(p, t);
            cache.decide(p, t);
        }
        cache.built(b"1", Some(volume("v1")), t);
        cache.built(b"2", Some(volume("v2")), t);
        let Decision::Mount(lease) = cache.decide(b"2", t) else {
            panic!("expected a mount")
        };
        cache.decide(b"3", t);
        assert!(cache.expired(t + Duration::from_secs(30)).is_empty());
        let gone = cache.expired(t + Duration::from_secs(61));
        assert_eq!(gone, vec![volume("v1")], "v2 is leased by a container");
        drop(lease);
        assert_eq!(
            cache.expired(t + Duration::from_secs(61)),
            vec![volume("v2")]
        );
        assert_eq!(
            cache.decide(b"3", t + Duration::from_secs(61)),
            Decision::Copy
        );
        assert!(cache.take_all().is_empty());
    }
}
