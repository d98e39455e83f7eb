//! `init`: what to prepare before the main container starts (code, data, files, images).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::k8s::Container;

spec! {
    /// One init step. Set exactly one source (`git`, `artifacts`, `dockerfile`, `file`,
    /// `tensorboard`, `paths`, a `*Ref`), or only a custom `container`.
    pub struct Init {
        pub artifacts: Option<ArtifactsInit>,
        pub paths: Option<PathList>,
        pub git: Option<GitInit>,
        pub dockerfile: Option<DockerfileInit>,
        pub file: Option<FileInit>,
        pub tensorboard: Option<TensorboardInit>,
        pub lineage_ref: Option<String>,
        pub model_ref: Option<String>,
        pub artifact_ref: Option<String>,
        pub connection: Option<String>,
        /// Where the step puts its content (defaults to the artifacts context).
        pub path: Option<String>,
        pub container: Option<Container>,
    }
}

impl Init {
    /// The names of the sources this step sets.
    pub fn sources(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let checks: [(&'static str, bool); 9] = [
            ("artifacts", self.artifacts.is_some()),
            ("paths", self.paths.is_some()),
            ("git", self.git.is_some()),
            ("dockerfile", self.dockerfile.is_some()),
            ("file", self.file.is_some()),
            ("tensorboard", self.tensorboard.is_some()),
            ("lineageRef", self.lineage_ref.is_some()),
            ("modelRef", self.model_ref.is_some()),
            ("artifactRef", self.artifact_ref.is_some()),
        ];
        for (name, set) in checks {
            if set {
                out.push(name);
            }
        }
        out
    }
}

spec! {
    /// Files and directories to copy from the artifacts store.
    pub struct ArtifactsInit {
        pub files: Option<Vec<PathOrPair>>,
        pub dirs: Option<Vec<PathOrPair>>,
        pub workers: Option<i64>,
    }
}

/// A path, or a `[from, to]` pair.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PathOrPair {
    Path(String),
    Pair(Vec<String>),
}

impl<'de> Deserialize<'de> for PathOrPair {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PathOrPair;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path, or a [from, to] pair of paths")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PathOrPair, E> {
                Ok(PathOrPair::Path(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PathOrPair, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                if out.len() != 2 {
                    return Err(serde::de::Error::custom(format!(
                        "a [from, to] pair has 2 paths, found {}",
                        out.len()
                    )));
                }
                Ok(PathOrPair::Pair(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `paths`: one path, or a list of paths or `[from, to]` pairs.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PathList {
    One(String),
    Many(Vec<PathOrPair>),
}

impl<'de> Deserialize<'de> for PathList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PathList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PathList, E> {
                Ok(PathList::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PathList, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element::<PathOrPair>()? {
                    out.push(p);
                }
                Ok(PathList::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

spec! {
    /// Clone a git repository.
    pub struct GitInit {
        pub url: Option<String>,
        pub revision: Option<String>,
        pub flags: Option<Vec<String>>,
    }
}

spec! {
    /// Generate a Dockerfile (built into the run's image by the docker and kubernetes executors).
    pub struct DockerfileInit {
        /// The base image (`FROM`).
        pub image: Option<String>,
        /// Environment variables: a mapping or a list of `[name, value]` pairs.
        pub env: Option<EnvPairs>,
        pub path: Option<Vec<String>>,
        pub copy: Option<Vec<PathOrPair>>,
        pub post_run_copy: Option<Vec<PathOrPair>>,
        pub run: Option<Vec<String>>,
        pub lang_env: Option<String>,
        pub uid: Option<i64>,
        pub gid: Option<i64>,
        pub username: Option<String>,
        pub filename: Option<String>,
        pub workdir: Option<String>,
        pub workdir_path: Option<String>,
        pub shell: Option<String>,
    }
}

/// Environment variables as a mapping, or as a list of `[name, value]` pairs.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvPairs {
    Map(BTreeMap<String, serde_json::Value>),
    Pairs(Vec<(String, serde_json::Value)>),
}

impl EnvPairs {
    /// The pairs in order, values as text.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match self {
            EnvPairs::Map(m) => m.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
            EnvPairs::Pairs(p) => p.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for EnvPairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EnvPairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to values, or a list of [name, value] pairs")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<EnvPairs, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    out.insert(k, v);
                }
                Ok(EnvPairs::Map(out))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<EnvPairs, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = seq.next_element::<(String, serde_json::Value)>()? {
                    out.push(pair);
                }
                Ok(EnvPairs::Pairs(out))
            }
        }
        d.deserialize_any(V)
    }
}

spec! {
    /// Write a file into the run's context before it starts.
    pub struct FileInit {
        pub content: Option<String>,
        pub filename: Option<String>,
        pub chmod: Option<String>,
        pub kind: Option<String>,
    }
}

spec! {
    /// Prepare a TensorBoard over other runs' outputs.
    pub struct TensorboardInit {
        pub port: Option<i64>,
        pub uuids: Option<Vec<String>>,
        pub use_names: Option<bool>,
        pub path_prefix: Option<String>,
        pub plugins: Option<Vec<String>>,
    }
}
