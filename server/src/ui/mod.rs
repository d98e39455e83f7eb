//! The dashboard: server-rendered pages to browse projects, compare runs and look into one
//! (statuses, params, metric charts, logs, files). Every page reads without JavaScript (tables,
//! static SVG charts); a vendored chart library and our scripts make the charts interactive,
//! follow a running run live, and act on a run from its page through the API. With tokens it
//! signs in through a form that sets an HttpOnly, SameSite=Strict cookie, which reads honour,
//! and changes only with the page's CSRF token in their header.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::Value as J;

use crate::App;
use crate::api::time;
use crate::auth::{COOKIE, Principal};
use crate::error::ApiError;
use crate::routes::{project_for, run_for};
use crate::store::{Point, RunRow, SeriesData, TokenScope};

mod search;

pub fn routes() -> Router<App> {
    use axum::routing::{get, post};
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/{owner}/{project}", get(project))
        .route("/ui/{owner}/{project}/compare", get(compare))
        .route("/ui/{owner}/{project}/runs/{uuid}", get(run))
        .route("/ui/{owner}/{project}/runs/{uuid}/file", get(run_file))
}

/// Images shown inline, by extension (nothing a browser would run: no SVG, no HTML).
const INLINE_IMAGES: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
];

/// The most of a file a preview reads.
const PREVIEW_AT_MOST: u64 = 256 << 10;
/// The largest image shown inline.
const IMAGE_AT_MOST: u64 = 32 << 20;

#[derive(Deserialize, Default)]
struct FileQuery {
    path: Option<String>,
    raw: Option<u8>,
}

fn image_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    INLINE_IMAGES
        .iter()
        .find(|(e, _)| *e == ext)
        .map(|(_, m)| *m)
}

/// A run's file: an image or text previewed in a page (`raw=1`: an image's bytes, inline, with
/// a policy that runs nothing), with its download link.
async fn run_file(
    State(app): State<App>,
    headers: HeaderMap,
    Path((owner, name, uuid)): Path<(String, String, String)>,
    Query(q): Query<FileQuery>,
) -> Result<Response, UiError> {
    let rel = q.path.clone().unwrap_or_default();
    let page_url = format!("/ui/{}/{}/runs/{}", enc(&owner), enc(&name), enc(&uuid));
    let here = format!("{page_url}/file?path={}", enc(&rel));
    let who = principal(&app, &headers, &here).await?;
    let fail = |e: ApiError| UiError(e, here.clone());
    let (_, r) = run_for(&app, &who, &owner, &name, &uuid, false)
        .await
        .map_err(fail)?;
    if q.raw == Some(1) {
        let Some(mime) = image_type(&rel) else {
            return Err(fail(ApiError::BadRequest(format!(
                "`{rel}` is not an image this page shows; download it instead"
            ))));
        };
        let bytes = app
            .read_run_file(&r.uuid, &rel, IMAGE_AT_MOST)
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                fail(ApiError::NotFound(format!(
                    "no image `{rel}` (or too large)"
                )))
            })?;
        return Ok((
            [
                (header::CONTENT_TYPE, mime),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
                (header::CACHE_CONTROL, "private, max-age=60"),
            ],
            bytes,
        )
            .into_response());
    }
    let stream = format!(
        "/streams/v1/polyaxon/{}/{}/runs/{}",
        enc(&owner),
        enc(&name),
        enc(&r.uuid)
    );
    let mut b = format!(
        "<p><a href='{page_url}'>{}</a></p><h2 class=mono>{}</h2><p><a href='{stream}/artifact?path={}'>download</a></p>",
        esc(r.name.as_deref().unwrap_or(&r.uuid)),
        esc(&rel),
        enc(&rel)
    );
    if image_type(&rel).is_some() {
        let _ = write!(
            b,
            "<img class=preview src='{}&raw=1' alt='{}'>",
            esc(&here),
            esc(&rel)
        );
    } else {
        match app.read_run_file(&r.uuid, &rel, PREVIEW_AT_MOST).await {
            Ok(Some(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    let _ = write!(b, "<pre class=preview>{}</pre>", esc(text));
                }
                Err(_) => {
                    let _ = write!(
                        b,
                        "<p class=muted>A binary file of {} bytes: download it.</p>",
                        bytes.len()
                    );
                }
            },
            Ok(None) => b.push_str(
                "<p class=muted>Too large to preview here (or not a file): download it.</p>",
            ),
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(page(&rel, Some(&who.user.username), &b, false).into_response())
}

/// One logged event: its step, time and value (an object, or text).
struct Event {
    step: Option<i64>,
    value: J,
}

/// The events of a file `polyaxon.tracking` wrote: `step|timestamp|value` lines after a
/// header (images, histograms, curves…), or JSON lines (text, html).
fn events_of(text: &str, kind: &str) -> Vec<Event> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("step|"))
        .filter_map(|l| {
            if l.starts_with('{') {
                let o: serde_json::Map<String, J> = serde_json::from_str(l).ok()?;
                Some(Event {
                    step: o.get("step").and_then(J::as_i64),
                    value: o.get(kind).cloned().unwrap_or(J::Null),
                })
            } else {
                let mut cols = l.splitn(3, '|');
                let step = cols.next()?.trim().parse().ok();
                let _ts = cols.next()?;
                let raw = cols.next()?;
                Some(Event {
                    step,
                    value: serde_json::from_str(raw).unwrap_or_else(|_| J::String(raw.into())),
                })
            }
        })
        .collect()
}

/// What tracking logged besides metrics (images, text, HTML, histograms, curves, dataframes,
/// confusion matrices), the last steps of each, on the run's page.
async fn media_section(app: &App, page_url: &str, uuid: &str) -> String {
    let mut b = String::new();
    for kind in [
        "image",
        "text",
        "html",
        "histogram",
        "curve",
        "dataframe",
        "confusion",
    ] {
        let dir = format!("events/{kind}");
        let Ok(names) = app.run_file_names(uuid, &dir).await else {
            continue;
        };
        for file in names {
            let Some(name) = file.strip_suffix(".plx") else {
                continue;
            };
            let Ok(Some(bytes)) = app
                .read_run_file(uuid, &format!("{dir}/{file}"), 16 << 20)
                .await
            else {
                continue;
            };
            let events = events_of(&String::from_utf8_lossy(&bytes), kind);
            if events.is_empty() {
                continue;
            }
            let step = |e: &Event| e.step.map(|s| format!(" · step {s}")).unwrap_or_default();
            let _ = write!(
                b,
                "<div class='chart media' data-kind='{kind}' data-name='{}'><b>{}</b> <span class=muted>{kind} · {} events</span><div class=media-items>",
                esc(name),
                esc(name),
                events.len()
            );
            match kind {
                "image" => {
                    for e in events.iter().rev().take(6).rev() {
                        let Some(path) = e.value.get("path").and_then(J::as_str) else {
                            continue;
                        };
                        if path.starts_with('/') || path.split('/').any(|p| p == "..") {
                            continue;
                        }
                        let _ = write!(
                            b,
                            "<figure><img src='{page_url}/file?path={}&raw=1' alt='{}{}' loading=lazy><figcaption>{}</figcaption></figure>",
                            enc(path),
                            esc(name),
                            esc(&step(e)),
                            esc(step(e).trim_start_matches(" · "))
                        );
                    }
                }
                "text" => {
                    b.push_str("<table>");
                    for e in events.iter().rev().take(10).rev() {
                        let _ = write!(
                            b,
                            "<tr><td class=num>{}<td>{}</tr>",
                            e.step.map(|s| s.to_string()).unwrap_or_default(),
                            esc(e.value.as_str().unwrap_or(&e.value.to_string()))
                        );
                    }
                    b.push_str("</table>");
                }
                "html" => {
                    let e = events.last().expect("not empty");
                    // Sandboxed: the logged HTML runs no script and reaches nothing of this site.
                    let _ = write!(
                        b,
                        "<iframe sandbox title='{}' srcdoc='{}'></iframe><div class=muted>{}</div>",
                        esc(name),
                        esc(e.value.as_str().unwrap_or_default()),
                        esc(step(e).trim_start_matches(" · "))
                    );
                }
                "histogram" => {
                    let e = events.last().expect("not empty");
                    b.push_str(&svg_histogram(&e.value));
                    let _ = write!(
                        b,
                        "<div class=muted>{}</div>",
                        esc(step(e).trim_start_matches(" · "))
                    );
                }
                "dataframe" => {
                    let e = events.last().expect("not empty");
                    b.push_str(&dataframe(app, page_url, uuid, &e.value).await);
                    let _ = write!(
                        b,
                        "<div class=muted>{}</div>",
                        esc(step(e).trim_start_matches(" · "))
                    );
                }
                "confusion" => {
                    let e = events.last().expect("not empty");
                    b.push_str(&confusion_table(&e.value));
                    let _ = write!(
                        b,
                        "<div class=muted>{}</div>",
                        esc(step(e).trim_start_matches(" · "))
                    );
                }
                _ => {
                    let e = events.last().expect("not empty");
                    b.push_str(&svg_curve(&e.value));
                }
            }
            b.push_str("</div></div>");
        }
    }
    if b.is_empty() {
        return b;
    }
    format!("<h3>Media</h3><div class=charts>{b}</div>")
}

