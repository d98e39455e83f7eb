//! Kubernetes-shaped sections: the container, its resources, and the pod `environment`.
//!
//! Nested Kubernetes objects (env vars, probes, volumes, affinity…) are k8s-openapi's own types,
//! read strictly: camelCase keys only, as the Kubernetes API defines them.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1 as core;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

spec! {
    /// A container, as in Kubernetes. Polyaxon names the main container itself, so `name` is
    /// optional, and `args` may be one string (a single argument, handy after `sh -c`).
    pub struct Container {
        pub name: Option<String>,
        pub image: Option<String>,
        pub image_pull_policy: Option<ImagePullPolicy>,
        /// The program and its leading arguments, as a list: `[python, train.py]`.
        pub command: Option<Vec<String>>,
        #[serde(default, deserialize_with = "args_de", skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<ArgsSchema>")]
        pub args: Option<Vec<String>>,
        pub working_dir: Option<String>,
        pub ports: Option<Vec<core::ContainerPort>>,
        pub env: Option<Vec<core::EnvVar>>,
        pub env_from: Option<Vec<core::EnvFromSource>>,
        pub resources: Option<Resources>,
        pub resize_policy: Option<Vec<core::ContainerResizePolicy>>,
        pub restart_policy: Option<String>,
        pub volume_mounts: Option<Vec<core::VolumeMount>>,
        pub volume_devices: Option<Vec<core::VolumeDevice>>,
        pub liveness_probe: Option<core::Probe>,
        pub readiness_probe: Option<core::Probe>,
        pub startup_probe: Option<core::Probe>,
        pub lifecycle: Option<core::Lifecycle>,
        pub termination_message_path: Option<String>,
        pub termination_message_policy: Option<String>,
        pub security_context: Option<core::SecurityContext>,
        pub stdin: Option<bool>,
        pub stdin_once: Option<bool>,
        pub tty: Option<bool>,
    }
}

str_enum! {
    pub enum ImagePullPolicy {
        #[serde(rename = "Always")] Always,
        #[serde(rename = "IfNotPresent")] IfNotPresent,
        #[serde(rename = "Never")] Never,
    }
}

/// Schema of `args`: one string or a list of strings.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ArgsSchema {
    One(String),
    Many(Vec<String>),
}

fn args_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings, or one string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![v.to_string()]))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_any(V)
}

spec! {
    /// Compute resources. Quantities are strings, as in the Kubernetes schema:
    /// `cpu: "500m"`, `memory: "2Gi"`, `nvidia.com/gpu: "1"`.
    pub struct Resources {
        pub limits: Option<BTreeMap<String, Quantity>>,
        pub requests: Option<BTreeMap<String, Quantity>>,
        pub claims: Option<Vec<core::ResourceClaim>>,
    }
}

/// A Kubernetes quantity: a number with an optional suffix (`500m`, `1.5`, `2Gi`, `1e3`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Quantity(pub String);

impl Quantity {
    /// Checks the Kubernetes quantity grammar; on failure says what was expected.
    pub fn parse(s: &str) -> Result<Quantity, String> {
        let t = s.trim();
        let body = t.strip_prefix(['+', '-']).unwrap_or(t);
        let num_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (num, suffix) = body.split_at(num_end);
        let digits_ok = !num.is_empty() && num != "." && num.matches('.').count() <= 1;
        let suffix_ok = matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
        ) || suffix.strip_prefix(['e', 'E']).is_some_and(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
        });
        if digits_ok && suffix_ok {
            return Ok(Quantity(t.to_string()));
        }
        let guess = match suffix {
            "GB" | "gb" | "g" | "Gb" => " (did you mean `G` or `Gi`?)",
            "MB" | "mb" | "Mb" => " (did you mean `M` or `Mi`?)",
            "KB" | "kb" | "K" | "Kb" => " (did you mean `k` or `Ki`?)",
            "TB" | "tb" => " (did you mean `T` or `Ti`?)",
            "gi" | "GiB" => " (did you mean `Gi`?)",
            "mi" | "MiB" => " (did you mean `Mi`?)",
            _ => "",
        };
        Err(format!(
            "`{s}` is not a Kubernetes quantity{guess}; write a number with an optional suffix such as m, k, M, G, Ki, Mi, Gi"
        ))
    }

    /// The quantity as a number of base units (cores, bytes), for local executors.
    pub fn to_f64(&self) -> Option<f64> {
        let t = self.0.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(t.len());
        let (num, suffix) = t.split_at(split);
        let n: f64 = num.parse().ok()?;
        let mult = match suffix {
            "" => 1.0,
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "P" => 1e15,
            "E" => 1e18,
            "Ki" => 1024.0,
            "Mi" => 1024f64.powi(2),
            "Gi" => 1024f64.powi(3),
            "Ti" => 1024f64.powi(4),
            "Pi" => 1024f64.powi(5),
            "Ei" => 1024f64.powi(6),
            e => 10f64.powi(e.get(1..)?.parse().ok()?),
        };
        Some(n * mult)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as 1, 0.5, \"500m\" or \"2Gi\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v).map_err(E::custom)
            }
            // Numbers are quantities too, as Kubernetes reads them: `cpu: 1`, `cpu: 0.5`.
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                if !v.is_finite() {
                    return Err(E::custom(format!("`{v}` is not a Kubernetes quantity")));
                }
                Quantity::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "number"],
            "description": "A Kubernetes quantity: a number (1, 0.5) or a string with a suffix (\"500m\", \"2Gi\").",
            "pattern": "^[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$"
        })
    }
}

