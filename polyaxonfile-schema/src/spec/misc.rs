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

str_enum! {
    /// What a schedule does with the ticks it missed (its supervisor was down): run the
    /// latest of them once (the default), run each, or none.
    pub enum CatchUp { Latest, All, None }
}

str_enum! {
    /// A tick while the previous run still goes: start beside it (the default), skip the tick
    /// (upstream's `dependsOnPast: true`), or stop the previous run for the new one.
    pub enum ConcurrencyPolicy { Allow, Forbid, Replace }
}

spec! {
    pub struct CronSchedule {
        pub cron: CronExpr,
        /// The time zone the expression is read in (IANA, e.g. `Europe/Paris`; default UTC).
        pub timezone: Option<String>,
        pub start_at: Option<DateTimeStr>,
        pub end_at: Option<DateTimeStr>,
        pub max_runs: Option<i64>,
        pub depends_on_past: Option<bool>,
        pub catch_up: Option<CatchUp>,
        pub concurrency_policy: Option<ConcurrencyPolicy>,
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
        pub catch_up: Option<CatchUp>,
        pub concurrency_policy: Option<ConcurrencyPolicy>,
    }
}

impl Schedule {
    /// When it starts (`startAt`), stops (`endAt`) and how many runs it makes at most.
    pub fn bounds(
        &self,
    ) -> (
        Option<jiff::Timestamp>,
        Option<jiff::Timestamp>,
        Option<i64>,
    ) {
        let t = |d: &Option<DateTimeStr>| d.as_ref().and_then(|d| parse_datetime(&d.0));
        match self {
            Schedule::Cron(c) => (t(&c.start_at), t(&c.end_at), c.max_runs),
            Schedule::Interval(i) => (t(&i.start_at), t(&i.end_at), i.max_runs),
            Schedule::DateTime(d) => (parse_datetime(&d.start_at.0), None, Some(1)),
        }
    }

    pub fn catch_up(&self) -> CatchUp {
        match self {
            Schedule::Cron(c) => c.catch_up,
            Schedule::Interval(i) => i.catch_up,
            Schedule::DateTime(_) => None,
        }
        .unwrap_or(CatchUp::Latest)
    }

    /// The concurrency policy; `dependsOnPast: true` is `forbid`.
    pub fn concurrency_policy(&self) -> ConcurrencyPolicy {
        let (explicit, past) = match self {
            Schedule::Cron(c) => (c.concurrency_policy, c.depends_on_past),
            Schedule::Interval(i) => (i.concurrency_policy, i.depends_on_past),
            Schedule::DateTime(_) => (None, None),
        };
        explicit.unwrap_or(if past == Some(true) {
            ConcurrencyPolicy::Forbid
        } else {
            ConcurrencyPolicy::Allow
        })
    }

