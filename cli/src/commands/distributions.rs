//! `drover distributions`.

use std::process::ExitCode;

use drover_model::Distribution;

use crate::args::{ClientArgs, Output};
use crate::output;

/// `drover distributions`: each distribution, who leads it, its last and next tick.
pub(crate) async fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let distributions = super::connect::client(&args)?.distributions().await?;
    match args.output {
        Output::Json => output::emit(&output::json(&distributions)?)?,
        Output::Table if distributions.is_empty() => {
            eprintln!("no distribution has published a status yet (is a distributor running?)");
        }
        Output::Table => {
            output::emit(&table(&distributions))?;
            for d in distributions.iter().filter(|d| d.stuck.is_some()) {
                eprintln!(
                    "warning: {}: {}",
                    d.name,
                    d.stuck.as_deref().unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table(distributions: &[Distribution]) -> String {
    let dash = || "-".to_owned();
    let rows: Vec<Vec<String>> = distributions
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.action.clone(),
                d.schedule.clone(),
                match (&d.leader, &d.stuck) {
                    (None, _) => "(none)".to_owned(),
                    (Some(leader), None) => leader.clone(),
                    (Some(leader), Some(_)) => format!("{leader} (STUCK)"),
                },
                d.last_tick.clone().unwrap_or_else(dash),
                d.next_tick.clone().unwrap_or_else(dash),
                d.last_job
                    .as_deref()
                    .map_or_else(dash, |id| id.chars().take(output::SHORT_ID).collect()),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME",
            "ACTION",
            "SCHEDULE",
            "LEADER",
            "LAST TICK",
            "NEXT TICK",
            "LAST JOB",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_leader_and_ticks() {
        let d = Distribution {
            name: "nightly".into(),
            action: "cleanup_jobs".into(),
            schedule: "cron 0 2 * * *".into(),
            catch_up: "latest".into(),
            leader: None,
            published_by: "d1".into(),
            last_tick: Some("2025-01-02T02:00:00.000Z".into()),
            last_job: Some("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
            next_tick: None,
            updated_at: "2025-01-02T02:00:01.000Z".into(),
            stuck: None,
        };
        let text = table(&[d]);
        assert!(text.starts_with("NAME"), "{text}");
        assert!(
            text.contains("(none)") && text.contains("67e55044") && !text.contains("bb680e5fe0c8"),
            "{text}"
        );
    }
}
