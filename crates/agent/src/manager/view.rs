//! How a container looks from outside: `ps`'s summary line with docker's human status, and
//! `inspect`'s document, both made from a [`View`].

use std::time::Duration;

use berth_client::api::{
    ContainerInspect, ContainerState as ApiState, ContainerStatus, ContainerSummary,
};
use berth_runtime::supervisor::Status;

use super::{UNKNOWN_EXIT, View, ZERO_TIME};

pub(super) fn summary(view: &View) -> ContainerSummary {
    let record = &view.record;
    ContainerSummary {
        id: record.id.as_str().to_owned(),
        name: record.name.clone(),
        image: record.image.clone(),
        image_id: record.image_id.clone(),
        command: std::iter::once(record.path.as_str())
            .chain(record.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        created: record.created.clone(),
        state: view.status,
        status: human_status(view, chrono::Utc::now()),
    }
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// docker's `Up 3 minutes` / `Exited (0) 2 seconds ago` / `Created`.
pub fn human_status(view: &View, now: chrono::DateTime<chrono::Utc>) -> String {
    let since = |time: Option<&String>| {
        time.and_then(|t| parse_time(t))
            .map(|t| human_duration((now - t).to_std().unwrap_or_default()))
            .unwrap_or_else(|| "a while".into())
    };
    let state = view.state.as_ref();
    let code = state.and_then(|s| s.exit_code);
    match view.status {
        ContainerStatus::Created => "Created".into(),
        ContainerStatus::Running => {
            let up = format!("Up {}", since(state.and_then(|s| s.started_at.as_ref())));
            match view.health.as_ref().map(|h| h.status) {
                None => up,
                Some(berth_client::api::HealthStatus::Starting) => {
                    format!("{up} (health: starting)")
                }
                Some(status) => format!("{up} ({})", status.as_str()),
            }
        }
        ContainerStatus::Restarting => format!(
            "Restarting ({}) {} ago",
            code.unwrap_or(0),
            since(state.and_then(|s| s.finished_at.as_ref()))
        ),
        ContainerStatus::Exited => format!(
            "Exited ({}) {} ago",
            code.unwrap_or(UNKNOWN_EXIT),
            since(state.and_then(|s| s.finished_at.as_ref()))
        ),
        ContainerStatus::Removing => "Removal In Progress".into(),
        ContainerStatus::Dead => "Dead".into(),
    }
}

/// docker's units: `Less than a second`, `5 seconds`, `About a minute`, `3 minutes`, …
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{secs} seconds"),
        60..120 => "About a minute".into(),
        120..3600 => format!("{} minutes", secs / 60),
        3600..7200 => "About an hour".into(),
        7200..172_800 => format!("{} hours", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

pub(super) fn inspect(view: &View) -> ContainerInspect {
    let state = view.state.as_ref();
    let status = view.status;
    ContainerInspect {
        id: view.record.id.as_str().to_owned(),
        name: view.record.name.clone(),
        created: view.record.created.clone(),
        image: view.record.image.clone(),
        image_id: view.record.image_id.clone(),
        path: view.record.path.clone(),
        args: view.record.args.clone(),
        state: ApiState {
            status,
            running: status == ContainerStatus::Running,
            restarting: status == ContainerStatus::Restarting,
            oom_killed: state.is_some_and(|s| s.oom_killed),
            dead: status == ContainerStatus::Dead,
            pid: state
                .and_then(|s| s.pid)
                .filter(|_| status == ContainerStatus::Running)
                .unwrap_or(0),
            exit_code: state
                .map(|s| {
                    s.exit_code.unwrap_or(if s.status == Status::Exited {
                        UNKNOWN_EXIT
                    } else {
                        0
                    })
                })
                .unwrap_or(0),
            error: state.and_then(|s| s.error.clone()).unwrap_or_default(),
            started_at: state
                .and_then(|s| s.started_at.clone())
                .unwrap_or_else(|| ZERO_TIME.into()),
            finished_at: state
                .and_then(|s| s.finished_at.clone())
                .unwrap_or_else(|| ZERO_TIME.into()),
            health: view.health.clone(),
        },
        restart_count: state.map_or(0, |s| s.restart_count),
        log_path: view.dir.log().display().to_string(),
        config: view.record.request.clone(),
        network_settings: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_docker_writes_them() {
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human_duration(Duration::from_secs(90)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 minutes");
        assert_eq!(human_duration(Duration::from_secs(3 * 86_400)), "3 days");
    }
}
