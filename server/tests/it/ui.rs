//! The dashboard's pages: what they show, that they escape what users wrote, and sign-in.

use reqwest::StatusCode;
use serde_json::json;

use crate::both;
use crate::common::TestServer;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn page(
    s: &TestServer,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, String, Option<String>) {
    let mut req = no_redirects().get(format!("{}{path}", s.base));
    if let Some(c) = cookie {
        req = req.header("Cookie", format!("plx_token={c}"));
    }
    let resp = req.send().await.unwrap();
    let loc = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    (resp.status(), resp.text().await.unwrap(), loc)
}

both!(signing_in_and_browsing, |s| {
    let p = s.project("vision").await;
    let uuid = s
        .run(
            &p,
            json!({"name": "<script>alert(1)</script>", "tags": ["a&b"]}),
        )
        .await;
    s.patch(
        &format!("/api/v1/root/{p}/runs/{uuid}"),
        json!({"inputs": {"lr": 0.01}}),
    )
    .await;
    s.post(
        &format!("/streams/v1/polyaxon/root/{p}/runs/{uuid}/metrics"),
        json!({"metrics": [{"name": "loss", "step": [0, 1, 2], "value": [0.9, 0.5, 0.2]}]}),
    )
    .await;
    s.post(
        &format!("/streams/v1/polyaxon/root/{p}/runs/{uuid}/logs"),
        json!({"logs": [{"value": "epoch <1> done"}]}),
    )
    .await;

    // Signed out: to the sign-in page, coming back after.
    let (st, _, loc) = page(&s, "/ui/root/vision", None).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(loc.as_deref(), Some("/ui/login?next=%2Fui%2Froot%2Fvision"));
    let (st, form, _) = page(&s, "/ui/login?next=/ui/root/vision", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(form.contains("name=password") && form.contains("value='/ui/root/vision'"));
    let sign_in = |password: &'static str| {
        no_redirects()
            .post(format!("{}/ui/login", s.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!(
                "username=root&password={password}&next=%2Fui%2Froot%2Fvision"
            ))
            .send()
    };
    let bad = sign_in("nope").await.unwrap();
    assert_eq!(bad.status(), StatusCode::SEE_OTHER);
    assert!(
        bad.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ui/login?error=1")
    );
    assert!(bad.headers().get("set-cookie").is_none());
    let good = sign_in(crate::common::ADMIN_PASSWORD).await.unwrap();
    assert_eq!(good.headers()["location"], "/ui/root/vision");
    let cookie = good.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token = cookie
        .trim_start_matches("plx_token=")
        .split(';')
        .next()
        .unwrap()
        .to_string();

    // The project page: runs with their params and metrics as columns, escaped.
    let (st, html, _) = page(&s, "/ui/root/vision", Some(&token)).await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(!html.contains("<script>alert"), "user text is escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains(">lr<") || html.contains(">lr</a>"), "{html}");
    assert!(html.contains("0.2") && html.contains("a&amp;b"));
    let (_, filtered, _) = page(&s, "/ui/root/vision?query=status%3A%20failed", Some(&token)).await;
    assert!(
        filtered.contains("0 of 0 runs") || filtered.contains("–0 of 0"),
        "{filtered}"
    );
    let (_, bad_query, _) = page(&s, "/ui/root/vision?query=colour%3Ared", Some(&token)).await;
    assert!(bad_query.contains("colour"), "the query's error is shown");

    // The run page: chart, logs, statuses.
    let (st, html, _) = page(&s, &format!("/ui/root/vision/runs/{uuid}"), Some(&token)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        html.contains("<svg") && html.contains("<polyline"),
        "a chart"
    );
    assert!(html.contains("epoch &lt;1&gt; done"), "escaped logs");
    assert!(html.contains("PolyaxonRunCreated"));
    assert!(html.contains("http-equiv=refresh"), "a live run refreshes");
    let (st, _, _) = page(
        &s,
        "/ui/root/vision/runs/0123456789abcdef0123456789abcdef",
        Some(&token),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The cookie reads; it never writes (no cross-site changes).
    let (st, _) = s
        .call(
            reqwest::Method::GET,
            "/api/v1/root/projects/list",
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let with_cookie = no_redirects()
        .post(format!("{}/api/v1/root/projects/create", s.base))
        .header("Cookie", format!("plx_token={token}"))
        .json(&json!({"name": "sneaky"}))
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), StatusCode::UNAUTHORIZED);
    let read = no_redirects()
        .get(format!("{}/api/v1/root/projects/list", s.base))
        .header("Cookie", format!("plx_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);

    // Signing out ends the session.
    let out = no_redirects()
        .post(format!("{}/ui/logout", s.base))
        .header("Cookie", format!("plx_token={token}"))
        .send()
        .await
        .unwrap();
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (st, _, _) = page(&s, "/ui/root/vision", Some(&token)).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
});

#[tokio::test]
async fn open_mode_needs_no_sign_in() {
    let s = TestServer::sqlite_with(|c| {
        c.auth = polyaxon_server::AuthMode::Open {
            user: "default".into(),
        }
    })
    .await;
    let (st, html, _) = page(&s, "/ui", None).await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(html.contains("Projects of default"));
    let (_, _, loc) = page(&s, "/ui/login", None).await;
    assert_eq!(loc.as_deref(), Some("/ui"));
    s.finish().await;
}

both!(a_dag_page_draws_its_graph, |s| {
    let p = s.project("flow").await;
    let dag = s.run(&p, json!({"name": "pipeline"})).await;
    let mut ops = vec![];
    for name in ["prepare", "train", "<evaluate>"] {
        let uuid = s
            .run(
                &p,
                json!({"name": name, "meta_info": {"pipeline": dag, "pipeline_kind": "dag"}}),
            )
            .await;
        ops.push(json!({"name": name, "uuid": uuid}));
    }
    s.patch(
        &format!("/api/v1/root/{p}/runs/{dag}"),
        json!({"meta_info": {"dag": {"ops": ops,
            "edges": [["prepare", "train"], ["train", "<evaluate>"], ["prepare", "<evaluate>"]]}}}),
    )
    .await;
    let prepare = ops[0]["uuid"].as_str().unwrap().to_string();
    for to in ["queued", "scheduled", "running", "succeeded"] {
        s.post(
            &format!("/api/v1/root/{p}/runs/{prepare}/statuses"),
            json!({"condition": {"type": to, "status": "True"}}),
        )
        .await;
    }
    s.post(
        &format!("/streams/v1/polyaxon/root/{p}/runs/{prepare}/metrics"),
        json!({"metrics": [{"name": "rows", "step": [0], "value": [1200]}]}),
    )
    .await;
    let (st, html, _) = page(&s, &format!("/ui/root/{p}/runs/{dag}"), Some(&s.root_token)).await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(html.contains("3 operations"), "{html}");
    // A node per operation, each a link to its run, coloured by its status.
    for op in &ops {
        let uuid = op["uuid"].as_str().unwrap();
        assert!(
            html.contains(&format!("<a href='/ui/root/{p}/runs/{uuid}' class=node")),
            "{html}"
        );
    }
    assert!(html.contains("data-status='succeeded'"));
    assert_eq!(html.matches("data-status='created'").count(), 2);
    assert_eq!(
        html.matches("class=edge").count(),
        3,
        "an edge per dependency"
    );
    assert!(!html.contains("<evaluate>"), "names are escaped");
    assert!(html.contains("&lt;evaluate&gt;"));
    // Columns by depth: `<evaluate>` after `train`, though `prepare` feeds it too.
    let x_of = |name: &str| -> f64 {
        let at = html.find(&format!("<title>{name}:")).unwrap();
        let rest = &html[at..];
        let x = rest.split("<rect x=").nth(1).unwrap();
        x.split(' ').next().unwrap().parse().unwrap()
    };
    assert!(x_of("prepare") < x_of("train"));
    assert!(x_of("train") < x_of("&lt;evaluate&gt;"));
    // The table has each operation's outputs; an operation's page names its pipeline.
    assert!(html.contains("rows=1200"), "{html}");
    let (_, op_page, _) = page(
        &s,
        &format!("/ui/root/{p}/runs/{prepare}"),
        Some(&s.root_token),
    )
    .await;
    assert!(
        op_page.contains(&format!("<a href='/ui/root/{p}/runs/{dag}'>")),
        "{op_page}"
    );
});

both!(
    metric_columns_show_the_last_lowest_and_highest_values,
    |s| {
        let p = s.project("extrema").await;
        let mut uuids = vec![];
        for (name, batches) in [
            ("a", vec![vec![0.9, 0.4], vec![0.6]]),
            ("b", vec![vec![0.5, 0.1], vec![0.3, 2.0]]),
        ] {
            let u = s.run(&p, json!({"name": name})).await;
            let mut step = 0;
            for values in batches {
                let steps: Vec<i64> = (step..step + values.len() as i64).collect();
                step += values.len() as i64;
                let (st, b) = s
                    .post(
                        &format!("/streams/v1/polyaxon/root/{p}/runs/{u}/metrics"),
                        json!({"metrics": [{"name": "loss", "step": steps, "value": values}]}),
                    )
                    .await;
                assert_eq!(st, StatusCode::OK, "{b}");
            }
            uuids.push(u);
        }
        let csv = |sort: &'static str| {
            let s = &s;
            let p = p.clone();
            async move {
                let (st, text, _) = page(
                s,
                &format!("/ui/root/{p}?col=name&col=metrics.loss&col=metrics_min.loss&col=metrics_max.loss&sort={sort}&format=csv"),
                Some(&s.root_token),
            )
            .await;
                assert_eq!(st, StatusCode::OK, "{text}");
                text.lines()
                    .skip(1)
                    .map(|l| {
                        let f: Vec<&str> = l.split(',').collect();
                        let n = |i: usize| f[i].parse::<f64>().unwrap_or(f64::NAN);
                        (f[0].to_string(), n(1), n(2), n(3))
                    })
                    .collect::<Vec<_>>()
            }
        };
        // Last, lowest, highest; sorted by the lowest.
        let want = vec![
            ("b".to_string(), 2.0, 0.1, 2.0),
            ("a".to_string(), 0.6, 0.4, 0.9),
        ];
        assert_eq!(csv("metrics_min.loss").await, want);
        let mut by_max = want.clone();
        by_max.reverse();
        assert_eq!(csv("metrics_max.loss").await, by_max);
        // Queried by them.
        let (st, b) = s
            .get(&format!(
                "/api/v1/root/{p}/runs?query=metrics_min.loss:%3C0.2"
            ))
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let names: Vec<&str> = b["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b"]);
        // The table offers them as columns and labels them.
        let (_, html, _) = page(
            &s,
            &format!("/ui/root/{p}?cols=name,metrics_min.loss,metrics_max.loss"),
            Some(&s.root_token),
        )
        .await;
        assert!(html.contains(">loss (min)</a>"), "{html}");
        assert!(html.contains(">loss (max)</a>"), "{html}");
        assert!(html.contains("value='metrics_min.loss'"), "{html}");

        // Series written by a version that did not keep them: computed from their points, in
        // the background at start or by the sweep, a batch arriving meanwhile included.
        polyaxon_server::store::Store::raw_execute(
            &s.url,
            "UPDATE metric_series SET min_value = NULL, max_value = NULL, extrema = 0",
        )
        .await
        .unwrap();
        let (st, b) = s
            .post(
                &format!("/streams/v1/polyaxon/root/{p}/runs/{}/metrics", uuids[0]),
                json!({"metrics": [{"name": "loss", "step": [3], "value": [0.7]}]}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        assert_eq!(s.app.store.backfill_extrema(10).await.unwrap(), 2);
        assert_eq!(s.app.store.backfill_extrema(10).await.unwrap(), 0);
        assert_eq!(
            csv("metrics_min.loss").await,
            vec![
                ("b".to_string(), 2.0, 0.1, 2.0),
                ("a".to_string(), 0.7, 0.4, 0.9),
            ]
        );
    }
);
