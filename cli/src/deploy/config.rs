//! `polyaxon admin deploy -f config.yml`: our deployment config. It reads upstream's keys
//! where they apply to this architecture (one server with its database, runs as pods), warns
//! about the ones it does not use (redis, rabbitmq, workers…), and rejects unknown keys and
//! values of the wrong type with their key path.

use serde_json::Value as J;

use crate::error::UserError;

/// What a key's value must be.
#[derive(Clone, Copy)]
enum S {
    Bool,
    Int,
    Str,
    /// A string or a number (ports, quantities).
    Scalar,
    /// A mapping of strings to strings (labels, annotations, node selectors).
    StrMap,
    /// Anything (Kubernetes objects we pass through: affinity, tolerations, resources).
    Any,
    /// A list of strings.
    StrList,
    /// A list of anything.
    List,
    /// A mapping with these keys.
    Map(&'static [(&'static str, S)]),
    /// Accepted (upstream's) but not used here: a warning.
    Unused(&'static str),
}

const SERVICE: S = S::Map(&[
    ("type", S::Str),
    ("port", S::Int),
    ("nodePort", S::Int),
    ("targetPort", S::Int),
    ("annotations", S::StrMap),
    ("loadBalancerIP", S::Str),
    ("loadBalancerSourceRanges", S::StrList),
    ("externalTrafficPolicy", S::Str),
]);

const COMPONENT: S = S::Map(&[
    ("enabled", S::Bool),
    ("image", S::Str),
    ("imageTag", S::Scalar),
    ("imagePullPolicy", S::Str),
    ("replicas", S::Int),
    ("concurrency", S::Int),
    ("perCore", S::Bool),
    ("scheme", S::Str),
    ("resources", S::Any),
    ("service", SERVICE),
    ("hpa", S::Any),
    ("nodeSelector", S::StrMap),
    ("tolerations", S::List),
    ("affinity", S::Any),
    ("annotations", S::StrMap),
    ("labels", S::StrMap),
]);

const AUTH: S = S::Map(&[
    ("enablePostgresUser", S::Bool),
    ("username", S::Str),
    ("password", S::Str),
    ("database", S::Str),
    ("postgresPassword", S::Str),
    ("existingSecret", S::Str),
]);

const PERSISTENCE_CLAIM: S = S::Map(&[
    ("enabled", S::Bool),
    ("size", S::Scalar),
    ("storageClass", S::Str),
    ("existingClaim", S::Str),
    ("accessModes", S::StrList),
    ("annotations", S::StrMap),
]);

const POSTGRESQL: S = S::Map(&[
    ("enabled", S::Bool),
    ("image", S::Any),
    ("imageTag", S::Scalar),
    ("auth", AUTH),
    ("persistence", PERSISTENCE_CLAIM),
    ("primary", S::Any),
    ("resources", S::Any),
    ("connMaxAge", S::Int),
    ("architecture", S::Str),
    ("nodeSelector", S::StrMap),
    ("tolerations", S::List),
    ("affinity", S::Any),
]);

const EXTERNAL_PG: S = S::Map(&[
    ("host", S::Str),
    ("port", S::Int),
    ("user", S::Str),
    ("password", S::Str),
    ("database", S::Str),
    ("usePgBouncer", S::Bool),
    ("connMaxAge", S::Int),
    ("options", S::Any),
    ("sslMode", S::Str),
]);

const CONNECTION: S = S::Map(&[
    ("name", S::Str),
    ("kind", S::Str),
    ("description", S::Str),
    ("tags", S::StrList),
    ("schema", S::Any),
    ("secret", S::Any),
    ("configMap", S::Any),
    ("env", S::List),
    ("annotations", S::StrMap),
]);

const UNUSED_BROKER: &str = "this architecture has no message broker or workers";

