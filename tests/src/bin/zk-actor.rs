//! A drover coordination client in its own process, for tests that kill, stop or cut it.
//!
//! ```text
//! zk-actor take HOSTS QUEUE_PATH SESSION_MS   take one entry, print "taken NAME TOKEN DATA",
//!                                             then on loss print "lost REASON" and try to
//!                                             consume: "consumed" or "consume-error MESSAGE"
//! zk-actor lead HOSTS NAME ID SESSION_MS      campaign, print "leader ID", then on loss
//!                                             print "lost REASON"
//! ```
//! Lines go to stdout, flushed at once; logs go to stderr.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use drover_coordination::{Election, Queue, Session, ZkSettings};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    drover_tests::init_test_tracing();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .context("missing argument; see the usage in zk-actor.rs")
    };
    let command = arg(0)?;
    let session_ms: u64 = arg(if command == "take" { 3 } else { 4 })?
        .parse()
        .context("SESSION_MS must be a number of milliseconds")?;
    let settings = ZkSettings::new(arg(1)?).with_session_timeout(Duration::from_millis(session_ms));
    let session = Session::connect(&settings).await?;
    match command.as_str() {
        "take" => {
            let queue = Queue::open(&session, &arg(2)?).await?;
            let taken = queue
                .take(Some(Duration::from_secs(30)))
                .await?
                .context("queue stayed empty for 30 s")?;
            say(&format!(
                "taken {} {} {}",
                taken.name(),
                taken.token(),
                String::from_utf8_lossy(taken.data())
            ));
            let reason = taken.lost().tripped().await;
            say(&format!("lost {reason:?}"));
            match taken.consume().await {
                Ok(()) => say("consumed"),
                Err(e) => say(&format!("consume-error {e}")),
            }
        }
        "lead" => {
            let election = Election::new(&session, &arg(2)?, arg(3)?)?;
            let leadership = election.campaign().await?;
            say(&format!("leader {}", arg(3)?));
            let reason = leadership.lost().tripped().await;
            say(&format!("lost {reason:?}"));
        }
        other => bail!("unknown command {other:?}; use take or lead"),
    }
    Ok(())
}
