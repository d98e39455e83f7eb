//! For `bench/run_bench.py`: snapshots the repository containing DIR as `polyaxon run` does and
//! prints the time it took (ms) and the files in the snapshot, as one JSON line.
//!
//! ```text
//! snapshot DIR UUID
//! ```

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(uuid)) = (args.next(), args.next()) else {
        eprintln!("usage: snapshot DIR UUID");
        std::process::exit(2);
    };
    polyaxon_cli::timing::init();
    let t = std::time::Instant::now();
    let code = polyaxon_cli::snapshot::snapshot(std::path::Path::new(&dir), &uuid)
        .expect("snapshot")
        .expect("a git repository");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{}",
        serde_json::json!({"ms": ms, "files": code.files, "dirty": code.is_dirty})
    );
}
