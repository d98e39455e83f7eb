//! The limit a server's path to the artifacts store is measured against (bench/store_bench.py):
//! `object_store` alone, with the server's client settings, putting then getting every file of
//! a directory, `--concurrency` at a time. Prints `{"put_s": …, "get_s": …, "bytes": …}`.
//!
//! `cargo run --release -p polyaxon-server --example store_raw -- --url s3://bucket/p --dir DIR
//! [--concurrency 8] [--option endpoint=http://127.0.0.1:9000 …]`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use polyaxon_server::artifacts::Store;

fn files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in std::fs::read_dir(dir).expect("reading the tree").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((rel, p));
        }
    }
}

#[tokio::main]
async fn main() {
    let mut url = None;
    let mut dir = None;
    let mut concurrency = 8usize;
    let mut options = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--url" => url = Some(v()),
            "--dir" => dir = Some(PathBuf::from(v())),
            "--concurrency" => concurrency = v().parse().expect("a number"),
            "--option" => {
                let o = v();
                let (k, val) = o.split_once('=').expect("KEY=VALUE");
                options.insert(k.to_string(), val.to_string());
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let store = Store::open(&url.expect("--url"), &options).expect("opening the store");
    let dir = dir.expect("--dir");
    let mut list = Vec::new();
    files(&dir, &dir, &mut list);
    let raw = store.object_store().clone();
    let keys: Vec<(object_store::path::Path, PathBuf)> = list
        .iter()
        .map(|(rel, p)| (store.key(rel).expect("a key"), p.clone()))
        .collect();
    let bytes: u64 = list.iter().map(|(_, p)| p.metadata().unwrap().len()).sum();
    let t0 = Instant::now();
    futures_util::stream::iter(keys.clone())
        .map(|(k, p)| {
            let raw = raw.clone();
            async move {
                let data = tokio::fs::read(&p).await.expect("reading a file");
                raw.put(&k, data.into()).await.expect("a put");
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    let put_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    futures_util::stream::iter(keys)
        .map(|(k, _)| {
            let raw = raw.clone();
            async move {
                let mut s = raw.get(&k).await.expect("a get").into_stream();
                while let Some(c) = s.next().await {
                    c.expect("a chunk");
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    let get_s = t1.elapsed().as_secs_f64();
    println!("{{\"put_s\": {put_s}, \"get_s\": {get_s}, \"bytes\": {bytes}}}");
}
