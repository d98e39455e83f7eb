//! The smaller sections: termination, plugins, cache, build, hooks, events, joins, schedules.

use std::fmt;

use k8s_openapi::api::batch::v1 as batch;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::k8s::Resources;
use super::ops::{OrderedMap, Param};

spec! {
    /// When a run ends on its own: retries, a deadline, cleanup.
    pub struct Termination {
        pub max_retries: Option<i64>,
        /// Seconds after the run finishes before its resources are cleaned up.
        pub ttl: Option<i64>,
        /// Seconds the run may take before it is stopped.
        pub timeout: Option<i64>,
        pub culling: Option<Culling>,
        pub probe: Option<ActivityProbe>,
        pub pod_failure_policy: Option<batch::PodFailurePolicy>,
    }
}

spec! {
    pub struct Culling {
        pub timeout: Option<i64>,
    }
}

spec! {
    pub struct ActivityProbe {
        pub exec: Option<ExecProbe>,
        pub http: Option<HttpProbe>,
    }
}

spec! {
    pub struct ExecProbe {
        pub command: Option<Vec<String>>,
    }
}

spec! {
    pub struct HttpProbe {
        pub path: Option<String>,
        pub port: Option<i32>,
    }
}

spec! {
    /// Platform features switched on or off for the run.
    pub struct Plugins {
        pub auth: Option<bool>,
        pub docker: Option<bool>,
        pub shm: Option<bool>,
        pub tmux: Option<bool>,
        pub sandbox: Option<bool>,
        pub ssh: Option<bool>,
        pub mount_artifacts_store: Option<bool>,
        pub collect_artifacts: Option<bool>,
        pub collect_logs: Option<bool>,
        pub collect_resources: Option<bool>,
        pub sync_statuses: Option<bool>,
        pub auto_resume: Option<bool>,
        pub log_level: Option<String>,
        pub external_host: Option<bool>,
        pub sidecar: Option<SidecarContainer>,
        pub notifications: Option<Vec<Notification>>,
    }
}

spec! {
    pub struct SidecarContainer {
        pub image: Option<String>,
        pub image_tag: Option<String>,
        pub image_pull_policy: Option<String>,
        pub sleep_interval: Option<i64>,
        pub sync_interval: Option<i64>,
        pub monitor_logs: Option<bool>,
        pub resources: Option<Resources>,
    }
}

spec! {
    pub struct Notification {
        pub connections: Vec<String>,
        pub trigger: Option<Status>,
    }
}

str_enum! {
    /// A run status, as upstream names them.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub enum Status {
        Created, Resuming, OnSchedule, Compiled, Queued, Scheduled, Starting, Running, Processing,
        Stopping, Failed, Stopped, Succeeded, Skipped, Warning, Unschedulable, UpstreamFailed,
        Retrying, Unknown, Done,
    }
}