spec! {
    /// Where and how the run's pods are scheduled.
    pub struct Environment {
        pub labels: Option<BTreeMap<String, String>>,
        pub annotations: Option<BTreeMap<String, String>>,
        pub node_selector: Option<BTreeMap<String, String>>,
        pub affinity: Option<core::Affinity>,
        pub tolerations: Option<Vec<core::Toleration>>,
        pub node_name: Option<String>,
        pub service_account_name: Option<String>,
        pub host_aliases: Option<Vec<core::HostAlias>>,
        pub security_context: Option<EnvSecurityContext>,
        pub image_pull_secrets: Option<Vec<String>>,
        pub host_network: Option<bool>,
        #[serde(rename = "hostPID")]
        pub host_pid: Option<bool>,
        pub dns_policy: Option<String>,
        pub dns_config: Option<core::PodDNSConfig>,
        pub scheduler_name: Option<String>,
        pub priority_class_name: Option<String>,
        pub priority: Option<i32>,
        pub restart_policy: Option<RestartPolicy>,
    }
}

str_enum! {
    pub enum RestartPolicy {
        #[serde(rename = "Always")] Always,
        #[serde(rename = "OnFailure")] OnFailure,
        #[serde(rename = "Never")] Never,
        #[serde(rename = "ExitCode")] ExitCode,
    }
}

spec! {
    /// Security settings for the run's pods; pod-level and container-level fields are both
    /// accepted here and applied where Kubernetes takes them.
    pub struct EnvSecurityContext {
        pub run_as_user: Option<i64>,
        pub run_as_group: Option<i64>,
        pub run_as_non_root: Option<bool>,
        pub fs_group: Option<i64>,
        pub fs_group_change_policy: Option<String>,
        pub supplemental_groups: Option<Vec<i64>>,
        pub supplemental_groups_policy: Option<String>,
        pub sysctls: Option<Vec<core::Sysctl>>,
        pub se_linux_options: Option<core::SELinuxOptions>,
        pub se_linux_change_policy: Option<String>,
        pub seccomp_profile: Option<core::SeccompProfile>,
        pub app_armor_profile: Option<core::AppArmorProfile>,
        pub windows_options: Option<core::WindowsSecurityContextOptions>,
        pub privileged: Option<bool>,
        pub allow_privilege_escalation: Option<bool>,
        pub read_only_root_filesystem: Option<bool>,
        pub capabilities: Option<core::Capabilities>,
        pub proc_mount: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_grammar() {
        for ok in [
            "1",
            "500m",
            "1.5",
            "2Gi",
            "1e3",
            "0.5",
            "+1",
            "128974848",
            "129e6",
            "123Mi",
            ".5",
        ] {
            assert!(Quantity::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["1GB", "abc", "", "1.2.3", "Gi", "1 Gi", "2gi"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
        assert!(Quantity::parse("1GB").unwrap_err().contains("`Gi`"));
        assert_eq!(Quantity("500m".into()).to_f64(), Some(0.5));
        assert_eq!(
            Quantity("2Gi".into()).to_f64(),
            Some(2.0 * 1024.0 * 1024.0 * 1024.0)
        );
        assert_eq!(Quantity("1e3".into()).to_f64(), Some(1000.0));
    }
}
