//! A polyaxonfile as text, read, validated and compiled as `polyaxon check` does, with its
//! diagnostics rendered (positions into the text must stay inside it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use polyaxonfile::{Options, Session, check_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for lint in [true, false] {
        let mut session = Session::new();
        let opts = Options {
            lint,
            ..Options::default()
        };
        match check_text(&mut session, "polyaxonfile.yml", text, &opts) {
            Ok(report) => {
                // What `check -o json` prints.
                let _ = polyaxonfile::to_clean_json(&report.summary);
            }
            Err(diags) => {
                let out = diags.render(&session.sources, false);
                assert!(!out.is_empty(), "a refusal says why");
            }
        }
        for w in &session.warnings {
            let _ = w.render(&session.sources, false);
        }
    }
});
