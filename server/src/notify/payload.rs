//! What each notifier backend is sent: upstream's payload shapes (slack, discord, mattermost,
//! pagerduty, webhook) and Microsoft Teams' MessageCard, built from one [`Message`].

use serde_json::{Map, Value as J, json};

/// What a notification says about a run's end.
#[derive(Clone, Debug)]
pub struct Message {
    pub owner: String,
    pub project: String,
    pub uuid: String,
    pub name: String,
    pub kind: Option<String>,
    pub status: String,
    pub trigger: String,
    /// The run's page on the dashboard.
    pub url: String,
    pub finished_at: Option<String>,
    /// The context the hook gets: upstream's defaults (unless `disableDefaults`) and the
    /// hook's own params.
    pub context: Map<String, J>,
    /// This delivery's id (the same on every try), for receivers that deduplicate.
    pub delivery: String,
}

impl Message {
    /// `"<name> (<uuid>) Status: <status>"`, as upstream titles them.
    pub fn title(&self) -> String {
        format!("{} ({}) Status: {}", self.name, self.uuid, self.status)
    }

    /// The details lines: Run, Kind, Status, Reason, Message, Transition time, Wait time,
    /// Duration, Inputs, Outputs (those the context has).
    pub fn details(&self) -> Vec<(String, String)> {
        let c = &self.context;
        let cond = c.get("condition").and_then(J::as_object);
        let text = |v: Option<&J>| -> Option<String> {
            match v? {
                J::Null => None,
                J::String(s) if s.is_empty() => None,
                J::String(s) => Some(s.clone()),
                J::Object(m) if m.is_empty() => None,
                other => Some(other.to_string()),
            }
        };
        let mut out = vec![
            ("Run".to_string(), format!("{} ({})", self.name, self.uuid)),
            ("Status".to_string(), self.status.clone()),
        ];
        if let Some(k) = &self.kind {
            out.insert(1, ("Kind".into(), k.clone()));
        }
        let mut push = |label: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((label.to_string(), v));
            }
        };
        push("Reason", text(cond.and_then(|c| c.get("reason"))));
        push("Message", text(cond.and_then(|c| c.get("message"))));
        push(
            "Transition time",
            text(cond.and_then(|c| c.get("last_transition_time"))),
        );
        push(
            "Wait time",
            text(c.get("wait_time")).map(|s| format!("{s} s")),
        );
        push(
            "Duration",
            text(c.get("duration")).map(|s| format!("{s} s")),
        );
        push("Inputs", text(c.get("inputs")));
        push("Outputs", text(c.get("outputs")));
        out
    }

    pub fn details_text(&self) -> String {
        self.details()
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A colour per status, as upstream's notifiers use.
    pub fn color(&self) -> &'static str {
        match self.status.as_str() {
            "succeeded" => "#1aaa55",
            "failed" | "upstream_failed" => "#db3b21",
            "stopped" | "skipped" => "#ffa500",
            _ => "#2e77aa",
        }
    }
}

/// Settings of the connection that shape the payload (channel, icon, a PagerDuty key).
#[derive(Clone, Debug, Default)]
pub struct Shape {
    pub channel: Option<String>,
    pub icon_url: Option<String>,
    pub service_key: Option<String>,
}

const ICON: &str = "https://cdn.polyaxon.com/static/v1/images/logo_small.png";