/// The run lifecycle: which statuses end a run, which an executor may start from, and which
/// moves are legal. The one list the server, the controllers and the CLI use
/// (`polyaxon_server::api::RunStatus`).
impl Status {
    pub const ALL: &'static [Status] = &[
        Status::Created,
        Status::Resuming,
        Status::OnSchedule,
        Status::Compiled,
        Status::Queued,
        Status::Scheduled,
        Status::Starting,
        Status::Running,
        Status::Processing,
        Status::Stopping,
        Status::Failed,
        Status::Stopped,
        Status::Succeeded,
        Status::Skipped,
        Status::Warning,
        Status::Unschedulable,
        Status::UpstreamFailed,
        Status::Retrying,
        Status::Unknown,
        Status::Done,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Resuming => "resuming",
            Status::OnSchedule => "on_schedule",
            Status::Compiled => "compiled",
            Status::Queued => "queued",
            Status::Scheduled => "scheduled",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Processing => "processing",
            Status::Stopping => "stopping",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
            Status::Succeeded => "succeeded",
            Status::Skipped => "skipped",
            Status::Warning => "warning",
            Status::Unschedulable => "unschedulable",
            Status::UpstreamFailed => "upstream_failed",
            Status::Retrying => "retrying",
            Status::Unknown => "unknown",
            Status::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.iter().copied().find(|st| st.as_str() == s)
    }

    /// Whether the run has ended in this status.
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            Status::Succeeded
                | Status::Failed
                | Status::Stopped
                | Status::Skipped
                | Status::UpstreamFailed
                | Status::Done
        )
    }

    /// Whether the run has not started yet: stopping it needs no executor.
    pub fn is_not_started(&self) -> bool {
        matches!(
            self,
            Status::Created
                | Status::OnSchedule
                | Status::Compiled
                | Status::Queued
                | Status::Scheduled
                | Status::Unschedulable
        )
    }

    /// Whether an executor may (re)start the run from here.
    pub fn is_startable(&self) -> bool {
        matches!(
            self,
            Status::Created
                | Status::Compiled
                | Status::Queued
                | Status::Scheduled
                | Status::Resuming
                | Status::Retrying
                | Status::Unknown
        )
    }

    /// Whether the run is in an executor's hands: it has been claimed (left `created`) and has
    /// not ended. Not while `resuming`: the record of its last executor is stale until the
    /// next one claims it. An executor that died leaves such a run an orphan.
    pub fn is_claimed(&self) -> bool {
        !matches!(self, Status::Created | Status::Resuming) && !self.is_done()
    }

    /// Whether a run may move from this status to `to`: never back to `created`; an ended run
    /// only to `resuming`; a stopping one only to an end (or `warning`, `unknown`).
    pub fn can_transition(&self, to: Status) -> bool {
        if to == Status::Created {
            return false;
        }
        if self.is_done() {
            return to == Status::Resuming;
        }
        if *self == Status::Stopping {
            return to.is_done() || to == Status::Warning || to == Status::Unknown;
        }
        true
    }
}