/// The rows a dataframe's preview shows at most.
const DATAFRAME_ROWS: usize = 20;

/// A logged dataframe (`log_dataframe`): its first rows as a table (CSV), or its HTML
/// sandboxed; a link to the whole file.
async fn dataframe(app: &App, page_url: &str, uuid: &str, v: &J) -> String {
    let Some(path) = v
        .get("path")
        .and_then(J::as_str)
        .filter(|p| !p.starts_with('/') && !p.split('/').any(|s| s == ".."))
    else {
        return "<p class=muted>(no file)</p>".into();
    };
    let link = format!(
        "<a href='{page_url}/file?path={}'>{}</a>",
        enc(path),
        esc(path)
    );
    let Ok(Some(bytes)) = app.read_run_file(uuid, path, PREVIEW_AT_MOST).await else {
        return format!("<p class=muted>{link} is not there (yet)</p>");
    };
    let text = String::from_utf8_lossy(&bytes);
    match v.get("content_type").and_then(J::as_str) {
        Some("html") => format!(
            "<iframe sandbox title='{}' srcdoc='{}'></iframe><div class=muted>{link}</div>",
            esc(path),
            esc(&text)
        ),
        _ => {
            let rows = parse_csv(&text, DATAFRAME_ROWS + 1);
            let mut t = String::from("<table class=dataframe>");
            for (i, row) in rows.iter().enumerate() {
                t.push_str("<tr>");
                for c in row {
                    let tag = if i == 0 { "th" } else { "td" };
                    let _ = write!(t, "<{tag}>{}</{tag}>", esc(c));
                }
                t.push_str("</tr>");
            }
            let more = text.lines().count().saturating_sub(rows.len());
            let _ = write!(
                t,
                "</table><div class=muted>{}{link}</div>",
                if more > 0 || bytes.len() as u64 >= PREVIEW_AT_MOST {
                    "the first rows; all of them: ".to_string()
                } else {
                    String::new()
                }
            );
            t
        }
    }
}

/// The first `max` records of CSV text (quoted fields, doubled quotes and line breaks in
/// quotes as RFC 4180 has them).
fn parse_csv(text: &str, max: usize) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                if rows.len() >= max {
                    return rows;
                }
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// A confusion matrix (`log_confusion_matrix`): a row per actual class (`y`), a column per
/// predicted one (`x`), each cell shaded by its share of the largest.
fn confusion_table(v: &J) -> String {
    let labels = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(J::as_array)
            .map(|a| a.iter().map(value_text).collect())
            .unwrap_or_default()
    };
    let (xs, ys) = (labels("x"), labels("y"));
    let z: Vec<Vec<f64>> = v
        .get("z")
        .and_then(J::as_array)
        .map(|rows| rows.iter().map(|r| numbers(Some(r))).collect())
        .unwrap_or_default();
    let top = z
        .iter()
        .flatten()
        .copied()
        .filter(|f| f.is_finite())
        .fold(0.0, f64::max);
    let mut t = String::from("<table class=confusion><tr><th class=muted>actual ╲ predicted");
    for x in &xs {
        let _ = write!(t, "<th>{}", esc(x));
    }
    t.push_str("</tr>");
    for (i, row) in z.iter().enumerate() {
        let _ = write!(
            t,
            "<tr><th>{}",
            esc(ys.get(i).map(String::as_str).unwrap_or(""))
        );
        for (j, c) in row.iter().enumerate() {
            let share = if top > 0.0 { c / top } else { 0.0 };
            let _ = write!(
                t,
                "<td class=num style='background:rgba(36,87,197,{:.2});color:{}' title='{} → {}: {}'>{}",
                share * 0.85,
                if share > 0.55 { "#fff" } else { "#1d2330" },
                esc(ys.get(i).map(String::as_str).unwrap_or("")),
                esc(xs.get(j).map(String::as_str).unwrap_or("")),
                value_text(&J::from(*c)),
                value_text(&J::from(*c))
            );
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

fn numbers(v: Option<&J>) -> Vec<f64> {
    v.and_then(J::as_array)
        .map(|a| a.iter().filter_map(J::as_f64).collect())
        .unwrap_or_default()
}

/// A histogram as tracking logs it: `values` the count of each bin, `counts` their edges.
fn svg_histogram(v: &J) -> String {
    let (counts, edges) = (numbers(v.get("values")), numbers(v.get("counts")));
    if counts.is_empty() {
        return String::new();
    }
    let (w, h) = (360.0, 140.0);
    let top = counts.iter().cloned().fold(0.0, f64::max).max(1e-12);
    let bw = w / counts.len() as f64;
    let mut bars = String::new();
    for (i, c) in counts.iter().enumerate() {
        let bh = c / top * (h - 4.0);
        let _ = write!(
            bars,
            "<rect x='{:.1}' y='{:.1}' width='{:.1}' height='{bh:.1}' fill='#2457c5'><title>{}{c}</title></rect>",
            i as f64 * bw + 1.0,
            h - bh,
            (bw - 2.0).max(1.0),
            match (edges.get(i), edges.get(i + 1)) {
                (Some(a), Some(b)) => format!("[{a:.3}, {b:.3}): "),
                _ => String::new(),
            }
        );
    }
    format!(
        "<svg width={w} height={h} viewBox='0 0 {w} {h}' role=img aria-label=histogram><rect width={w} height={h} fill=#fbfcfd />{bars}</svg>"
    )
}

/// A curve as tracking logs it (ROC, PR, custom): `x`, `y`, a `kind` and an `annotation`.
fn svg_curve(v: &J) -> String {
    let (xs, ys) = (numbers(v.get("x")), numbers(v.get("y")));
    if xs.is_empty() || xs.len() != ys.len() {
        return String::new();
    }
    let (w, h, pad) = (360.0, 200.0, 8.0);
    let span = |a: &[f64]| {
        let (lo, hi) = a
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
        if hi > lo { (lo, hi) } else { (lo, lo + 1.0) }
    };
    let ((x0, x1), (y0, y1)) = (span(&xs), span(&ys));
    let mut poly = String::new();
    for (x, y) in xs.iter().zip(&ys) {
        let _ = write!(
            poly,
            "{:.1},{:.1} ",
            pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad),
            pad + (y1 - y) / (y1 - y0) * (h - 2.0 * pad)
        );
    }
    let label = [v.get("kind"), v.get("annotation")]
        .iter()
        .filter_map(|x| x.and_then(J::as_str))
        .collect::<Vec<_>>()
        .join(" · ");
    format!(
        "<svg width={w} height={h} viewBox='0 0 {w} {h}' role=img aria-label='{}'><rect width={w} height={h} fill=#fbfcfd stroke=#e3e6eb /><polyline fill=none stroke=#c4320a stroke-width=1.5 points='{poly}' /></svg><div class=muted>{}</div>",
        esc(&label),
        esc(&label)
    )
}

/// The files pages load: uPlot (1.6.32, vendored with its licence) and our charts over it.
struct Asset {
    stem: &'static str,
    ext: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        stem: "uplot",
        ext: "js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/uplot/uPlot.iife.min.js"),
    },
    Asset {
        stem: "uplot",
        ext: "css",
        mime: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/uplot/uPlot.min.css"),
    },
    Asset {
        stem: "uplot-license",
        ext: "txt",
        mime: "text/plain; charset=utf-8",
        bytes: include_bytes!("../../assets/uplot/LICENSE"),
    },
    Asset {
        stem: "charts",
        ext: "js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/charts.js"),
    },
    Asset {
        stem: "runs",
        ext: "js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/runs.js"),
    },
    Asset {
        stem: "live",
        ext: "js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/live.js"),
    },
    Asset {
        stem: "search",
        ext: "js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/search.js"),
    },
    Asset {
        stem: "actions",
        ext: "js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/actions.js"),
    },
];