/// The body a backend is sent.
pub fn body(backend: &str, m: &Message, shape: &Shape) -> J {
    let icon = shape.icon_url.clone().unwrap_or_else(|| ICON.to_string());
    let fields: Vec<J> = m
        .details()
        .into_iter()
        .map(|(k, v)| json!({"title": k, "value": v, "short": v.len() < 40}))
        .collect();
    let mut out = match backend {
        "slack" => json!({
            "attachments": [{
                "fallback": m.title(),
                "title": m.title(),
                "title_link": m.url,
                "text": m.details_text(),
                "fields": fields,
                "mrkdwn_in": ["text"],
                "footer_icon": icon,
                "footer": "Polyaxon",
                "color": m.color(),
            }],
        }),
        "discord" => {
            let mut content = format!("**{}**\n{}\n{}", m.title(), m.details_text(), m.url);
            if content.chars().count() > 2000 {
                content = content.chars().take(1999).collect::<String>() + "…";
            }
            json!({"username": "Polyaxon", "avatar_url": icon, "tts": false, "content": content})
        }
        "mattermost" => json!({
            "attachments": [{
                "pretext": format!("Polyaxon: {}/{}", m.owner, m.project),
                "title": m.title(),
                "text": m.details_text(),
                "color": m.color(),
                "fields": fields,
                "author_name": "Polyaxon",
                "author_link": m.url,
                "author_icon": icon,
            }],
        }),
        "pagerduty" => json!({
            "service_key": shape.service_key,
            "event_type": "trigger",
            "description": m.title(),
            "details": J::Object(m.context.clone()),
            // One incident per run (upstream's constant "trigger" folds every run's alert
            // into one).
            "incident_key": format!("polyaxon-{}", m.uuid),
            "client": "Polyaxon",
            "client_url": m.url,
            "contexts": [],
        }),
        "teams" => json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "themeColor": m.color().trim_start_matches('#'),
            "summary": m.title(),
            "title": m.title(),
            "sections": [{
                "activityTitle": format!("{}/{}", m.owner, m.project),
                "facts": m.details().into_iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                "markdown": true,
            }],
            "potentialAction": [{
                "@type": "OpenUri",
                "name": "Open the run",
                "targets": [{"os": "default", "uri": m.url}],
            }],
        }),
        // webhook
        _ => json!({
            "owner": m.owner,
            "project": m.project,
            "uuid": m.uuid,
            "name": m.name,
            "kind": m.kind,
            "status": m.status,
            "trigger": m.trigger,
            "title": m.title(),
            "details": m.details_text(),
            "url": m.url,
            "finished_at": m.finished_at,
            "context": J::Object(m.context.clone()),
            "delivery": m.delivery,
        }),
    };
    if backend != "pagerduty"
        && backend != "teams"
        && let Some(obj) = out.as_object_mut()
    {
        if let Some(c) = &shape.channel {
            obj.insert("channel".into(), J::from(c.clone()));
        }
        if backend == "slack" && shape.icon_url.is_some() {
            obj.insert("icon_url".into(), J::from(icon));
        }
    }
    out
}

/// The query a webhook configured with `method: GET` is sent (the webhook body's scalar
/// fields).
pub fn query(m: &Message) -> Vec<(String, String)> {
    let b = body("webhook", m, &Shape::default());
    b.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match v {
            J::String(s) => Some((k.clone(), s.clone())),
            J::Null | J::Object(_) | J::Array(_) => None,
            other => Some((k.clone(), other.to_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            owner: "acme".into(),
            project: "vision".into(),
            uuid: "abc".into(),
            name: "train".into(),
            kind: Some("job".into()),
            status: "failed".into(),
            trigger: "failed".into(),
            url: "http://h/ui/acme/vision/runs/abc".into(),
            finished_at: None,
            context: serde_json::from_value(json!({
                "condition": {"reason": "ExecutorFailed", "message": "exit code 1"},
                "inputs": {"lr": 0.1},
            }))
            .unwrap(),
            delivery: "d1".into(),
        }
    }

    #[test]
    fn discord_content_is_capped() {
        let mut m = message();
        m.name = "x".repeat(3000);
        let b = body("discord", &m, &Shape::default());
        assert_eq!(b["content"].as_str().unwrap().chars().count(), 2000);
    }

    #[test]
    fn details_have_the_reason() {
        let d = message().details_text();
        assert!(d.contains("Reason: ExecutorFailed"), "{d}");
        assert!(d.contains("Inputs: {\"lr\":0.1}"), "{d}");
        assert!(!d.contains("Outputs"), "{d}");
    }
}
