//! The scheduled jobs the engine says are due, run off the tick: today the
//! daily summary. At `analytics.summaries.at` in the node's time zone the
//! engine's clock makes `daily_summary` due (see
//! `drover_engine::systems::jobs`); the analytics consumer hands it here
//! once everything before it is stored, and this computes the day before
//! for every device it knows and publishes each on
//! `{prefix}/devices/{imei}/summary` (retained: the newest day stays for
//! late subscribers).

use std::collections::BTreeSet;
use std::sync::Arc;

use drover_api::Zone;
use drover_api::history::History;
use drover_api::summaries::{DaySummary, Days, summarize};
use drover_catalog::Catalog;
use drover_engine::systems::jobs::JobDue;
use drover_engine::{Fleet, LiveView};
use drover_mqtt::Publisher;
use drover_protocols::model::DeviceId;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The engine's name of the daily summary job.
pub const DAILY_SUMMARY: &str = "daily_summary";

/// Due jobs waiting to run, at most: a day's job is one entry, so this
/// holds a week of catch-up.
const QUEUE: usize = 16;

/// Where due jobs are handed: never waits (a full queue drops the job,
/// logged).
#[derive(Clone)]
pub struct JobQueue(flume::Sender<JobDue>);

impl JobQueue {
    pub fn hand(&self, job: JobDue) {
        if let Err(error) = self.0.try_send(job) {
            warn!(job = %error.into_inner().name, "a scheduled job was dropped: too many waiting");
        }
    }
}

/// What the daily summary reads and where it publishes.
pub struct Jobs {
    pub history: Arc<dyn History>,
    pub catalog: Arc<Catalog>,
    pub live: LiveView,
    pub publisher: Publisher,
    pub zone: Zone,
}

/// `{prefix}/devices/{imei}/summary`.
#[derive(Debug, Serialize)]
struct SummaryPayload<'a> {
    device: &'a str,
    timezone: &'a str,
    #[serde(flatten)]
    day: &'a DaySummary,
}

impl Jobs {
    /// Starts the task that runs due jobs until `shutdown`.
    pub fn start(self, shutdown: CancellationToken) -> (JobQueue, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = flume::bounded(QUEUE);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    job = receiver.recv_async() => match job {
                        Ok(job) => self.run(&job).await,
                        Err(_) => return,
                    },
                    () = shutdown.cancelled() => return,
                }
            }
        });
        (JobQueue(sender), task)
    }

    async fn run(&self, job: &JobDue) {
        if job.name != DAILY_SUMMARY {
            warn!(job = %job.name, "no such job");
            return;
        }
        let Some(day) = job
            .date
            .parse::<jiff::civil::Date>()
            .ok()
            .and_then(|date| date.yesterday().ok())
        else {
            warn!(date = %job.date, "daily summary for an impossible date");
            return;
        };
        let Some(days) = Days::new(day, day, &self.zone.zone) else {
            return;
        };
        let (mut published, mut failed) = (0usize, 0usize);
        // The fleet as of now, for every device: trips under way included.
        let fleet = self.live.load();
        for device in self.devices(&fleet) {
            let open = fleet
                .get(&DeviceId::new(&device))
                .and_then(|state| state.trip.as_deref().cloned());
            let summary = match summarize(&*self.history, &device, open, &days).await {
                Ok(mut summaries) => summaries.pop(),
                Err(error) => {
                    warn!(%error, imei = %device, "daily summary not computed");
                    failed += 1;
                    continue;
                }
            };
            let Some(summary) = summary else { continue };
            let payload = SummaryPayload {
                device: &device,
                timezone: &self.zone.name,
                day: &summary,
            };
            // Strings and numbers: serializing cannot fail.
            let json = serde_json::to_vec(&payload).unwrap_or_default();
            match self.publisher.summary(&device, json).await {
                Ok(()) => published += 1,
                Err(error) => {
                    warn!(%error, imei = %device, "daily summary not published");
                    failed += 1;
                }
            }
        }
        info!(day = %day, published, failed, "daily summaries");
    }

    /// Every device registered or live, once, in id order.
    fn devices(&self, fleet: &Fleet) -> BTreeSet<String> {
        let mut devices: BTreeSet<String> = self
            .catalog
            .devices
            .list()
            .into_iter()
            .map(|d| d.id)
            .collect();
        devices.extend(fleet.iter().map(|state| state.device.as_str().to_owned()));
        devices
    }
}
