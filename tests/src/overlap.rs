//! The overlap monitor: polls the Docker engine for two running containers of one job,
//! the one thing drover promises never to do.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;
use tokio::task::JoinHandle;

/// How often the engine is asked.
const POLL: Duration = Duration::from_millis(25);

/// What the monitor saw of one job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobSighting {
    /// The most containers of the job seen running at once.
    pub max_running: usize,
    /// Time during which two or more ran (polls that saw it × the interval between them).
    pub overlap: Duration,
    /// Distinct containers seen running.
    pub containers: usize,
}

/// Polls `docker ps` for running drover containers (label `drover.job`) until dropped.
#[derive(Debug)]
pub struct OverlapMonitor {
    seen: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<String, JobSighting>,
    containers: HashMap<String, std::collections::HashSet<String>>,
    polls: u64,
    errors: u64,
}

impl OverlapMonitor {
    /// Starts polling the local engine.
    ///
    /// # Errors
    /// When the engine cannot be reached.
    pub async fn start() -> anyhow::Result<OverlapMonitor> {
        let docker = Docker::connect_with_local_defaults()?
            .negotiate_version()
            .await?;
        let seen = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(watch(docker, seen.clone()));
        Ok(OverlapMonitor { seen, task })
    }

    /// Every job seen with two or more running containers at once.
    pub fn overlapping(&self) -> BTreeMap<String, JobSighting> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.jobs
            .iter()
            .filter(|(_, s)| s.max_running > 1)
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect()
    }

    /// What was seen of `job`.
    pub fn job(&self, job: &str) -> JobSighting {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.jobs.get(job).cloned().unwrap_or_default()
    }

    /// Polls made and polls that failed.
    pub fn polls(&self) -> (u64, u64) {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        (seen.polls, seen.errors)
    }
}

impl Drop for OverlapMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch(docker: Docker, seen: Arc<Mutex<State>>) {
    let mut filters = HashMap::new();
    filters.insert("label".to_owned(), vec!["drover.job".to_owned()]);
    filters.insert("status".to_owned(), vec!["running".to_owned()]);
    let mut last = Instant::now();
    loop {
        let options = ListContainersOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = docker.list_containers(Some(options)).await;
        let now = Instant::now();
        let since_last = now - last;
        last = now;
        {
            let mut state = seen.lock().unwrap_or_else(|e| e.into_inner());
            state.polls += 1;
            match listed {
                Ok(list) => {
                    let mut running: HashMap<String, Vec<String>> = HashMap::new();
                    for c in list {
                        let job = c.labels.as_ref().and_then(|l| l.get("drover.job")).cloned();
                        if let (Some(job), Some(id)) = (job, c.id) {
                            running.entry(job).or_default().push(id);
                        }
                    }
                    for (job, ids) in running {
                        let State {
                            jobs, containers, ..
                        } = &mut *state;
                        let known = containers.entry(job.clone()).or_default();
                        known.extend(ids.iter().cloned());
                        let sighting = jobs.entry(job).or_default();
                        sighting.max_running = sighting.max_running.max(ids.len());
                        sighting.containers = known.len();
                        if ids.len() > 1 {
                            sighting.overlap += since_last;
                        }
                    }
                }
                Err(_) => state.errors += 1,
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
