//! The JSON Schema of the v1.1 polyaxonfile format, derived from the spec types, for editors
//! (yaml-language-server) and for tools that validate files before they reach `polyaxon`.

use schemars::generate::SchemaSettings;
use serde_json::{Value as J, json};

use crate::spec::{Component, Operation};

/// The schema document: a component or an operation, chosen by `kind`.
pub fn json_schema() -> J {
    let mut generator = SchemaSettings::draft07().into_generator();
    let component = generator.subschema_for::<Component>().to_value();
    let operation = generator.subschema_for::<Operation>().to_value();
    let definitions = generator.take_definitions(true);
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Polyaxonfile",
        "description": "A polyaxonfile (version 1.1): a component (`kind: component`) or an operation running one (`kind: operation`).",
        "type": "object",
        "required": ["version", "kind"],
        "properties": {
            "version": {"const": 1.1, "description": "The polyaxonfile format version."},
            "kind": {"enum": ["component", "operation"]}
        },
        "if": {"properties": {"kind": {"const": "component"}}},
        "then": component,
        "else": operation,
        "definitions": definitions,
    })
}

/// The schema as committed: pretty JSON with a final newline.
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}
