//! The progress bar shown during a run: elapsed time, connected devices,
//! messages per second, acks and positions seen on MQTT.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::runner::Fleet;
use crate::stats::get;

const REFRESH: Duration = Duration::from_millis(500);

pub struct Progress {
    bar: ProgressBar,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts updating the bar; hidden when the config says quiet or
    /// stderr is not a terminal (CI logs stay clean).
    pub fn start(fleet: Arc<Fleet>) -> Progress {
        if !fleet.config.progress || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                task: None,
            };
        }
        let total = fleet.config.duration.as_secs().max(1);
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let task = tokio::spawn(update(bar.clone(), fleet));
        Progress {
            bar,
            task: Some(task),
        }
    }

    pub async fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
            let _ = task.await;
        }
        self.bar.finish_and_clear();
    }
}

async fn update(bar: ProgressBar, fleet: Arc<Fleet>) {
    let mut ticker = tokio::time::interval(REFRESH);
    let (mut last_sent, mut last_at) = (0, Instant::now());
    loop {
        ticker.tick().await;
        let s = &fleet.stats;
        let sent = get(&s.messages_sent);
        let rate = (sent - last_sent) as f64 / last_at.elapsed().as_secs_f64().max(1e-3);
        (last_sent, last_at) = (sent, Instant::now());
        let mqtt = match &fleet.ledger {
            Some(ledger) => format!(" · {} on MQTT", ledger.received()),
            None => String::new(),
        };
        bar.set_position(fleet.start.elapsed().as_secs());
        bar.set_message(format!(
            "{} connected · {rate:.0} msg/s · {} acks{mqtt}",
            get(&s.connected),
            get(&s.acks_received),
        ));
    }
}