/// A run's actions, for its page's script (hidden without it: the page stays read-only).
fn actions_bar(owner: &str, project: &str, r: &RunRow, csrf: &str) -> String {
    let done = r.status().is_done();
    let label = r.name.as_deref().unwrap_or(&r.uuid);
    let mut b = format!(
        "<div class=plx-actions hidden data-csrf='{}' data-uuid='{}' data-api='/api/v1/{}/{}/runs/{}' data-project='/ui/{}/{}'>",
        esc(csrf),
        esc(&r.uuid),
        enc(owner),
        enc(project),
        enc(&r.uuid),
        enc(owner),
        enc(project)
    );
    if !done {
        let _ = write!(
            b,
            "<button data-action=stop data-confirm='{}'>stop</button>",
            esc(&format!("Stop run {label}?"))
        );
    }
    if r.status == "created" {
        b.push_str("<button data-action=approve>approve</button>");
    }
    if done {
        b.push_str("<button data-action=restart>restart</button><button data-action=resume>resume</button>");
    }
    let _ = write!(
        b,
        "<button data-action=delete data-confirm='{}'>delete</button>\
         <details><summary>edit</summary><form class=plx-edit>\
         <label>name <input name=name value='{}'></label> <label>description <input name=description value='{}'></label> \
         <label>tags <input name=tags value='{}'></label> <button>save</button></form></details>\
         <span class=plx-action-status role=status></span></div><script src='{}' defer></script>",
        esc(&format!(
            "Delete run {label} and its files? This cannot be undone."
        )),
        esc(r.name.as_deref().unwrap_or("")),
        esc(r.description.as_deref().unwrap_or("")),
        esc(&r.tags().join(", ")),
        asset_url("actions", "js")
    );
    b
}