const ROOT: S = S::Map(&[
    ("deploymentChart", S::Str),
    ("deploymentType", S::Str),
    ("deploymentVersion", S::Scalar),
    ("namespace", S::Str),
    ("releaseName", S::Str),
    ("environment", S::Str),
    ("logLevel", S::Str),
    ("timezone", S::Str),
    ("limitResources", S::Bool),
    ("passwordLength", S::Int),
    (
        "passwordAuth",
        S::Unused("users log in with their password and tokens"),
    ),
    ("rbac", S::Map(&[("enabled", S::Bool)])),
    (
        "ingress",
        S::Map(&[
            ("enabled", S::Bool),
            ("hostName", S::Str),
            ("path", S::Str),
            ("className", S::Str),
            ("tls", S::List),
            ("annotations", S::StrMap),
        ]),
    ),
    ("gateway", COMPONENT),
    (
        "user",
        S::Map(&[
            ("username", S::Str),
            ("email", S::Str),
            ("password", S::Str),
        ]),
    ),
    ("postgresql", POSTGRESQL),
    (
        "externalServices",
        S::Map(&[
            ("postgresql", EXTERNAL_PG),
            ("redis", S::Unused(UNUSED_BROKER)),
            ("rabbitmq", S::Unused(UNUSED_BROKER)),
            (
                "gateway",
                S::Unused("the server is deployed in the cluster"),
            ),
            ("api", S::Map(&[("host", S::Str), ("port", S::Int)])),
            ("metrics", S::Unused("metrics are not exported")),
            ("errors", S::Unused("errors are not reported anywhere")),
            (
                "auth",
                S::Unused("external auth providers are not supported"),
            ),
            ("transactions", S::Unused("not used")),
            ("analytics", S::Unused("not used")),
            ("allowedVersions", S::Unused("not used")),
        ]),
    ),
    ("artifactsStore", CONNECTION),
    ("connections", S::List),
    ("nodeSelector", S::StrMap),
    ("tolerations", S::List),
    ("affinity", S::Any),
    ("imagePullSecrets", S::StrList),
    (
        "securityContext",
        S::Map(&[
            ("enabled", S::Bool),
            ("runAsUser", S::Int),
            ("runAsGroup", S::Int),
            ("fsGroup", S::Int),
            ("fsGroupChangePolicy", S::Str),
            ("allowPrivilegeEscalation", S::Bool),
            ("runAsNonRoot", S::Bool),
        ]),
    ),
    ("labels", S::StrMap),
    ("annotations", S::StrMap),
    ("priorityClassName", S::Str),
    ("broker", S::Str),
    (
        "redis",
        S::Map(&[
            ("enabled", S::Bool),
            ("image", S::Any),
            ("imageTag", S::Scalar),
            ("usePassword", S::Bool),
            ("auth", S::Any),
            ("master", S::Any),
            ("nonBroker", S::Bool),
            ("nodeSelector", S::StrMap),
            ("tolerations", S::List),
            ("affinity", S::Any),
            ("resources", S::Any),
        ]),
    ),
    (
        "rabbitmq",
        S::Map(&[
            ("enabled", S::Bool),
            ("image", S::Any),
            ("imageTag", S::Scalar),
            ("auth", S::Any),
            ("rabbitmqUsername", S::Str),
            ("rabbitmqPassword", S::Str),
            ("persistence", S::Any),
            ("nodeSelector", S::StrMap),
            ("tolerations", S::List),
            ("affinity", S::Any),
            ("resources", S::Any),
        ]),
    ),
    ("worker", COMPONENT),
    ("beat", COMPONENT),
    ("scheduler", COMPONENT),
    (
        "operator",
        S::Map(&[
            ("enabled", S::Bool),
            ("skipCRD", S::Bool),
            ("image", S::Str),
            ("imageTag", S::Scalar),
            ("imagePullPolicy", S::Str),
            ("resources", S::Any),
            ("nodeSelector", S::StrMap),
            ("tolerations", S::List),
            ("affinity", S::Any),
        ]),
    ),
    (
        "agent",
        S::Map(&[
            ("enabled", S::Bool),
            ("token", S::Str),
            ("instance", S::Str),
            ("image", S::Str),
            ("imageTag", S::Scalar),
            ("imagePullPolicy", S::Str),
            ("imagePullSecrets", S::StrList),
            ("resources", S::Any),
            ("nodeSelector", S::StrMap),
            ("tolerations", S::List),
            ("affinity", S::Any),
            ("maxConcurrency", S::Int),
            ("queues", S::Str),
            ("terminationGracePeriodSeconds", S::Int),
            (
                "additionalNamespaces",
                S::Unused("the agent runs jobs in the deploy's namespace"),
            ),
            (
                "watchCluster",
                S::Unused("the agent follows the jobs it starts"),
            ),
        ]),
    ),
    (
        "init",
        S::Unused("init containers use POLYAXON_K8S_INIT_IMAGE"),
    ),
    (
        "sidecar",
        S::Unused("the supervisor of a run collects its logs; there is no sidecar"),
    ),
    ("cleaner", S::Unused("not used")),
    ("notifier", S::Unused("notifications are not sent")),
    (
        "email",
        S::Map(&[
            ("enabled", S::Bool),
            ("host", S::Str),
            ("port", S::Int),
            ("useTls", S::Bool),
            ("hostUser", S::Str),
            ("hostPassword", S::Str),
            ("from", S::Str),
            ("backend", S::Str),
        ]),
    ),
    ("ldap", S::Unused("LDAP is not supported")),
    ("auth", S::Unused("only local users are supported")),
    ("ssl", S::Unused("TLS is configured with `ingress.tls`")),
    ("dns", S::Unused("the cluster's DNS is used as is")),
    ("proxy", S::Unused("not used")),
    ("ui", S::Unused("the server serves its own UI")),
    ("metrics", S::Unused("metrics are not exported")),
    ("apiHooks", S::Unused("not used")),
    ("cleanHooks", S::Unused("not used")),
    ("cleaningIntervals", S::Unused("not used")),
    ("intervals", S::Unused("not used")),
    (
        "persistence",
        S::Unused("the server keeps artifacts in `artifactsStore`"),
    ),
    ("nodeSelectors", S::Unused("use `nodeSelector`")),
    ("hostName", S::Unused("use `ingress.hostName`")),
    ("allowedHosts", S::Unused("not used")),
    ("encryptionSecret", S::Unused("not used")),
    ("platformSecret", S::Unused("secrets are generated")),
    (
        "agentSecret",
        S::Unused("the agent's token is `agent.token`, else generated into the deploy's secret"),
    ),
    ("polyaxonSecret", S::Unused("secrets are generated")),
    ("internalToken", S::Unused("not used")),
    ("organizationKey", S::Unused("not used")),
    ("singleUrl", S::Unused("not used")),
    (
        "defaultScheduling",
        S::Unused("runs take their scheduling from their polyaxonfile"),
    ),
    ("defaultImagePullSecrets", S::Unused("not used")),
    ("clusterDomain", S::Unused("not used")),
    ("includeChartRevision", S::Unused("not used")),
]);

