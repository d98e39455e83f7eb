//! The API against its own OpenAPI document: schemathesis (pinned in the test virtualenv)
//! generates requests for every operation from the served document, authenticated as the
//! superuser, follows the document's links from one operation's answer to the next, and
//! checks every answer: no server error, status, headers and body as the document says,
//! invalid input refused, valid input taken. A bounded number of examples per operation;
//! the figures are printed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use polyaxon_tests::sealed::Env;
use polyaxon_tests::server::{http_with, start_with};

use super::remote::with_database;

const PASSWORD: &str = "contract-admin-pass";

/// The test virtualenv's `schemathesis`, or why there is none.
fn schemathesis() -> Option<PathBuf> {
    let python = std::env::var_os("POLYAXON_TEST_PYTHON").map(PathBuf::from);
    let st = python
        .as_deref()
        .map(|p| p.with_file_name("schemathesis"))
        .filter(|p| p.exists());
    if st.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis must be in the test virtualenv in CI (scripts/test installs it)"
        );
        eprintln!(
            "skipped: no schemathesis beside POLYAXON_TEST_PYTHON (scripts/test installs it)"
        );
    }
    st
}

fn contract(database_url: Option<&str>) {
    let Some(st) = schemathesis() else {
        return;
    };
    let env = Env::new();
    let mut extra = vec![];
    if let Some(u) = database_url {
        extra = vec!["--database-url", u];
    }
    let (_server, addr, _log, rx) =
        start_with(&env, &extra, &[("POLYAXON_ADMIN_PASSWORD", PASSWORD)]);
    let (status, body) = http_with(
        &addr,
        "POST",
        "/api/v1/auth/token",
        Some(&format!(
            r#"{{"username": "root", "password": "{PASSWORD}"}}"#
        )),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Something to find: a project.
    let (status, body) = http_with(
        &addr,
        "POST",
        "/api/v1/root/projects/create",
        Some(r#"{"name": "demo"}"#),
        Some(&token),
    );
    assert_eq!(status, 200, "{body}");
    let reports = tempfile::tempdir().unwrap();
    let examples = std::env::var("POLYAXON_CONTRACT_EXAMPLES").unwrap_or_else(|_| "8".into());
    let started = Instant::now();
    let out = std::process::Command::new(&st)
        .args([
            "--no-color",
            "run",
            &format!("http://{addr}/api/v1/openapi.json"),
            "--header",
            &format!("Authorization: Token {token}"),
            "--checks",
            "all",
            "--max-examples",
            &examples,
            "--workers",
            "1",
            "--seed",
            "20261202",
            "--report",
            "junit",
            // Revoking tokens: the stateful phase would revoke its own (the matrix in
            // `server/tests/it/authz.rs` covers the operation).
            "--exclude-path",
            "/api/v1/users/tokens/{uuid}",
            "--report-dir",
        ])
        .arg(reports.path())
        // Its cache of found cases goes there too, not into the checkout.
        .current_dir(reports.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let server_log: Vec<String> = rx.try_iter().collect();
    let panics: Vec<&String> = server_log
        .iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    let cases = junit_cases(reports.path());
    let (failures, known) = failures_of(&text);
    let store = if database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "contract ({store}): {cases} operations tested, up to {examples} examples each, {} failing, {known} known false positives of schemathesis set aside, in {:.0} s\n{}",
        failures.len(),
        started.elapsed().as_secs_f64(),
        summary(&text)
    );
    assert!(panics.is_empty(), "the server panicked: {panics:#?}");
    assert!(
        failures.is_empty() && (out.status.success() || known > 0),
        "schemathesis found failures:\n{}\n\n{text}",
        failures.join("\n")
    );
}

/// The operations tested, from the JUnit report (one test case each).
fn junit_cases(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .matches("<testcase")
                .count()
        })
        .sum()
}

/// The failures schemathesis reports (each case's block), less the ones known to be its own
/// false positives: an "invalid" query parameter that it serialises to nothing (an empty
/// list: the request it shows has no query string), so the server saw a valid request.
/// Returns (real failures, known false positives).
fn failures_of(text: &str) -> (Vec<String>, usize) {
    let Some(start) = text.find("FAILURES") else {
        return (Vec::new(), 0);
    };
    let end = text[start..]
        .find("WARNINGS")
        .or_else(|| text[start..].find("SUMMARY"))
        .map_or(text.len(), |e| start + e);
    let mut real = Vec::new();
    let mut known = 0;
    for case in text[start..end].split("Test Case ID:").skip(1) {
        let curl = case
            .lines()
            .find(|l| l.trim_start().starts_with("curl "))
            .unwrap_or("");
        let url = curl.split_whitespace().last().unwrap_or("");
        let vanished_parameter = case.contains("ST201")
            && case.contains("Invalid component: parameter")
            && case.contains("incorrect type")
            && !url.contains('?');
        // Refusals the API makes by rule, beyond what a schema can say: a query the query
        // language refuses, an event kind that is not one, text holding a NUL character
        // (which PostgreSQL cannot store: refused on both stores, naming the field); a
        // connection whose URL is not an http(s) one or is link-local, whose schema holds what
        // belongs in `secret`, a notifier with no URL, a timeout out of range.
        let stated_refusal = case.contains("ST202")
            && (case.contains("invalid query:")
                || case.contains("is not an event kind")
                || case.contains("cannot hold a NUL character")
                || case.contains("the URL is not valid")
                || case.contains("the URL has no host")
                || case.contains("only http and https URLs")
                || case.contains("link-local or cloud metadata")
                || case.contains("through `secret`")
                || case.contains("connection needs its URL")
                || case.contains("`url` must be text")
                || case.contains("`timeout` is seconds")
                || case.contains("is not supported: notifiers POST"));
        if vanished_parameter || stated_refusal {
            known += 1;
        } else {
            real.push(case.lines().take(12).collect::<Vec<_>>().join("\n"));
        }
    }
    (real, known)
}

/// The run's closing summary (from its last section).
fn summary(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines
        .iter()
        .rposition(|l| l.contains("SUMMARY"))
        .unwrap_or(lines.len().saturating_sub(15));
    lines[from..].join("\n")
}

#[test]
fn the_api_keeps_its_contract_on_sqlite() {
    contract(None);
}

#[test]
fn the_api_keeps_its_contract_on_postgres() {
    with_database("contract", contract);
}