    /// The first tick strictly after `after` (`None`: the first one), ignoring `endAt`; none
    /// when there is no more. `Err` for a time zone the system does not know.
    pub fn next_tick(
        &self,
        after: Option<jiff::Timestamp>,
    ) -> Result<Option<jiff::Timestamp>, String> {
        let (start, _, _) = self.bounds();
        match self {
            Schedule::DateTime(_) => Ok(match after {
                None => start,
                Some(_) => None,
            }),
            Schedule::Interval(i) => {
                let every = jiff::SignedDuration::try_from_secs_f64(i.frequency.0)
                    .map_err(|e| format!("`frequency`: {e}"))?;
                if every <= jiff::SignedDuration::ZERO {
                    return Err("`frequency` must be positive".into());
                }
                // `startAt + k·frequency`, the first past `after`; without `startAt`, from now.
                let origin = start.unwrap_or_else(jiff::Timestamp::now);
                let Some(after) = after else {
                    return Ok(Some(origin));
                };
                if after < origin {
                    return Ok(Some(origin));
                }
                let k = (after.duration_since(origin).as_secs_f64() / every.as_secs_f64()).floor()
                    + 1.0;
                let next = origin
                    .checked_add(jiff::SignedDuration::from_secs_f64(every.as_secs_f64() * k))
                    .map_err(|e| e.to_string())?;
                Ok(Some(next))
            }
            Schedule::Cron(c) => {
                let tz = match c.timezone.as_deref() {
                    None | Some("UTC") => jiff::tz::TimeZone::UTC,
                    Some(name) => jiff::tz::TimeZone::get(name)
                        .map_err(|e| format!("`timezone: {name}`: {e}"))?,
                };
                let from = match (after, start) {
                    (Some(a), Some(s)) if s > a => s
                        .checked_sub(jiff::SignedDuration::from_secs(1))
                        .unwrap_or(s),
                    (Some(a), _) => a,
                    (None, Some(s)) => s
                        .checked_sub(jiff::SignedDuration::from_secs(1))
                        .unwrap_or(s),
                    (None, None) => jiff::Timestamp::now(),
                };
                Ok(c.cron.next_after(from, &tz))
            }
        }
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

impl CronExpr {
    /// The first minute strictly after `after` that the expression matches, read in `tz`;
    /// none within five years (an expression such as `0 0 30 2 *` never matches).
    pub fn next_after(
        &self,
        after: jiff::Timestamp,
        tz: &jiff::tz::TimeZone,
    ) -> Option<jiff::Timestamp> {
        let fields = cron_fields(&self.0)?;
        let [minutes, hours, doms, months, dows] = &fields;
        let dom_star = self.field(2).is_some_and(|f| f.starts_with('*'));
        let dow_star = self.field(4).is_some_and(|f| f.starts_with('*'));
        let day_ok = |d: jiff::civil::Date| {
            let dom = doms.contains(&(d.day() as u32));
            let dow = dows.contains(&(d.weekday().to_sunday_zero_offset() as u32));
            // Cron's rule: both restricted → either matches.
            match (dom_star, dow_star) {
                (true, true) => true,
                (false, true) => dom,
                (true, false) => dow,
                (false, false) => dom || dow,
            }
        };
        let start = after.to_zoned(tz.clone());
        let mut dt = start.datetime();
        // The next whole minute.
        dt = dt
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(jiff::Span::new().minutes(1))
            .ok()?;
        let limit = dt.checked_add(jiff::Span::new().days(366 * 5)).ok()?;
        while dt < limit {
            if !months.contains(&(dt.month() as u32)) {
                // The first day of the next month.
                dt = dt
                    .first_of_month()
                    .with()
                    .hour(0)
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(jiff::Span::new().months(1))
                    .ok()?;
                continue;
            }
            if !day_ok(dt.date()) {
                dt = dt
                    .date()
                    .tomorrow()
                    .ok()?
                    .to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            if !hours.contains(&(dt.hour() as u32)) {
                dt = dt
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(jiff::Span::new().hours(1))
                    .ok()?;
                continue;
            }
            if !minutes.contains(&(dt.minute() as u32)) {
                dt = dt.checked_add(jiff::Span::new().minutes(1)).ok()?;
                continue;
            }
            // A civil time the zone skips (a DST gap) comes out later; one it repeats, first.
            let t = dt.to_zoned(tz.clone()).ok()?.timestamp();
            if t > after {
                return Some(t);
            }
            dt = dt.checked_add(jiff::Span::new().minutes(1)).ok()?;
        }
        None
    }

    fn field(&self, i: usize) -> Option<&str> {
        self.0.split_whitespace().nth(i)
    }
}

/// The values each of the five fields allows (presets expanded; day of week 7 is Sunday).
fn cron_fields(s: &str) -> Option<[Vec<u32>; 5]> {
    let expanded = match s.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        return None;
    }
    let bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let mut out: [Vec<u32>; 5] = Default::default();
    for (k, (field, (lo, hi))) in fields.iter().zip(bounds).enumerate() {
        let named = |x: &str| -> Option<u32> {
            let l = x.to_ascii_lowercase();
            x.parse().ok().or_else(|| match k {
                3 => MONTHS.iter().position(|m| *m == l).map(|i| i as u32 + 1),
                4 => DAYS.iter().position(|d| *d == l).map(|i| i as u32),
                _ => None,
            })
        };
        let mut set = std::collections::BTreeSet::new();
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, st.parse::<u32>().ok().filter(|n| *n > 0)?),
                None => (part, 1),
            };
            let (a, b) = if range == "*" {
                (lo, hi)
            } else if let Some((x, y)) = range.split_once('-') {
                (named(x)?, named(y)?)
            } else {
                let v = named(range)?;
                // `5/15`: from 5 to the end, every 15.
                (v, if part.contains('/') { hi } else { v })
            };
            let mut v = a;
            while v <= b {
                set.insert(v);
                v += step;
            }
        }
        if k == 4 && set.remove(&7) {
            set.insert(0);
        }
        out[k] = set.into_iter().collect();
    }
    Some(out)
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
    fn cron_ticks() {
        let ts = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let next = |expr: &str, after: &str, tz: &str| {
            let tz = jiff::tz::TimeZone::get(tz).unwrap();
            CronExpr(expr.into())
                .next_after(ts(after), &tz)
                .map(|t| t.to_string())
        };
        let utc = "UTC";
        assert_eq!(
            next("*/15 * * * *", "2026-12-02T10:07:30Z", utc).unwrap(),
            "2026-12-02T10:15:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-12-02T10:15:00Z", utc).unwrap(),
            "2026-12-02T10:30:00Z"
        );
        // Weekdays at nine: from a Friday's ten o'clock, the Monday.
        assert_eq!(
            next("0 9 * * 1-5", "2026-12-04T10:00:00Z", utc).unwrap(),
            "2026-12-07T09:00:00Z"
        );
        assert_eq!(
            next("@daily", "2026-12-02T00:00:00Z", utc).unwrap(),
            "2026-12-03T00:00:00Z"
        );
        assert_eq!(
            next("0 0 1 jan *", "2026-12-02T00:00:00Z", utc).unwrap(),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(next("0 0 30 2 *", "2026-12-02T00:00:00Z", utc), None);
        // Day of month and day of week both given: either matches (2026-12-07 is a Monday).
        assert_eq!(
            next("0 0 1 * mon", "2026-12-02T00:00:00Z", utc).unwrap(),
            "2026-12-07T00:00:00Z"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-12-02T00:00:00Z", utc).unwrap(),
            "2026-12-06T00:00:00Z"
        );
        // Nine in Paris is eight in UTC in winter, seven in summer.
        assert_eq!(
            next("0 9 * * *", "2026-12-02T00:00:00Z", "Europe/Paris").unwrap(),
            "2026-12-02T08:00:00Z"
        );
        assert_eq!(
            next("0 9 * * *", "2026-07-02T00:00:00Z", "Europe/Paris").unwrap(),
            "2026-07-02T07:00:00Z"
        );
    }

    fn schedule_of(text: &str) -> Schedule {
        let node = crate::yaml::parse(text, 0).unwrap();
        crate::de::from_node(&node, &crate::de::Ctx::strict(), &[]).unwrap()
    }

    #[test]
    fn schedule_ticks() {
        let ts = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let every = schedule_of(
            r#"{"kind": "interval", "frequency": 3600, "startAt": "2026-01-01T00:00:00Z", "maxRuns": 3}"#,
        );
        assert_eq!(
            every.next_tick(None).unwrap(),
            Some(ts("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            every.next_tick(Some(ts("2026-01-01T02:30:00Z"))).unwrap(),
            Some(ts("2026-01-01T03:00:00Z"))
        );
        assert_eq!(
            every.next_tick(Some(ts("2026-01-01T03:00:00Z"))).unwrap(),
            Some(ts("2026-01-01T04:00:00Z"))
        );
        assert_eq!(every.bounds().2, Some(3));
        assert_eq!(every.catch_up(), CatchUp::Latest);
        assert_eq!(every.concurrency_policy(), ConcurrencyPolicy::Allow);
        let once = schedule_of(r#"{"kind": "datetime", "startAt": "2026-01-01T00:00:00Z"}"#);
        assert_eq!(
            once.next_tick(None).unwrap(),
            Some(ts("2026-01-01T00:00:00Z"))
        );
        assert_eq!(
            once.next_tick(Some(ts("2026-01-01T00:00:00Z"))).unwrap(),
            None
        );
        let cron = schedule_of(
            r#"{"kind": "cron", "cron": "0 * * * *", "startAt": "2026-01-01T05:00:00Z", "dependsOnPast": true}"#,
        );
        assert_eq!(
            cron.next_tick(None).unwrap(),
            Some(ts("2026-01-01T05:00:00Z"))
        );
        assert_eq!(cron.concurrency_policy(), ConcurrencyPolicy::Forbid);
        let bad =
            schedule_of(r#"{"kind": "cron", "cron": "0 * * * *", "timezone": "Mars/Olympus"}"#);
        assert!(bad.next_tick(None).unwrap_err().contains("Mars/Olympus"));
    }

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
