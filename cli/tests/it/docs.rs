//! The committed completions and man pages are what the command tree generates; and the
//! completion scripts work in real shells.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn generated_files_are_fresh() {
    let files = polyaxon_cli::commands::completion::generated_files().unwrap();
    let update = std::env::var_os("UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for (rel, bytes) in &files {
        let path = root().join(rel);
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, bytes).unwrap();
            } else {
                stale.push(rel.display().to_string());
            }
        }
    }
    // No page of a command that is gone.
    for dir in ["man", "completions"] {
        for e in std::fs::read_dir(root().join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let rel = Path::new(dir).join(e.file_name());
            if !files.iter().any(|(r, _)| *r == rel) {
                if update {
                    std::fs::remove_file(e.path()).unwrap();
                } else {
                    stale.push(format!("{} (no longer generated)", rel.display()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files: {stale:?}\nrun `UPDATE_GENERATED=1 cargo test -p polyaxon-cli --test it docs` and commit them"
    );
    assert!(
        files
            .iter()
            .any(|(p, _)| p.ends_with("man/polyaxon-ops-ls.1"))
    );
}

fn shell(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} must be installed in CI (scripts/test installs it)"
        );
        eprintln!("skipped: {name} is not installed (scripts/test installs it)");
    }
    found
}

/// The binary's directory on PATH, so the scripts' `polyaxon` is ours.
fn path_with_binary() -> String {
    let bin = assert_cmd::cargo::cargo_bin("polyaxon");
    format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn bash_completes_commands_and_flags() {
    let Some(bash) = shell("bash") else { return };
    let script = root().join("completions/polyaxon.bash");
    let ask = |line: &str| -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let out = Command::new(&bash)
            .arg("--norc")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; _polyaxon polyaxon '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display(),
                words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
                words.len() - 1,
                line.len(),
                words.last().unwrap(),
                words[words.len() - 2]
            ))
            .env("PATH", path_with_binary())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = ask("polyaxon pro");
    assert!(top.lines().any(|l| l == "project"), "{top}");
    let ops = ask("polyaxon ops l");
    assert!(
        ops.lines().any(|l| l == "ls") && ops.lines().any(|l| l == "logs"),
        "{ops}"
    );
    let flags = ask("polyaxon ops ls --li");
    assert!(flags.lines().any(|l| l == "--limit"), "{flags}");
}

#[test]
fn fish_completes_commands_and_flags() {
    let Some(fish) = shell("fish") else { return };
    let script = root().join("completions/polyaxon.fish");
    let ask = |line: &str| -> String {
        let out = Command::new(&fish)
            .arg("--no-config")
            .arg("-c")
            .arg(format!("source {}; complete -C '{line}'", script.display()))
            .env("PATH", path_with_binary())
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = ask("polyaxon pro");
    assert!(top.lines().any(|l| l.starts_with("project\t")), "{top}");
    let flags = ask("polyaxon ops ls --li");
    assert!(flags.lines().any(|l| l.starts_with("--limit")), "{flags}");
}

#[test]
fn zsh_completes_commands_and_flags() {
    let Some(zsh) = shell("zsh") else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("completions/_polyaxon"),
        dir.path().join("_polyaxon"),
    )
    .unwrap();
    // Completion functions only run inside the completion system, so a pseudo-terminal zsh
    // is given `polyaxon pro<TAB>` with `compadd` wrapped to print what would be offered.
    let driver = format!(
        r#"
zmodload zsh/zpty
zpty -b z {zsh} -f -i
zpty -w z 'PROMPT=; RPROMPT=; unset zle_bracketed_paste; fpath=({dir} $fpath)'
zpty -w z 'autoload -U compinit && compinit -u -D'
zpty -w z 'm=HIT; compadd () {{ builtin compadd -O __hits "$@"; print -l -- "${{m}}S:" $__hits ":${{m}}S-END"; builtin compadd "$@" }}'
zpty -n -w z "$1"$'\t'
out=
idle=0
for i in {{1..200}}; do
  chunk=
  if zpty -r -t z chunk; then out+=$chunk; idle=0; else (( idle++ )); fi
  # Every offer printed: output began and then stayed quiet for a while.
  [[ $out == *HITS-END* && $idle -ge 10 ]] && break
  sleep 0.05
done
print -r -- "$out"
zpty -d z
"#,
        zsh = zsh.display(),
        dir = dir.path().display()
    );
    let ask = |line: &str| -> String {
        let out = Command::new(&zsh)
            .arg("-f")
            .arg("-c")
            .arg(&driver)
            .arg("zsh")
            .arg(line)
            .env("PATH", path_with_binary())
            .env("HOME", dir.path())
            .env("TERM", "dumb")
            .output()
            .unwrap();
        // What `compadd` was given, between the markers.
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut offered = String::new();
        for block in text.split("HITS:").skip(1) {
            offered.push_str(block.split(":HITS-END").next().unwrap_or(""));
        }
        assert!(!offered.trim().is_empty(), "nothing offered: {text}");
        offered
    };
    let top = ask("polyaxon pro");
    assert!(top.contains("project"), "{top}");
    let flags = ask("polyaxon ops ls --li");
    assert!(flags.contains("--limit"), "{flags}");
}
