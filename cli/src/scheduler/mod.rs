//! The tuners of hyperparameter searches: what to try next, given the results so far (grid,
//! random, hyperband, bayes, tpe, hyperopt, …). The search controller
//! ([`crate::controller::search`]) drives them.

pub mod gp;
pub mod rng;
pub mod sample;
pub mod space;
pub mod tpe;
pub mod tuner;

pub(crate) use tpe::phi as tpe_phi;

/// A spec value read from YAML (or JSON) text, as polyaxonfiles are (tests).
#[cfg(test)]
pub(crate) fn spec_of<T: serde::de::DeserializeOwned>(text: &str) -> T {
    let node = polyaxonfile::yaml::parse(text, 0).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    polyaxonfile::de::from_node(&node, &polyaxonfile::de::Ctx::strict(), &[])
        .unwrap_or_else(|e| panic!("{text}: {e:?}"))
}
