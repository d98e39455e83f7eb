//! Components (what runs and what it takes) and operations (a component with values).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::matrix::{EarlyStopping, Matrix};
use super::misc::{
    Build, Cache, EventTrigger, Hook, Join, Mount, PatchStrategy, Plugins, Schedule, Template,
    Termination, TriggerPolicy,
};
use super::run::Run;

spec! {
    /// A reusable unit: inputs and outputs, and what to run.
    pub struct Component {
        pub version: Option<f64>,
        pub kind: Option<String>,
        pub name: Option<String>,
        pub description: Option<String>,
        pub tags: Option<Vec<String>>,
        pub presets: Option<Vec<String>>,
        pub queue: Option<String>,
        pub namespace: Option<String>,
        pub cache: Option<Cache>,
        pub termination: Option<Termination>,
        pub plugins: Option<Plugins>,
        pub build: Option<Build>,
        pub hooks: Option<Vec<Hook>>,
        pub is_approved: Option<bool>,
        pub cost: Option<f64>,
        pub mount: Option<Vec<Mount>>,
        pub inputs: Option<Vec<Io>>,
        pub outputs: Option<Vec<Io>>,
        pub run: Option<Run>,
        pub template: Option<Template>,
    }
}

spec! {
    /// A component to run with values for its inputs, and how to run it (search, schedule, DAG
    /// dependencies).
    pub struct Operation {
        pub version: Option<f64>,
        pub kind: Option<String>,
        pub name: Option<String>,
        pub description: Option<String>,
        pub tags: Option<Vec<String>>,
        pub presets: Option<Vec<String>>,
        pub queue: Option<String>,
        pub namespace: Option<String>,
        pub cache: Option<Cache>,
        pub termination: Option<Termination>,
        pub plugins: Option<Plugins>,
        pub build: Option<Build>,
        pub hooks: Option<Vec<Hook>>,
        pub is_approved: Option<bool>,
        pub cost: Option<f64>,
        pub mount: Option<Vec<Mount>>,
        pub template: Option<Template>,
        pub params: Option<OrderedMap<Param>>,
        pub matrix: Option<Matrix>,
        pub schedule: Option<Schedule>,
        pub events: Option<Vec<EventTrigger>>,
        pub joins: Option<Vec<Join>>,
        pub dependencies: Option<Vec<String>>,
        pub trigger: Option<TriggerPolicy>,
        /// A boolean template: the operation is skipped when it renders false.
        pub conditions: Option<String>,
        pub skip_on_upstream_skip: Option<bool>,
        pub component: Option<Box<Component>>,
        pub hub_ref: Option<String>,
        pub dag_ref: Option<String>,
        pub url_ref: Option<String>,
        pub path_ref: Option<String>,
        pub run_patch: Option<serde_json::Map<String, serde_json::Value>>,
        pub patch_strategy: Option<PatchStrategy>,
        pub is_preset: Option<bool>,
    }
}

impl Operation {
    /// Where the component comes from, as `(key, value)`.
    pub fn reference(&self) -> Option<(&'static str, &str)> {
        if let Some(r) = &self.dag_ref {
            return Some(("dagRef", r));
        }
        if let Some(r) = &self.path_ref {
            return Some(("pathRef", r));
        }
        if let Some(r) = &self.hub_ref {
            return Some(("hubRef", r));
        }
        if let Some(r) = &self.url_ref {
            return Some(("urlRef", r));
        }
        None
    }

    pub fn early_stopping(&self) -> &[EarlyStopping] {
        self.matrix
            .as_ref()
            .map(|m| m.early_stopping())
            .unwrap_or_default()
    }
}

spec! {
    /// An input or output of a component.
    pub struct Io {
        pub name: String,
        pub description: Option<String>,
        /// The value's type (`int`, `float`, `str`, `bool`, `path`, `list`, `dict`, …).
        #[serde(rename = "type")]
        pub iotype: Option<String>,
        /// The default value (an input with a value must be `isOptional: true`).
        pub value: Option<serde_json::Value>,
        pub is_optional: Option<bool>,
        pub is_list: Option<bool>,
        pub is_flag: Option<bool>,
        pub arg_format: Option<String>,
        pub connection: Option<String>,
        pub to_init: Option<bool>,
        pub to_env: Option<String>,
        pub validation: Option<Validation>,
        pub delay_validation: Option<bool>,
        pub options: Option<Vec<serde_json::Value>>,
    }
}

impl Io {
    pub fn optional(&self) -> bool {
        self.is_optional.unwrap_or(false)
    }

    pub fn flag(&self) -> bool {
        self.is_flag.unwrap_or(false)
    }

    pub fn list(&self) -> bool {
        self.is_list.unwrap_or(false)
    }
}

spec! {
    /// Constraints on an input's value.
    pub struct Validation {
        pub delay: Option<bool>,
        pub gt: Option<f64>,
        pub ge: Option<f64>,
        pub lt: Option<f64>,
        pub le: Option<f64>,
        pub multiple_of: Option<f64>,
        pub max_digits: Option<i64>,
        pub decimal_places: Option<i64>,
        pub regex: Option<String>,
        pub min_length: Option<i64>,
        pub max_length: Option<i64>,
        pub min_items: Option<i64>,
        pub max_items: Option<i64>,
        pub keys: Option<Vec<String>>,
        pub contains_keys: Option<Vec<String>>,
        pub excludes_keys: Option<Vec<String>>,
        pub contains: Option<serde_json::Value>,
        pub excludes: Option<serde_json::Value>,
        pub options: Option<Vec<serde_json::Value>>,
    }
}

spec! {
    /// A value for an input: given directly (`value`) or taken from elsewhere (`ref`).
    pub struct Param {
        pub value: Option<serde_json::Value>,
        /// Where the value comes from: `ops.<name>`, `runs.<uuid>`, `dag`.
        #[serde(rename = "ref")]
        pub reference: Option<String>,
        pub context_only: Option<bool>,
        pub connection: Option<String>,
        pub to_init: Option<bool>,
        pub to_env: Option<String>,
    }
}

impl Param {
    pub fn value(v: serde_json::Value) -> Self {
        Param {
            value: Some(v),
            ..Param::default()
        }
    }
}

/// A mapping that keeps the order its keys were written in.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        OrderedMap(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, key: String, value: V) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Vis<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedMap<V>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, V>()? {
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for OrderedMap<V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Map_of_{}", V::schema_name()).into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let inner = generator.subschema_for::<V>();
        schemars::json_schema!({"type": "object", "additionalProperties": inner})
    }
}