impl Default for Status {
    /// Every run begins `created`.
    fn default() -> Self {
        Status::Created
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<10}` lines statuses up.
        f.pad(self.as_str())
    }
}

str_enum! {
    pub enum CacheSection { Containers, Init, Connections }
}

spec! {
    /// Reuse a previous run's results when nothing relevant changed.
    pub struct Cache {
        pub disable: Option<bool>,
        pub ttl: Option<i64>,
        pub io: Option<Vec<String>>,
        pub sections: Option<Vec<CacheSection>>,
    }
}

str_enum! {
    /// How a preset or patch combines with what it patches.
    pub enum PatchStrategy { Replace, Isnull, PostMerge, PreMerge }
}

spec! {
    /// Build an image before running, with a builder component.
    pub struct Build {
        pub hub_ref: String,
        pub connection: Option<String>,
        pub presets: Option<Vec<String>>,
        pub queue: Option<String>,
        pub namespace: Option<String>,
        pub cache: Option<Cache>,
        pub params: Option<OrderedMap<Param>>,
        pub run_patch: Option<serde_json::Map<String, serde_json::Value>>,
        pub patch_strategy: Option<PatchStrategy>,
    }
}

spec! {
    /// Run another component when this one reaches a status.
    pub struct Hook {
        pub hub_ref: String,
        pub connection: Option<String>,
        pub trigger: Option<Status>,
        pub conditions: Option<String>,
        pub presets: Option<Vec<String>>,
        pub queue: Option<String>,
        pub namespace: Option<String>,
        pub params: Option<OrderedMap<Param>>,
        pub disable_defaults: Option<bool>,
    }
}

spec! {
    /// Collect values from other runs (selected by a query) into list params.
    pub struct Join {
        #[serde(rename = "ref")]
        pub reference: Option<String>,
        pub query: String,
        pub sort: Option<String>,
        pub limit: Option<i64>,
        pub offset: Option<i64>,
        pub params: Option<OrderedMap<Param>>,
    }
}

spec! {
    /// Start when an upstream operation emits one of these events.
    pub struct EventTrigger {
        pub kinds: Vec<String>,
        #[serde(rename = "ref")]
        pub reference: String,
    }
}

spec! {
    pub struct Template {
        pub enabled: Option<bool>,
        pub description: Option<String>,
        pub fields: Option<Vec<String>>,
    }
}

str_enum! {
    /// When a DAG operation starts, given its dependencies' outcomes.
    pub enum TriggerPolicy { AllSucceeded, AllFailed, AllDone, OneSucceeded, OneFailed, OneDone }
}

tagged! {
    /// Start the operation on a schedule.
    pub enum Schedule {
        "cron" => Cron(CronSchedule),
        "interval" => Interval(IntervalSchedule),
        "datetime" => DateTime(DateTimeSchedule),
    }
}

spec! {
    pub struct CronSchedule {
        pub cron: CronExpr,
        pub start_at: Option<DateTimeStr>,
        pub end_at: Option<DateTimeStr>,
        pub max_runs: Option<i64>,
        pub depends_on_past: Option<bool>,
    }
}

spec! {
    pub struct IntervalSchedule {
        pub start_at: Option<DateTimeStr>,
        pub end_at: Option<DateTimeStr>,
        pub max_runs: Option<i64>,
        /// Seconds between runs, or a duration such as `"1h30m"` or `"1 day, 2:00:00"`.
        pub frequency: Frequency,
        pub depends_on_past: Option<bool>,
    }
}

spec! {
    pub struct DateTimeSchedule {
        pub start_at: DateTimeStr,
    }
}

/// A five-field cron expression (`minute hour day-of-month month day-of-week`), checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct CronExpr(pub String);

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_cron(&s).map_err(serde::de::Error::custom)?;
        Ok(CronExpr(s))
    }
}

fn check_cron(s: &str) -> Result<(), String> {
    if s.starts_with('@') {
        return match s {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            _ => Err(format!("unknown cron shortcut `{s}`")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "a cron expression has 5 fields (minute hour day month weekday), found {}",
            fields.len()
        ));
    }
    let bounds = [
        (0, 59, "minute"),
        (0, 23, "hour"),
        (1, 31, "day of month"),
        (1, 12, "month"),
        (0, 7, "day of week"),
    ];
    for (field, (lo, hi, what)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            if let Some(st) = step
                && st.parse::<u32>().map_or(true, |n| n == 0)
            {
                return Err(format!("bad step `{st}` in the {what} field"));
            }
            if range == "*" {
                continue;
            }
            let named = |x: &str| -> Option<u32> {
                const MONTHS: [&str; 12] = [
                    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                    "dec",
                ];
                const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
                let l = x.to_ascii_lowercase();
                x.parse().ok().or_else(|| {
                    if what == "month" {
                        MONTHS.iter().position(|m| *m == l).map(|i| i as u32 + 1)
                    } else if what == "day of week" {
                        DAYS.iter().position(|d| *d == l).map(|i| i as u32)
                    } else {
                        None
                    }
                })
            };
            let ends: Vec<&str> = range.split('-').collect();
            if ends.len() > 2 {
                return Err(format!("bad range `{range}` in the {what} field"));
            }
            for e in ends {
                match named(e) {
                    Some(n) if (lo..=hi).contains(&n) => {}
                    Some(n) => {
                        return Err(format!(
                            "{n} is out of range for the {what} field ({lo}-{hi})"
                        ));
                    }
                    None => return Err(format!("`{e}` is not valid in the {what} field")),
                }
            }
        }
    }
    Ok(())
}

/// A date or datetime: RFC 3339 (`2019-06-24T21:20:07+00:00`), or `YYYY-MM-DD[ HH:MM[:SS]]`
/// read as UTC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct DateTimeStr(pub String);

impl<'de> Deserialize<'de> for DateTimeStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_datetime(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not a datetime; write e.g. `2024-06-24T21:20:07+00:00`"
            ))
        })?;
        Ok(DateTimeStr(s))
    }
}

/// Reads the datetime forms polyaxonfiles use; naive times are UTC.
pub fn parse_datetime(s: &str) -> Option<jiff::Timestamp> {
    let s = s.trim();
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    None
}

/// An interval: seconds, or a duration written as `"90s"`, `"1h30m"`, `"2 days"`, `"1:30:00"`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Frequency(pub f64);

impl JsonSchema for Frequency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Frequency".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Seconds, or a duration such as \"90s\", \"1h30m\", \"2 days\", \"1:30:00\"",
            "type": ["number", "string"]
        })
    }
}

impl<'de> Deserialize<'de> for Frequency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Frequency;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("seconds, or a duration such as \"1h30m\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Frequency, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Frequency, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Frequency, E> {
                if v > 0.0 {
                    Ok(Frequency(v))
                } else {
                    Err(E::custom("the frequency must be positive"))
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Frequency, E> {
                parse_duration(v).map(Frequency).ok_or_else(|| {
                    E::custom(format!(
                        "`{v}` is not a duration; write seconds or e.g. \"1h30m\""
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Seconds in a duration string: `90`, `90s`, `1h30m`, `2 days`, `1:30:00`, `1 day, 2:00:00`.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return Some(n);
    }
    let mut total = 0.0;
    let mut rest = s;
    // Python's timedelta form: "[N day[s], ]H:MM:SS".
    if let Some((days, clock)) = s.split_once(',') {
        let d = days
            .trim()
            .trim_end_matches("days")
            .trim_end_matches("day")
            .trim();
        total += d.parse::<f64>().ok()? * 86400.0;
        rest = clock.trim();
    }
    if rest.contains(':') {
        let parts: Vec<f64> = rest
            .split(':')
            .map(|p| p.trim().parse().ok())
            .collect::<Option<_>>()?;
        let mut secs = 0.0;
        for p in parts {
            secs = secs * 60.0 + p;
        }
        return Some(total + secs);
    }
    let mut num = String::new();
    let mut matched = false;
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_alphabetic() {
            i += 1;
        }
        let unit: String = chars[start..i].iter().collect();
        let mult = match unit.as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 604800.0,
            _ => return None,
        };
        total += num.parse::<f64>().ok()? * mult;
        num.clear();
        matched = true;
    }
    if !num.is_empty() || !matched {
        return None;
    }
    Some(total)
}

/// `mount`: an artifacts store name, or `{name, paths}`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Mount {
    Name(String),
    Artifacts(ArtifactsMount),
}

spec! {
    pub struct ArtifactsMount {
        pub name: String,
        pub paths: Option<Vec<String>>,
    }
}

impl<'de> Deserialize<'de> for Mount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Mount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a store name or {name, paths}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Mount, E> {
                Ok(Mount::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Mount, A::Error> {
                let (mut name, mut paths) = (None, None);
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "name" => name = Some(map.next_value()?),
                        "paths" => paths = map.next_value()?,
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "unknown key `{other}`; expected `name` or `paths`"
                            )));
                        }
                    }
                }
                Ok(Mount::Artifacts(ArtifactsMount {
                    name: name.ok_or_else(|| serde::de::Error::missing_field("name"))?,
                    paths,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn lifecycle() {
        let t = |a: &str, b: &str| {
            Status::parse(a)
                .unwrap()
                .can_transition(Status::parse(b).unwrap())
        };
        assert!(t("created", "queued"));
        assert!(t("running", "succeeded"));
        assert!(t("stopping", "stopped"));
        assert!(!t("stopping", "running"));
        assert!(!t("succeeded", "running"));
        assert!(t("failed", "resuming"));
        assert!(!t("running", "created"));
    }

    use super::*;

    #[test]
    fn cron_expressions() {
        for ok in [
            "0 0 * * *",
            "*/5 * * * 1-5",
            "0 12 1 jan mon",
            "@daily",
            "0,30 9-17 * * *",
        ] {
            assert!(check_cron(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0 0 * *",
            "61 * * * *",
            "* * * * * *",
            "*/0 * * * *",
            "@sometimes",
            "x * * * *",
        ] {
            assert!(check_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("120"), Some(120.0));
        assert_eq!(parse_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_duration("2 days"), Some(172800.0));
        assert_eq!(parse_duration("1:30:00"), Some(5400.0));
        assert_eq!(parse_duration("1 day, 2:00:00"), Some(93600.0));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5"), Some(5.0));
    }

    #[test]
    fn datetimes() {
        assert!(parse_datetime("2019-06-24T21:20:07+00:00").is_some());
        assert!(parse_datetime("2019-06-24 21:20").is_some());
        assert!(parse_datetime("2019-06-24").is_some());
        assert!(parse_datetime("24/06/2019").is_none());
    }
}