fn type_name(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "a list",
        J::Object(_) => "a mapping",
    }
}

fn check(v: &J, s: S, path: &str, errors: &mut Vec<String>, warnings: &mut Vec<String>) {
    // An empty value is an unset one, as upstream reads it.
    if v.is_null() {
        return;
    }
    let expect = |what: &str, errors: &mut Vec<String>| {
        errors.push(format!(
            "`{path}`: expected {what}, found {} (`{}`)",
            type_name(v),
            short(v)
        ));
    };
    match s {
        S::Bool => {
            if !v.is_boolean() {
                expect("true or false", errors);
            }
        }
        S::Int => {
            if !(v.is_i64() || v.is_u64()) {
                expect("an integer", errors);
            }
        }
        S::Str => {
            if !v.is_string() {
                expect("a string", errors);
            }
        }
        S::Scalar => {
            if !(v.is_string() || v.is_number()) {
                expect("a string or a number", errors);
            }
        }
        S::Any => {}
        S::StrMap => match v.as_object() {
            Some(m) => {
                for (k, x) in m {
                    if !(x.is_string() || x.is_number() || x.is_boolean() || x.is_null()) {
                        errors.push(format!(
                            "`{path}.{k}`: expected a string, found {}",
                            type_name(x)
                        ));
                    }
                }
            }
            None => expect("a mapping of names to strings", errors),
        },
        S::StrList => match v.as_array() {
            Some(a) => {
                for (i, x) in a.iter().enumerate() {
                    if !x.is_string() {
                        errors.push(format!(
                            "`{path}[{i}]`: expected a string, found {}",
                            type_name(x)
                        ));
                    }
                }
            }
            None => expect("a list of strings", errors),
        },
        S::List => {
            if !v.is_array() {
                expect("a list", errors);
            }
        }
        S::Map(keys) => match v.as_object() {
            Some(m) => {
                for (k, x) in m {
                    let sub = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match keys.iter().find(|(name, _)| name == k) {
                        Some((_, S::Unused(why))) => {
                            if !is_off(x) {
                                warnings.push(format!("`{sub}` is not used: {why}"));
                            }
                        }
                        Some((_, s)) => check(x, *s, &sub, errors, warnings),
                        None => {
                            let close = keys
                                .iter()
                                .map(|(n, _)| *n)
                                .find(|n| n.eq_ignore_ascii_case(k));
                            // Upstream refuses unknown top-level keys and misspelt ones;
                            // other nested keys of its charts pass, unused here.
                            match close {
                                Some(n) => errors.push(format!(
                                    "`{sub}` is not a key here: did you mean `{n}`?"
                                )),
                                None if path.is_empty() => errors.push(format!(
                                    "`{sub}` is not a key here; known keys: {}",
                                    keys.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                                )),
                                None => warnings.push(format!("`{sub}` is not used here")),
                            }
                        }
                    }
                }
            }
            None => expect("a mapping", errors),
        },
        S::Unused(_) => {}
    }
}