/// An asset's URL: its name with a hash of its content, so that it is cached for good and a
/// new build's is fetched anew.
pub fn asset_url(stem: &str, ext: &str) -> String {
    static HASHES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let hashes = HASHES.get_or_init(|| {
        use sha2::Digest;
        ASSETS
            .iter()
            .map(|a| {
                sha2::Sha256::digest(a.bytes)
                    .iter()
                    .take(6)
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect()
    });
    let i = ASSETS
        .iter()
        .position(|a| a.stem == stem && a.ext == ext)
        .expect("a known asset");
    format!("/ui/assets/{stem}.{}.{ext}", hashes[i])
}

async fn asset(Path(file): Path<String>) -> Response {
    for a in ASSETS {
        if asset_url(a.stem, a.ext) == format!("/ui/assets/{file}") {
            return (
                [
                    (header::CONTENT_TYPE, a.mime),
                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                a.bytes,
            )
                .into_response();
        }
    }
    (StatusCode::NOT_FOUND, "no such asset").into_response()
}

const COLORS: [&str; 10] = [
    "#2457c5", "#c4320a", "#18794e", "#a66b00", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f",
    "#9a3412", "#475569",
];

/// Interactive charts of `metrics` over `runs` (uuid, name, series), each drawn first as a
/// static SVG (what a page without JavaScript shows), which the script replaces.
fn charts_block(
    owner: &str,
    project: &str,
    runs: &[(String, String, Vec<SeriesData>)],
    metrics: &[String],
    baseline: Option<&str>,
    discover: bool,
) -> String {
    if metrics.is_empty() && !discover {
        return String::new();
    }
    let cfg = serde_json::json!({
        "api": format!("/streams/v1/polyaxon/{}/{}/runs", enc(owner), enc(project)),
        "runs": runs.iter().map(|(u, n, _)| serde_json::json!({"uuid": u, "name": n})).collect::<Vec<_>>(),
        "metrics": metrics,
        "baseline": baseline,
        "discover": discover,
    });
    let mut b = format!(
        "<link rel=stylesheet href='{}'><div data-plx-charts='{}'>\
         <div class=plx-controls hidden>x <select name=x aria-label='x axis'><option value=step>step<option value=wall>wall time<option value=rel>relative time</select> \
         <label><input type=checkbox name=log> log scale</label> \
         <label>smoothing <input type=range name=smooth min=0 max=0.99 step=0.01 value=0 aria-label=smoothing> <span class=plx-smooth-value>0.00</span></label> \
         <label><input type=checkbox name=raw> raw values</label> <span class='plx-status muted'></span></div><div class=charts>",
        asset_url("uplot", "css"),
        esc(&cfg.to_string())
    );
    for m in metrics {
        let series: Vec<(&str, &str, &SeriesData)> = runs
            .iter()
            .enumerate()
            .filter_map(|(i, (_, n, ss))| {
                ss.iter()
                    .find(|s| &s.name == m)
                    .map(|s| (n.as_str(), COLORS[i % COLORS.len()], s))
            })
            .collect();
        let _ = write!(
            b,
            "<div class='chart plx-plot' data-metric='{}'>{}</div>",
            esc(m),
            svg_overlay(m, &series)
        );
    }
    let _ = write!(
        b,
        "</div></div><script src='{}' defer></script><script src='{}' defer></script>",
        asset_url("uplot", "js"),
        asset_url("charts", "js")
    );
    b
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value or path segment.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const STYLE: &str = "
[hidden]{display:none!important}
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:16px;align-items:center}
header a{color:#fff;text-decoration:none}header .who{margin-left:auto;opacity:.8}
main{padding:16px 24px;max-width:1400px}a{color:#2457c5}
table{border-collapse:collapse;background:#fff;width:100%;margin:8px 0 20px}
th,td{text-align:left;padding:5px 10px;border-bottom:1px solid #e3e6eb;vertical-align:top}
th{background:#eef0f4;font-weight:600;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
.s-succeeded,.s-done{color:#18794e}.s-failed,.s-upstream_failed,.s-unschedulable{color:#c4320a}
.s-stopped,.s-stopping,.s-skipped,.s-warning{color:#a66b00}.s-running,.s-starting,.s-resuming{color:#2457c5}
.mono,code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
pre{background:#10141c;color:#d7dce5;padding:12px;overflow:auto;max-height:480px}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{background:#fff;padding:8px 12px;border:1px solid #e3e6eb}
form.q{display:flex;gap:8px;margin:8px 0}form.q input[name=query]{flex:1}input{padding:5px 8px}
.dag{overflow:auto;background:#fff;border:1px solid #e3e6eb;margin:8px 0;max-height:640px}
.dag a.node:hover rect{stroke-width:2.5}
.muted{color:#6b7280}.kv td:first-child{font-weight:600;width:160px}
table.cmp tr.differs td:first-child{font-weight:600}table.cmp td.diff{background:#fff4d6}
.plx-controls{display:flex;gap:14px;align-items:center;margin:6px 0 10px;flex-wrap:wrap}
.media figure{display:inline-block;margin:4px 8px 4px 0}.media img{max-width:256px;image-rendering:pixelated;min-width:64px;border:1px solid #e3e6eb}
.media iframe{width:360px;height:160px;border:1px solid #e3e6eb;background:#fff}img.preview{max-width:100%}
table.dataframe,table.confusion{width:auto;margin:4px 0}table.confusion th{background:#eef0f4}
.plx-plot:focus{outline:2px solid #2457c5;outline-offset:2px}rect.plx-hit:focus{outline:none;stroke:#2457c5;stroke-width:2}
.plx-actions{display:flex;gap:8px;align-items:center;margin:0 0 12px;flex-wrap:wrap}.plx-actions details{display:inline-block}
";

fn page(title: &str, who: Option<&str>, body: &str, refresh: bool) -> Html<String> {
    let who = match who {
        Some(u) => format!(
            "<span class=who>{} · <form method=post action=/ui/logout style=display:inline><button>sign out</button></form></span>",
            esc(u)
        ),
        None => String::new(),
    };
    // Without JavaScript a live page refreshes itself; with it, its script follows the run.
    let refresh = if refresh {
        "<noscript><meta http-equiv=refresh content=5></noscript>"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><meta name=viewport content='width=device-width'><link rel=icon href='data:,'>{refresh}\
         <title>{} · polyaxon</title><style>{STYLE}</style></head><body>\
         <header><a href=/ui><b>polyaxon</b></a>{who}</header><main>{body}</main></body></html>",
        esc(title)
    ))
}

/// Pages answer a missing login with the login page, other errors with a page saying so.
pub struct UiError(ApiError, String);

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self.0 {
            ApiError::Unauthorized(_) => {
                Redirect::to(&format!("/ui/login?next={}", enc(&self.1))).into_response()
            }
            e => {
                let (status, msg) = match &e {
                    ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
                    ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
                    ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
                    ApiError::Unavailable(m, _) => (StatusCode::SERVICE_UNAVAILABLE, m.clone()),
                    other => (StatusCode::INTERNAL_SERVER_ERROR, format!("{other:?}")),
                };
                (
                    status,
                    page(
                        "error",
                        None,
                        &format!("<h2>{}</h2><p><a href=/ui>back</a></p>", esc(&msg)),
                        false,
                    ),
                )
                    .into_response()
            }
        }
    }
}

/// Who is looking: a signed-in user (a run's token is for its own run's API, not the pages).
async fn principal(app: &App, headers: &HeaderMap, here: &str) -> Result<Principal, UiError> {
    let who = crate::auth::resolve(app, headers, true)
        .await
        .map_err(|e| UiError(e, here.to_string()))?;
    who.require_user_scope()
        .map_err(|e| UiError(e, here.to_string()))?;
    Ok(who)
}

async fn index(State(app): State<App>, headers: HeaderMap) -> Result<Html<String>, UiError> {
    let who = principal(&app, &headers, "/ui").await?;
    let fail = |e: crate::store::StoreError| UiError(e.into(), "/ui".into());
    let (count, projects) = app
        .store
        .list_projects(&who.user.username, &who.user, "", "-updated_at", 200, 0)
        .await
        .map_err(fail)?;
    let mut b = format!("<h2>Projects of {}</h2>", esc(&who.user.username));
    if projects.is_empty() {
        b.push_str(
            "<p class=muted>No projects yet: <code>polyaxon project create -n NAME</code></p>",
        );
    } else {
        b.push_str("<table><tr><th>name<th>description<th>tags<th>updated</tr>");
        for p in &projects {
            let _ = write!(
                b,
                "<tr><td><a href='/ui/{}/{}'>{}</a><td>{}<td>{}<td class=muted>{}</tr>",
                enc(&p.owner),
                enc(&p.name),
                esc(&p.name),
                esc(p.description.as_deref().unwrap_or("")),
                esc(&p.tags().join(", ")),
                esc(&time(p.updated_at)[..19].replace('T', " "))
            );
        }
        let _ = write!(b, "</table><p class=muted>{count} projects</p>");
    }
    Ok(page("projects", Some(&who.user.username), &b, false))
}

fn status_span(s: &str) -> String {
    format!("<span class='s-{}'>{}</span>", esc(s), esc(s))
}

fn value_text(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        J::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{}", (f * 1e6).round() / 1e6),
            _ => n.to_string(),
        },
        J::Null => String::new(),
        other => other.to_string(),
    }
}

fn duration(secs: Option<f64>) -> String {
    let Some(s) = secs else { return String::new() };
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The runs a CSV export holds at most.
const CSV_AT_MOST: i64 = 100_000;

/// A column of the runs table.
#[derive(Clone, Debug, PartialEq)]
enum Col {
    Name,
    Status,
    Created,
    Duration,
    User,
    Tags,
    Param(String),
    /// A metric's last value…
    Metric(String),
    /// …its lowest…
    MetricMin(String),
    /// …and its highest.
    MetricMax(String),
}

/// Series' lowest and highest values by (run, name).
type ExtremaMap = std::collections::BTreeMap<(i64, String), (Option<f64>, Option<f64>)>;

impl Col {
    fn key(&self) -> String {
        match self {
            Col::Name => "name".into(),
            Col::Status => "status".into(),
            Col::Created => "created".into(),
            Col::Duration => "duration".into(),
            Col::User => "user".into(),
            Col::Tags => "tags".into(),
            Col::Param(k) => format!("params.{k}"),
            Col::Metric(k) => format!("metrics.{k}"),
            Col::MetricMin(k) => format!("metrics_min.{k}"),
            Col::MetricMax(k) => format!("metrics_max.{k}"),
        }
    }

    fn parse(key: &str) -> Option<Col> {
        Some(match key {
            "name" => Col::Name,
            "status" => Col::Status,
            "created" => Col::Created,
            "duration" => Col::Duration,
            "user" => Col::User,
            "tags" => Col::Tags,
            k => match k.split_once('.') {
                Some(("params", p)) if !p.is_empty() => Col::Param(p.into()),
                Some(("metrics", m)) if !m.is_empty() => Col::Metric(m.into()),
                Some(("metrics_min", m)) if !m.is_empty() => Col::MetricMin(m.into()),
                Some(("metrics_max", m)) if !m.is_empty() => Col::MetricMax(m.into()),
                _ => return None,
            },
        })
    }

    /// The PQL field the column sorts by.
    fn sort_field(&self) -> String {
        match self {
            Col::Created => "created_at".into(),
            Col::User => "user".into(),
            other => other.key(),
        }
    }

    fn label(&self) -> String {
        match self {
            Col::Param(k) | Col::Metric(k) => k.clone(),
            Col::MetricMin(k) => format!("{k} (min)"),
            Col::MetricMax(k) => format!("{k} (max)"),
            other => other.key(),
        }
    }

    /// The series whose extrema the column shows.
    fn series(&self) -> Option<&str> {
        match self {
            Col::MetricMin(k) | Col::MetricMax(k) => Some(k),
            _ => None,
        }
    }

    /// The cell of run `r` as text.
    fn text(&self, r: &RunRow, ex: &ExtremaMap) -> String {
        let extreme = |k: &str, max: bool| {
            ex.get(&(r.id, k.to_string()))
                .and_then(|(lo, hi)| if max { *hi } else { *lo })
                .map(|v| value_text(&J::from(v)))
                .unwrap_or_default()
        };
        match self {
            Col::Name => r.name.clone().unwrap_or_default(),
            Col::Status => r.status.clone(),
            Col::Created => time(r.created_at)[..19].replace('T', " "),
            Col::Duration => r.duration.map(|d| format!("{d:.1}")).unwrap_or_default(),
            Col::User => r.username.clone().unwrap_or_default(),
            Col::Tags => r.tags().join(", "),
            Col::Param(k) => r.inputs().get(k).map(value_text).unwrap_or_default(),
            Col::Metric(k) => r.outputs().get(k).map(value_text).unwrap_or_default(),
            Col::MetricMin(k) => extreme(k, false),
            Col::MetricMax(k) => extreme(k, true),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    query: Option<String>,
    sort: Option<String>,
    offset: Option<i64>,
    /// The columns shown, comma-separated keys (`name,status,params.lr,metrics.loss`).
    cols: Option<String>,
    /// `csv`: every run the query matches, as CSV.
    format: Option<String>,
}

/// A CSV field, quoted when it needs to be; a leading `=`, `+`, `-` or `@` is defused, so that
/// a spreadsheet does not take a run's name for a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '@']) || (s.starts_with('-') && s.parse::<f64>().is_err()) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

async fn project(
    State(app): State<App>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Query(mut q): Query<ListQuery>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    // The columns form ticks `col`s: they are the columns.
    let ticked: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "col")
        .map(|(_, v)| v)
        .collect();
    if !ticked.is_empty() {
        q.cols = Some(ticked.join(","));
    }
    let here = format!("/ui/{}/{}", enc(&owner), enc(&name));
    let who = principal(&app, &headers, &here).await?;
    let fail = |e: ApiError| UiError(e, here.clone());
    let p = project_for(&app, &who, &owner, &name, false)
        .await
        .map_err(fail)?;
    let query = q.query.clone().unwrap_or_default();
    let sort = q.sort.clone().unwrap_or_default();
    let offset = q.offset.unwrap_or(0).clamp(0, i64::MAX / 2);
    let csv = q.format.as_deref() == Some("csv");
    let limit = if csv { CSV_AT_MOST } else { 50 };
    let listed = app
        .store
        .list_runs(p.id, &query, &sort, limit, if csv { 0 } else { offset })
        .await;
    let (count, runs) = match listed {
        Ok(x) => x,
        Err(e) if csv => return Err(UiError(e.into(), here.clone())),
        Err(e) => {
            let b = format!(
                "<h2>{}/{}</h2><p class=s-failed>{}</p><p><a href='{here}'>back</a></p>",
                esc(&owner),
                esc(&name),
                esc(&e.to_string())
            );
            return Ok(page(&name, Some(&who.user.username), &b, false).into_response());
        }
    };
    // Every param and metric of these runs can be a column.
    let mut params = std::collections::BTreeSet::new();
    let mut metrics = std::collections::BTreeSet::new();
    for r in &runs {
        params.extend(r.inputs().keys().cloned());
        metrics.extend(r.outputs().keys().cloned());
    }
    let mut available = vec![
        Col::Name,
        Col::Status,
        Col::Created,
        Col::Duration,
        Col::User,
    ];
    available.extend(params.iter().cloned().map(Col::Param));
    available.extend(metrics.iter().cloned().map(Col::Metric));
    // A metric's lowest and highest values too (those that are numbers in some run).
    let numeric: Vec<String> = metrics
        .iter()
        .filter(|m| {
            runs.iter()
                .any(|r| r.outputs().get(*m).is_some_and(J::is_number))
        })
        .cloned()
        .collect();
    for m in &numeric {
        available.push(Col::MetricMin(m.clone()));
        available.push(Col::MetricMax(m.clone()));
    }
    available.push(Col::Tags);
    let chosen: Vec<Col> = match q.cols.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(c) => c.split(',').filter_map(|k| Col::parse(k.trim())).collect(),
        // By default the last values only.
        None => available
            .iter()
            .filter(|c| c.series().is_none())
            .cloned()
            .collect(),
    };
    // The chosen min and max columns' values, for these runs.
    let mut ex = ExtremaMap::new();
    let wanted: Vec<String> = chosen
        .iter()
        .filter_map(|c| c.series().map(str::to_string))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !wanted.is_empty() {
        let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        for part in ids.chunks(500) {
            ex.extend(
                app.store
                    .extrema(part, &wanted)
                    .await
                    .map_err(|e| UiError(e.into(), here.clone()))?,
            );
        }
    }
    let cols_param = chosen.iter().map(Col::key).collect::<Vec<_>>().join(",");
    if csv {
        let mut out = chosen
            .iter()
            .map(|c| csv_field(&c.key()))
            .chain(std::iter::once("uuid".to_string()))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
        for r in &runs {
            let line = chosen
                .iter()
                .map(|c| csv_field(&c.text(r, &ex)))
                .chain(std::iter::once(r.uuid.clone()))
                .collect::<Vec<_>>()
                .join(",");
            out.push_str(&line);
            out.push('\n');
        }
        let file = format!("{}-{}-runs.csv", owner, name).replace(['"', '/', '\\'], "_");
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file}\""),
                ),
            ],
            out,
        )
            .into_response());
    }
    let link = |sort: &str, offset: i64| {
        format!(
            "?query={}&sort={}&cols={}&offset={offset}",
            enc(&query),
            enc(sort),
            enc(&cols_param)
        )
    };
    // The query box suggests the fields there are (the browser's own list, by keyboard too).
    let mut fields: Vec<String> = [
        "name",
        "status",
        "kind",
        "user",
        "tags",
        "created_at",
        "updated_at",
        "started_at",
        "finished_at",
        "duration",
        "uuid",
        "pipeline",
    ]
    .iter()
    .map(|f| f.to_string())
    .collect();
    fields.extend(params.iter().map(|k| format!("params.{k}")));
    fields.extend(metrics.iter().map(|k| format!("metrics.{k}")));
    fields.extend(numeric.iter().map(|k| format!("metrics_min.{k}")));
    fields.extend(numeric.iter().map(|k| format!("metrics_max.{k}")));
    let mut b = format!(
        "<h2>{}/{}</h2><p class=muted>{}</p>\
         <form class=q method=get><input name=query list=plx-fields aria-label='query' placeholder='status: running|failed, metrics.loss: &lt;0.2, tags: baseline' value='{}'>\
         <input name=sort aria-label=sort placeholder='-created_at' value='{}'><input type=hidden name=cols value='{}'><button>filter</button></form><datalist id=plx-fields>",
        esc(&owner),
        esc(&name),
        esc(p.description.as_deref().unwrap_or("")),
        esc(&query),
        esc(&sort),
        esc(&cols_param)
    );
    for f in &fields {
        let _ = write!(b, "<option value='{}: '>", esc(f));
    }
    b.push_str("</datalist>");
    // The columns: chosen here, kept per project by the page's script.
    let _ = write!(
        b,
        "<details class=plx-cols data-project='{}/{}'><summary>columns</summary><form method=get>\
         <input type=hidden name=query value='{}'><input type=hidden name=sort value='{}'>",
        esc(&owner),
        esc(&name),
        esc(&query),
        esc(&sort)
    );
    for c in &available {
        let _ = write!(
            b,
            "<label><input type=checkbox name=col value='{}'{}> {}</label> ",
            esc(&c.key()),
            if chosen.contains(c) { " checked" } else { "" },
            esc(&c.key())
        );
    }
    let _ = write!(
        b,
        "<input type=hidden name=cols value=''><button>show</button></form></details>\
         <p><a href='?query={}&sort={}&cols={}&format=csv'>export CSV</a> <span class=muted>(every run the query matches, up to {CSV_AT_MOST})</span></p>",
        enc(&query),
        enc(&sort),
        enc(&cols_param)
    );
    let _ = write!(
        b,
        "<form method=get action='/ui/{}/{}/compare'><p><button>compare selected</button> <span class=muted>(or all on this page when none is)</span></p><table class=runs><tr><th><span class=muted>✓</span>",
        enc(&owner),
        enc(&name)
    );
    for c in &chosen {
        let field = c.sort_field();
        let next = if sort == field {
            format!("-{field}")
        } else {
            field.clone()
        };
        let _ = write!(
            b,
            "<th><a href='{}'>{}</a>",
            link(&next, 0),
            esc(&c.label())
        );
    }
    b.push_str("</tr>");
    for r in &runs {
        let _ = write!(
            b,
            "<tr><td><input type=checkbox name=runs value='{}' aria-label='select {}'>",
            esc(&r.uuid),
            esc(r.name.as_deref().unwrap_or(&r.uuid))
        );
        for c in &chosen {
            match c {
                Col::Name => {
                    let _ = write!(
                        b,
                        "<td><a href='/ui/{}/{}/runs/{}'>{}</a> <span class='muted mono'>{}</span>",
                        enc(&owner),
                        enc(&name),
                        enc(&r.uuid),
                        esc(r.name.as_deref().unwrap_or("(unnamed)")),
                        esc(&r.uuid[..8.min(r.uuid.len())])
                    );
                }
                Col::Status => {
                    let _ = write!(b, "<td>{}", status_span(&r.status));
                }
                Col::Created => {
                    let _ = write!(b, "<td class=muted>{}", esc(&c.text(r, &ex)));
                }
                Col::Duration => {
                    let _ = write!(b, "<td class=num>{}", duration(r.duration));
                }
                Col::User | Col::Tags => {
                    let _ = write!(b, "<td>{}", esc(&c.text(r, &ex)));
                }
                Col::Param(_) | Col::Metric(_) | Col::MetricMin(_) | Col::MetricMax(_) => {
                    let _ = write!(b, "<td class=num>{}", esc(&c.text(r, &ex)));
                }
            }
        }
        b.push_str("</tr>");
    }
    // None ticked: the runs of this page.
    for r in &runs {
        let _ = write!(b, "<input type=hidden name=page value='{}'>", esc(&r.uuid));
    }
    b.push_str("</table></form>");
    let _ = write!(
        b,
        "<p class=muted>{}–{} of {count} runs",
        (offset + 1).min(count),
        offset + runs.len() as i64
    );
    if offset > 0 {
        let _ = write!(
            b,
            " · <a href='{}'>previous</a>",
            link(&sort, (offset - 50).max(0))
        );
    }
    if offset + 50 < count {
        let _ = write!(b, " · <a href='{}'>next</a>", link(&sort, offset + 50));
    }
    let live = runs.iter().any(|r| !r.status().is_done());
    let _ = write!(
        b,
        "</p><div hidden data-plx-runs='{}'></div><script src='{}' defer></script>",
        esc(&serde_json::json!({"project": format!("{owner}/{name}"), "cols": q.cols, "live": live}).to_string()),
        asset_url("runs", "js")
    );
    Ok(page(&name, Some(&who.user.username), &b, live).into_response())
}

/// The most runs a comparison shows.
const COMPARE_AT_MOST: usize = 50;

/// `/ui/OWNER/PROJECT/compare?runs=UUID,UUID,…[&baseline=UUID]`: the runs' metrics overlaid,
/// their params and outputs side by side with what differs from the baseline (the first run,
/// or the one pinned) marked. The runs table's checkboxes send `runs=a&runs=b`: both forms.
async fn compare(
    State(app): State<App>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    let raw = raw.unwrap_or_default();
    let here = format!("/ui/{}/{}/compare?{raw}", enc(&owner), enc(&name));
    let who = principal(&app, &headers, &here).await?;
    let fail = |e: ApiError| UiError(e, here.clone());
    let (mut wanted, mut page_runs, mut baseline) = (Vec::<String>::new(), Vec::new(), None);
    for (k, v) in pairs {
        let list = match k.as_str() {
            "runs" => &mut wanted,
            "page" => &mut page_runs,
            "baseline" => {
                baseline = Some(v.replace('-', ""));
                continue;
            }
            _ => continue,
        };
        for u in v.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let u = u.replace('-', "");
            if !list.contains(&u) {
                list.push(u);
            }
        }
    }
    if wanted.is_empty() {
        wanted = page_runs;
    }
    if wanted.is_empty() {
        return Err(fail(ApiError::BadRequest(
            "no runs to compare: tick them in the runs table, or give `?runs=UUID,UUID`".into(),
        )));
    }
    if wanted.len() > COMPARE_AT_MOST {
        return Err(fail(ApiError::BadRequest(format!(
            "{} runs: a comparison shows {COMPARE_AT_MOST} at most",
            wanted.len()
        ))));
    }
    // Without the form's page list: the URL to share names the runs chosen.
    if raw.contains("page=") || raw.matches("runs=").count() > 1 {
        let mut to = format!(
            "/ui/{}/{}/compare?runs={}",
            enc(&owner),
            enc(&name),
            wanted.join(",")
        );
        if let Some(b) = &baseline {
            let _ = write!(to, "&baseline={}", enc(b));
        }
        return Ok(Redirect::to(&to).into_response());
    }
    let mut rows: Vec<RunRow> = Vec::new();
    for u in &wanted {
        let (_, r) = run_for(&app, &who, &owner, &name, u, false)
            .await
            .map_err(fail)?;
        rows.push(r);
    }
    let base_uuid = baseline
        .filter(|b| rows.iter().any(|r| &r.uuid == b))
        .unwrap_or_else(|| rows[0].uuid.clone());
    let base = rows
        .iter()
        .find(|r| r.uuid == base_uuid)
        .expect("among the runs");
    let label = |r: &RunRow| r.name.clone().unwrap_or_else(|| r.uuid[..8].to_string());
    let list = rows
        .iter()
        .map(|r| r.uuid.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let href = |b: &str| {
        format!(
            "/ui/{}/{}/compare?runs={list}&baseline={b}",
            enc(&owner),
            enc(&name)
        )
    };

    let mut b = format!(
        "<p><a href='/ui/{}/{}'>{}/{}</a></p><h2>Comparing {} runs</h2>\
         <p class=muted>Share this page: its address names the runs. The baseline is drawn dashed; what differs from it is marked.</p>",
        enc(&owner),
        enc(&name),
        esc(&owner),
        esc(&name),
        rows.len()
    );
    b.push_str("<table class=cmp><tr><th>run<th>status<th>baseline<th>duration</tr>");
    for (i, r) in rows.iter().enumerate() {
        let is_base = r.uuid == base_uuid;
        let _ = write!(
            b,
            "<tr><td><span style='color:{}'>■</span> <a href='/ui/{}/{}/runs/{}'>{}</a> <span class='muted mono'>{}</span><td>{}<td>{}<td class=num>{}</tr>",
            COLORS[i % COLORS.len()],
            enc(&owner),
            enc(&name),
            enc(&r.uuid),
            esc(&label(r)),
            esc(&r.uuid[..8.min(r.uuid.len())]),
            status_span(&r.status),
            if is_base {
                "<b>baseline</b>".to_string()
            } else {
                format!("<a href='{}'>pin as baseline</a>", href(&r.uuid))
            },
            duration(r.duration)
        );
    }
    b.push_str("</table>");
    for (title, pick) in [
        (
            "Params",
            RunRow::inputs as fn(&RunRow) -> serde_json::Map<String, J>,
        ),
        ("Outputs", RunRow::outputs),
    ] {
        let maps: Vec<serde_json::Map<String, J>> = rows.iter().map(pick).collect();
        let mut keys = std::collections::BTreeSet::new();
        for m in &maps {
            keys.extend(m.keys().cloned());
        }
        if keys.is_empty() {
            continue;
        }
        let base_map = pick(base);
        let _ = write!(b, "<h3>{title}</h3><table class=cmp><tr><th>");
        for r in &rows {
            let _ = write!(b, "<th>{}", esc(&label(r)));
        }
        b.push_str("</tr>");
        for k in &keys {
            let same = maps.iter().all(|m| m.get(k) == maps[0].get(k));
            let _ = write!(
                b,
                "<tr{}><td>{}",
                if same { "" } else { " class=differs" },
                esc(k)
            );
            for m in &maps {
                let v = m.get(k);
                let class = if v != base_map.get(k) {
                    "num diff"
                } else {
                    "num"
                };
                let _ = write!(
                    b,
                    "<td class='{class}'>{}",
                    esc(&v.map(value_text).unwrap_or_else(|| "—".into()))
                );
            }
            b.push_str("</tr>");
        }
        b.push_str("</table>");
    }
    // Every metric any of them has, each run's series sampled for the static charts.
    let mut runs = Vec::new();
    let mut metrics = std::collections::BTreeSet::new();
    for r in &rows {
        let series = app
            .store
            .series(r.id, &[], Some(300))
            .await
            .map_err(|e| UiError(e.into(), here.clone()))?;
        metrics.extend(series.iter().map(|s| s.name.clone()));
        runs.push((r.uuid.clone(), label(r), series));
    }
    if !metrics.is_empty() {
        b.push_str("<h3>Metrics</h3>");
        let metrics: Vec<String> = metrics.into_iter().collect();
        b.push_str(&charts_block(
            &owner,
            &name,
            &runs,
            &metrics,
            Some(&base_uuid),
            false,
        ));
    }
    let live = rows.iter().any(|r| !r.status().is_done());
    Ok(page("compare", Some(&who.user.username), &b, live).into_response())
}

/// A static line chart of one metric over runs, as SVG: each series a polyline of its colour
/// on shared axes, with a legend (what a page shows without JavaScript).
fn svg_overlay(name: &str, series: &[(&str, &str, &SeriesData)]) -> String {
    let (w, h, pad) = (560.0, 170.0, 6.0);
    let pts: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|(_, _, s)| {
            s.points
                .iter()
                .enumerate()
                .map(|(i, p): (usize, &Point)| (p.step.map_or(i as f64, |x| x as f64), p.value))
                .filter(|(_, y)| y.is_finite())
                .collect()
        })
        .collect();
    if pts.iter().all(Vec::is_empty) {
        return String::new();
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts.iter().flatten() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    if y1 == y0 {
        y1 = y0 + 1.0;
    }
    let mut lines = String::new();
    for (p, (_, color, _)) in pts.iter().zip(series) {
        let mut poly = String::new();
        for (x, y) in p {
            let px = pad + (x - x0) / (x1 - x0) * (w - 2.0 * pad);
            let py = pad + (y1 - y) / (y1 - y0) * (h - 2.0 * pad);
            let _ = write!(poly, "{px:.1},{py:.1} ");
        }
        let _ = write!(
            lines,
            "<polyline fill=none stroke='{color}' stroke-width=1.5 points='{poly}' />"
        );
    }
    let legend = if series.len() == 1 {
        let s = series[0].2;
        let stats = s.stats.map(|st| {
            format!(
                "last {} · min {} · max {}",
                value_text(&J::from(st.last.value)),
                value_text(&J::from(st.min.value)),
                value_text(&J::from(st.max.value))
            )
        });
        format!("{} · {} points", esc(&stats.unwrap_or_default()), s.total)
    } else {
        series
            .iter()
            .map(|(label, color, _)| format!("<span style='color:{color}'>■</span> {}", esc(label)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "<b>{}</b> <span class=muted>{legend}</span>\
         <svg width={w} height={h} viewBox='0 0 {w} {h}' role=img aria-label='{}'>\
         <rect x=0 y=0 width={w} height={h} fill=#fbfcfd stroke=#e3e6eb />{lines}</svg>\
         <div class=muted style='display:flex;justify-content:space-between'><span>step {}</span><span>{} … {}</span><span>step {}</span></div>",
        esc(name),
        esc(name),
        x0,
        value_text(&J::from(y0)),
        value_text(&J::from(y1)),
        x1
    )
}

/// The fill and stroke of a node by its run's status.
fn status_colors(status: &str) -> (&'static str, &'static str) {
    match status {
        "succeeded" | "done" => ("#e3f4ea", "#18794e"),
        "failed" | "upstream_failed" | "unschedulable" => ("#fde8e1", "#c4320a"),
        "stopped" | "stopping" | "skipped" | "warning" => ("#fdf2dc", "#a66b00"),
        "running" | "starting" | "resuming" | "processing" => ("#e4ecfb", "#2457c5"),
        _ => ("#f1f2f5", "#8a909c"),
    }
}

/// Each operation's column: the length of the longest path to it from a root.
fn dag_depths(names: &[&str], edges: &[(String, String)]) -> Vec<usize> {
    let index = |n: &str| names.iter().position(|m| *m == n);
    let mut depth = vec![0usize; names.len()];
    // Longest paths by relaxation, at most once per operation (the DAG has no cycle: `check`
    // refuses one; a bad record still ends).
    for _ in 0..names.len() {
        let mut changed = false;
        for (up, down) in edges {
            if let (Some(u), Some(d)) = (index(up), index(down))
                && depth[d] < depth[u] + 1
            {
                depth[d] = depth[u] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

/// A DAG's graph (operations in columns by depth, each a link to its run, coloured by
/// status, its edges drawn from upstream to downstream) and its operations' table.
fn dag_section(base: &str, dag: &crate::api::DagMeta, ops: &[RunRow]) -> String {
    let names: Vec<&str> = dag.ops.iter().map(|o| o.name.as_str()).collect();
    let run_of = |uuid: &str| ops.iter().find(|r| r.uuid == uuid);
    let depth = dag_depths(&names, &dag.edges);
    let (bw, bh, gx, gy, pad) = (168.0, 40.0, 56.0, 14.0, 10.0);
    let mut row_in = vec![0usize; names.len()];
    let mut rows = std::collections::BTreeMap::<usize, usize>::new();
    for (i, d) in depth.iter().enumerate() {
        let n = rows.entry(*d).or_default();
        row_in[i] = *n;
        *n += 1;
    }
    let cols = depth.iter().max().map_or(0, |d| d + 1);
    let height_rows = rows.values().max().copied().unwrap_or(1);
    let w = pad * 2.0 + cols as f64 * bw + (cols.saturating_sub(1)) as f64 * gx;
    let h = pad * 2.0 + height_rows as f64 * bh + (height_rows.saturating_sub(1)) as f64 * gy;
    let at = |i: usize| {
        (
            pad + depth[i] as f64 * (bw + gx),
            pad + row_in[i] as f64 * (bh + gy),
        )
    };
    let mut svg = format!(
        "<div class=dag><svg width={w} height={h} viewBox='0 0 {w} {h}' role=img aria-label='the DAG of {} operations'>\
         <defs><marker id=arrow viewBox='0 0 8 8' refX=8 refY=4 markerWidth=7 markerHeight=7 orient=auto>\
         <path d='M0,0 L8,4 L0,8 z' fill=#8a909c /></marker></defs>",
        names.len()
    );
    for (up, down) in &dag.edges {
        let (Some(u), Some(d)) = (
            names.iter().position(|n| n == up),
            names.iter().position(|n| n == down),
        ) else {
            continue;
        };
        let ((ux, uy), (dx, dy)) = (at(u), at(d));
        let (x1, y1, x2, y2) = (ux + bw, uy + bh / 2.0, dx, dy + bh / 2.0);
        let mx = (x1 + x2) / 2.0;
        let _ = write!(
            svg,
            "<path class=edge d='M{x1:.1},{y1:.1} C{mx:.1},{y1:.1} {mx:.1},{y2:.1} {x2:.1},{y2:.1}' fill=none stroke=#8a909c stroke-width=1.3 marker-end='url(#arrow)'><title>{} → {}</title></path>",
            esc(up),
            esc(down)
        );
    }
    for (i, op) in dag.ops.iter().enumerate() {
        let run = run_of(&op.uuid);
        let status = run.map_or("created", |r| r.status.as_str());
        let (fill, stroke) = status_colors(status);
        let (x, y) = at(i);
        let label: String = if op.name.chars().count() > 22 {
            op.name.chars().take(21).chain(['…']).collect()
        } else {
            op.name.clone()
        };
        let _ = write!(
            svg,
            "<a href='{base}/runs/{}' class=node data-status='{}'><title>{}: {}</title>\
             <rect x={x:.1} y={y:.1} width={bw} height={bh} rx=6 fill='{fill}' stroke='{stroke}' stroke-width=1.5 />\
             <text x={:.1} y={:.1} font-size=13 font-weight=600 fill=#1d2330>{}</text>\
             <text x={:.1} y={:.1} font-size=11 fill='{stroke}'>{}{}</text></a>",
            enc(&op.uuid),
            esc(status),
            esc(&op.name),
            esc(status),
            x + 9.0,
            y + 16.0,
            esc(&label),
            x + 9.0,
            y + 31.0,
            esc(status),
            run.and_then(|r| r.duration)
                .map(|d| format!(" · {}", duration(Some(d))))
                .unwrap_or_default(),
        );
    }
    svg.push_str("</svg></div>");
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for op in &dag.ops {
        *counts
            .entry(run_of(&op.uuid).map_or("created", |r| r.status.as_str()))
            .or_default() += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", status_span(s)))
        .collect();
    let mut b = format!(
        "<h3>Operations</h3><p class=muted>{} operations: {}</p>{svg}\
         <table><tr><th>operation<th>status<th>upstream<th>started<th>duration<th>outputs</tr>",
        dag.ops.len(),
        summary.join(", ")
    );
    for op in &dag.ops {
        let run = run_of(&op.uuid);
        let upstream: Vec<&str> = dag
            .edges
            .iter()
            .filter(|(_, d)| *d == op.name)
            .map(|(u, _)| u.as_str())
            .collect();
        let outputs = run
            .map(|r| {
                r.outputs()
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_text(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let _ = write!(
            b,
            "<tr><td><a href='{base}/runs/{}'>{}</a><td>{}<td>{}<td class=muted>{}<td class=num>{}<td class=mono>{}</tr>",
            enc(&op.uuid),
            esc(&op.name),
            status_span(run.map_or("created", |r| r.status.as_str())),
            esc(&upstream.join(", ")),
            run.and_then(|r| r.started_at)
                .map(|t| time(t)[..19].replace('T', " "))
                .unwrap_or_default(),
            duration(run.and_then(|r| r.duration)),
            esc(&outputs)
        );
    }
    b.push_str("</table>");
    b
}

fn kv_table(rows: &[(&str, String)]) -> String {
    let mut b = String::from("<table class=kv>");
    for (k, v) in rows {
        if !v.is_empty() {
            let _ = write!(b, "<tr><td>{}<td>{v}</tr>", esc(k));
        }
    }
    b.push_str("</table>");
    b
}

async fn run(
    State(app): State<App>,
    headers: HeaderMap,
    Path((owner, name, uuid)): Path<(String, String, String)>,
    Query(sq): Query<search::SearchQuery>,
) -> Result<Response, UiError> {
    let here = format!("/ui/{}/{}/runs/{}", enc(&owner), enc(&name), enc(&uuid));
    let who = principal(&app, &headers, &here).await?;
    let fail = |e: ApiError| UiError(e, here.clone());
    let (project, r): (_, RunRow) = run_for(&app, &who, &owner, &name, &uuid, false)
        .await
        .map_err(fail)?;
    let store_fail = |e: crate::store::StoreError| UiError(e.into(), here.clone());
    let meta = r.meta();
    // A DAG's operations or a search's trials, by their runs (one page: a DAG's operations are
    // created at once; a search shows its first 5,000 trials).
    let is_dag = meta.dag.as_ref().is_some_and(|d| !d.ops.is_empty());
    let is_search = !is_dag && search::matrix_of(&r).is_some();
    let ops = match is_dag || is_search {
        true => {
            let q = format!("pipeline: {}", r.uuid);
            app.store
                .list_runs(project.id, &q, "created_at", 5000, 0)
                .await
                .map_err(store_fail)?
                .1
        }
        false => vec![],
    };
    let base = format!("/ui/{}/{}", enc(&owner), enc(&name));
    let pipeline = match meta.dag.as_ref().filter(|_| is_dag) {
        Some(dag) => dag_section(&base, dag, &ops),
        None if is_search => search::section(&base, &r, &ops, &sq),
        None => String::new(),
    };
    let etag = {
        use sha2::Digest;
        let h = sha2::Sha256::digest(pipeline.as_bytes());
        format!(
            "\"{}\"",
            h.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    };
    if sq.fragment.as_deref() == Some("pipeline") {
        // What a live page swaps in: the section alone, not sent again while unchanged.
        if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
        {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
        }
        return Ok((
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, "no-cache".to_string()),
            ],
            Html(pipeline),
        )
            .into_response());
    }
    let statuses = app.store.statuses(r.id).await.map_err(store_fail)?;
    let series = app
        .store
        .series(r.id, &[], Some(500))
        .await
        .map_err(store_fail)?;
    if let Err(e) = app.fetch_logs(&r.uuid).await {
        tracing::warn!(run = %r.uuid, "the run's logs are not read from the store: {e:?}");
    }
    let dir = app.run_dir(&r.uuid);
    let (logs, tree, last_log_file) = tokio::task::spawn_blocking(move || {
        (
            crate::files::tail_logs(&dir, 200),
            crate::files::tree(&dir, "").ok(),
            crate::files::log_files(&dir.join("plxlogs")).pop(),
        )
    })
    .await
    .map_err(|e| UiError(ApiError::Internal(e.to_string()), String::new()))?;

    let mut b = format!(
        "<p><a href='{base}'>{}/{}</a></p><h2>{} <span class='plx-run-status s-{}'>{}</span></h2>",
        esc(&owner),
        esc(&name),
        esc(r.name.as_deref().unwrap_or("(unnamed)")),
        esc(&r.status),
        esc(&r.status)
    );
    let csrf = crate::auth::cookie_token(&headers)
        .map(|t| crate::auth::csrf_token(&t))
        .unwrap_or_default();
    b.push_str(&actions_bar(&owner, &name, &r, &csrf));
    let when = |t: Option<i64>| {
        t.map(|t| time(t)[..19].replace('T', " "))
            .unwrap_or_default()
    };
    b.push_str(&kv_table(&[
        ("uuid", format!("<span class=mono>{}</span>", esc(&r.uuid))),
        ("kind", esc(r.kind.as_deref().unwrap_or(""))),
        ("user", esc(r.username.as_deref().unwrap_or(""))),
        ("description", esc(r.description.as_deref().unwrap_or(""))),
        ("tags", esc(&r.tags().join(", "))),
        ("created", when(Some(r.created_at))),
        ("started", when(r.started_at)),
        ("finished", when(r.finished_at)),
        ("duration", duration(r.duration)),
        (
            "pipeline",
            meta.parent()
                .map(|u| {
                    format!(
                        "<a href='{base}/runs/{}'>{}</a> <span class=muted>{}</span>",
                        enc(u),
                        esc(u),
                        esc(meta.pipeline_kind.as_deref().unwrap_or(""))
                    )
                })
                .unwrap_or_default(),
        ),
        (
            "copied from",
            r.original_uuid
                .as_ref()
                .map(|o| format!("<a href='{base}/runs/{}'>{}</a>", enc(o), esc(o)))
                .unwrap_or_default(),
        ),
    ]));
    for (title, m) in [("Inputs", r.inputs()), ("Outputs", r.outputs())] {
        if m.is_empty() {
            continue;
        }
        let _ = write!(b, "<h3>{title}</h3><table class=kv>");
        for (k, v) in &m {
            let _ = write!(
                b,
                "<tr><td>{}<td class=mono>{}</tr>",
                esc(k),
                esc(&value_text(v))
            );
        }
        b.push_str("</table>");
    }
    if !pipeline.is_empty() {
        // A live page refreshes it in place from `?fragment=pipeline` (statuses, new trials).
        let mut q: Vec<(&str, &str)> = vec![("fragment", "pipeline")];
        if let Some(m) = &sq.metric {
            q.push(("metric", m));
        }
        if let Some(o) = &sq.order {
            q.push(("order", o));
        }
        let q: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
        let _ = write!(
            b,
            "<div class=plx-pipeline data-plx-pipeline='{here}?{}' data-plx-etag='{}'>{pipeline}</div>",
            esc(&q.join("&")),
            esc(&etag)
        );
    }
    let running = !r.status().is_done();
    if !series.is_empty() || running {
        // A running run's page also charts the metrics it logs after the page was loaded.
        let _ = write!(
            b,
            "<h3 class=plx-metrics-head{}>Metrics</h3>",
            if series.is_empty() { " hidden" } else { "" }
        );
        let metrics: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
        let label = r.name.clone().unwrap_or_else(|| r.uuid[..8].to_string());
        b.push_str(&charts_block(
            &owner,
            &name,
            &[(r.uuid.clone(), label, series)],
            &metrics,
            None,
            running,
        ));
    }
    b.push_str(&media_section(&app, &here, &r.uuid).await);
    b.push_str("<h3>Statuses</h3><table><tr><th>status<th>reason<th>message<th>at</tr>");
    for s in &statuses {
        let _ = write!(
            b,
            "<tr><td>{}<td>{}<td>{}<td class=muted>{}</tr>",
            status_span(&s.kind),
            esc(s.reason.as_deref().unwrap_or("")),
            esc(s.message.as_deref().unwrap_or("")),
            when(Some(s.created_at))
        );
    }
    b.push_str("</table><h3>Logs</h3>");
    if logs.is_empty() && !running {
        b.push_str("<p class=muted>No logs.</p>");
    } else {
        let _ = write!(
            b,
            "<p class=muted>The last {} lines; all of them: <code>polyaxon ops logs -p {}/{} --uid {}</code></p><pre class=plx-logs>",
            logs.len(),
            esc(&owner),
            esc(&name),
            esc(&r.uuid)
        );
        for l in &logs {
            let _ = writeln!(
                b,
                "<span class=muted>{}</span> {}",
                esc(l
                    .timestamp
                    .as_deref()
                    .map(|t| &t[..19.min(t.len())])
                    .unwrap_or("")),
                esc(&l.value)
            );
        }
        b.push_str("</pre>");
    }
    if running {
        let cfg = serde_json::json!({
            "run": format!("/api/v1/{}/{}/runs/{}", enc(&owner), enc(&name), enc(&r.uuid)),
            "logs": format!("/streams/v1/polyaxon/{}/{}/runs/{}/logs", enc(&owner), enc(&name), enc(&r.uuid)),
            "last_file": last_log_file,
            "last_time": logs.last().and_then(|l| l.timestamp.clone()),
            "status": r.status,
        });
        let _ = write!(
            b,
            "<div hidden data-plx-live='{}'></div><script src='{}' defer></script>",
            esc(&cfg.to_string()),
            asset_url("live", "js")
        );
    }
    if let Some(t) = tree.filter(|t| !t.files.is_empty() || !t.dirs.is_empty()) {
        let stream = format!(
            "/streams/v1/polyaxon/{}/{}/runs/{}",
            enc(&owner),
            enc(&name),
            enc(&r.uuid)
        );
        b.push_str("<h3>Files</h3><table><tr><th>name<th>size</tr>");
        for d in &t.dirs {
            let _ = write!(
                b,
                "<tr><td><a href='{stream}/artifacts?path={}'>{}/</a> <span class=muted>(.tar.gz)</span><td></tr>",
                enc(d),
                esc(d)
            );
        }
        for (f, size) in &t.files {
            let _ = write!(
                b,
                "<tr><td><a href='{here}/file?path={}'>{}</a> <a class=muted href='{stream}/artifact?path={}'>download</a><td class=num>{size}</tr>",
                enc(f),
                esc(f),
                enc(f)
            );
        }
        b.push_str("</table>");
    }
    let live = !r.status().is_done();
    Ok(page(
        r.name.as_deref().unwrap_or(&r.uuid),
        Some(&who.user.username),
        &b,
        live,
    )
    .into_response())
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
    error: Option<String>,
}

/// Only pages of the dashboard are places to go after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.starts_with("//") && !n.contains("://") => {
            n.to_string()
        }
        _ => "/ui".into(),
    }
}

async fn login_form(State(app): State<App>, Query(q): Query<NextQuery>) -> Response {
    if app.open_user.is_some() {
        return Redirect::to("/ui").into_response();
    }
    let err = q
        .error
        .as_deref()
        .map(|_| "<p class=s-failed>Wrong username or password.</p>")
        .unwrap_or("");
    page(
        "sign in",
        None,
        &format!(
            "<h2>Sign in</h2>{err}<form method=post action=/ui/login>\
             <input type=hidden name=next value='{}'>\
             <p><input name=username placeholder=username autofocus required></p>\
             <p><input name=password type=password placeholder=password required></p>\
             <p><button>sign in</button></p></form>",
            esc(&safe_next(q.next.as_deref()))
        ),
        false,
    )
    .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

/// How long a dashboard session lasts.
const SESSION_SECS: i64 = 7 * 24 * 3600;

/// Signs in, limited as the API's login is: after too many failures for the user or from the
/// address, 429 until the window passes.
async fn login(
    State(app): State<App>,
    crate::auth::ClientAddr(addr): crate::auth::ClientAddr,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    if let Err(wait) = app.logins.check(&f.username, addr) {
        tracing::warn!(user = %f.username, address = ?addr, "dashboard sign-in refused: too many failed attempts");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.to_string())],
            page(
                "sign in",
                None,
                &format!(
                    "<h2>Too many failed sign-ins</h2><p>Try again in {wait} s.</p><p><a href='/ui/login?next={}'>sign in</a></p>",
                    esc(&enc(&next))
                ),
                false,
            ),
        )
            .into_response();
    }
    let known = if f.password.chars().count() > crate::routes::auth::MAX_PASSWORD {
        Ok(None)
    } else {
        app.store.authenticate(&f.username, &f.password).await
    };
    let user = match known {
        Ok(Some(u)) => u,
        Ok(None) => {
            app.logins.failed(&f.username, addr);
            tracing::info!(user = %f.username, address = ?addr, "dashboard sign-in failed");
            return Redirect::to(&format!("/ui/login?error=1&next={}", enc(&next))).into_response();
        }
        Err(e) => return UiError(e.into(), next).into_response(),
    };
    app.logins.succeeded(&f.username);
    let token = match app
        .store
        .create_token(
            user.id,
            &TokenScope::User,
            Some("dashboard"),
            Some(SESSION_SECS),
        )
        .await
    {
        Ok((_, t)) => t,
        Err(e) => return UiError(e.into(), next).into_response(),
    };
    tracing::info!(user = %user.username, "dashboard sign-in");
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_SECS}"),
        )],
        Redirect::to(&next),
    )
        .into_response()
}

async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(t) = crate::auth::cookie_token(&headers) {
        let _ = app.store.revoke_token_secret(&t).await;
        app.tokens.clear();
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Redirect::to("/ui/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_named_by_their_content() {
        assert!(asset_url("charts", "js").starts_with("/ui/assets/charts."));
        assert_ne!(asset_url("charts", "js"), asset_url("live", "js"));
    }

    #[test]
    fn text_is_escaped_and_redirects_stay_home() {
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert_eq!(safe_next(Some("/ui/a/b")), "/ui/a/b");
        assert_eq!(safe_next(Some("https://evil.example/ui")), "/ui");
        assert_eq!(safe_next(Some("//evil.example")), "/ui");
        assert_eq!(safe_next(None), "/ui");
    }
}
