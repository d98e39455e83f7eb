//! Declarative macros shared by the spec types.

/// A spec struct: camelCase keys, unknown keys rejected.
macro_rules! spec {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name { $($body)* }
    };
}

/// A string enum written in snake_case (or as renamed).
macro_rules! str_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $var),* }
    };
}

/// An enum tagged by a `kind` key inside the mapping: `{kind: job, container: ...}`.
macro_rules! tagged {
    ($(#[$m:meta])* pub enum $name:ident { $($tag:literal => $var:ident($ty:ty)),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
        #[serde(tag = "kind")]
        #[allow(clippy::large_enum_variant)]
        pub enum $name { $(#[serde(rename = $tag)] $var($ty)),* }

        impl $name {
            pub const KINDS: &'static [&'static str] = &[$($tag),*];

            /// The value of this variant's `kind` key.
            pub fn kind(&self) -> &'static str {
                match self { $(Self::$var(_) => $tag),* }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "a mapping with `kind` one of {}", $crate::diag::one_of($name::KINDS))
                    }
                    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<$name, A::Error> {
                        use serde::de::VariantAccess;
                        let (tag, variant): (String, A::Variant) = data.variant()?;
                        match tag.as_str() {
                            $($tag => variant.newtype_variant::<$ty>().map($name::$var),)*
                            other => Err(serde::de::Error::unknown_variant(other, $name::KINDS)),
                        }
                    }
                }
                d.deserialize_enum(stringify!($name), $name::KINDS, V)
            }
        }
    };
}