/// A section that is present but says nothing (`enabled: false`, empty).
fn is_off(v: &J) -> bool {
    match v {
        J::Null => true,
        J::Object(m) => m.is_empty() || m.get("enabled") == Some(&J::Bool(false)),
        J::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn short(v: &J) -> String {
    let s = match v {
        J::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

/// A checked config: the document and what was said about it.
#[derive(Clone, Debug)]
pub struct Config {
    pub doc: J,
    pub warnings: Vec<String>,
}

impl Config {
    fn get(&self, path: &str) -> Option<&J> {
        let mut v = &self.doc;
        for seg in path.split('.') {
            v = v.get(seg)?;
        }
        (!v.is_null()).then_some(v)
    }

    pub fn str(&self, path: &str) -> Option<String> {
        self.get(path).and_then(|v| match v {
            J::String(s) if !s.trim().is_empty() => Some(s.clone()),
            J::Number(n) => Some(n.to_string()),
            _ => None,
        })
    }

    pub fn bool(&self, path: &str) -> Option<bool> {
        self.get(path).and_then(J::as_bool)
    }

    pub fn int(&self, path: &str) -> Option<i64> {
        self.get(path).and_then(J::as_i64)
    }

    pub fn value(&self, path: &str) -> Option<&J> {
        self.get(path)
    }

    pub fn namespace(&self) -> String {
        self.str("namespace").unwrap_or_else(|| "polyaxon".into())
    }

    pub fn release(&self) -> String {
        self.str("releaseName").unwrap_or_else(|| "polyaxon".into())
    }

    /// The agent chart: only what the executor needs in the namespace (no server, no database).
    pub fn agent_only(&self) -> bool {
        self.str("deploymentChart").as_deref() == Some("agent")
    }

    /// PostgreSQL in the cluster (not an external one).
    pub fn internal_db(&self) -> bool {
        self.bool("postgresql.enabled") != Some(false)
    }
}

/// Parses and checks a config. Every error is listed, with its key path.
pub fn parse(text: &str) -> Result<Config, UserError> {
    let node = polyaxonfile::yaml::parse(text, 0)
        .map_err(|d| UserError::new(format!("the config is not valid YAML: {}", d.message)))?;
    let doc = node.to_json();
    let doc = if doc.is_null() {
        J::Object(Default::default())
    } else {
        doc
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    check(&doc, ROOT, "", &mut errors, &mut warnings);
    let cfg = Config { doc, warnings };
    if errors.is_empty() {
        semantic(&cfg, &mut errors);
    }
    if !errors.is_empty() {
        return Err(UserError::new(format!(
            "the deployment config has {} error{}:\n  {}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            errors.join("\n  ")
        ))
        .hint("`polyaxon admin deploy --help` describes the keys; `--check` checks a config without deploying"));
    }
    Ok(cfg)
}

/// Rules across keys.
fn semantic(c: &Config, errors: &mut Vec<String>) {
    match c.str("deploymentType").as_deref() {
        None | Some("kubernetes") | Some("minikube") | Some("microk8s") | Some("kind") => {}
        Some(other) => errors.push(format!(
            "`deploymentType: {other}`: this deploy targets Kubernetes (kubernetes, minikube, microk8s, kind); on one machine `polyaxon server start` needs no deploy"
        )),
    }
    match c.str("deploymentChart").as_deref() {
        None | Some("platform") | Some("agent") => {}
        Some(other) => errors.push(format!(
            "`deploymentChart: {other}`: expected platform or agent"
        )),
    }
    if c.agent_only() && c.str("externalServices.api.host").is_none() {
        errors.push("`deploymentChart: agent` needs `externalServices.api.host` (and `port`): the server the agent works for".into());
    }
    if !c.agent_only() && !c.internal_db() && c.str("externalServices.postgresql.host").is_none() {
        errors.push("`postgresql.enabled: false` needs an external database: set `externalServices.postgresql.host` (with user, password, database)".into());
    }
    // Upstream's broker rules, kept so that a config upstream refuses is refused here too.
    let broker = c.str("broker").unwrap_or_else(|| "rabbitmq".into());
    for svc in ["redis", "rabbitmq"] {
        // Upstream's scheduler needs its broker.
        let needed = c.bool("scheduler.enabled") == Some(true) && broker == svc;
        if needed
            && c.bool(&format!("{svc}.enabled")) == Some(false)
            && c.value(&format!("externalServices.{svc}")).is_none()
        {
            errors.push(format!("`{svc}.enabled: false` with `broker: {broker}` needs `externalServices.{svc}` (upstream refuses it; this architecture does not use {svc})"));
        }
    }
    if let Some(t) = c.str("gateway.service.type")
        && !["ClusterIP", "NodePort", "LoadBalancer"].contains(&t.as_str())
    {
        errors.push(format!(
            "`gateway.service.type: {t}`: expected ClusterIP, NodePort or LoadBalancer"
        ));
    }
    if let Some(r) = c.int("gateway.replicas")
        && r < 0
    {
        errors.push(format!("`gateway.replicas: {r}`: must be 0 or more"));
    }
    if let Some(p) = c
        .int("user.password")
        .map(|p| p.to_string())
        .or_else(|| c.str("user.password"))
    {
        let min = c.int("passwordLength").unwrap_or(4).max(1) as usize;
        if p.chars().count() < min {
            errors.push(format!(
                "`user.password`: at least {min} characters (passwordLength)"
            ));
        }
    }
}
