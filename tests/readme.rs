//! The README's shell blocks, run as written, so that they cannot rot.
//!
//! Every ` ```sh runnable` block runs with `sh -e`, in README order, in one scratch directory (a
//! fresh clone as far as the blocks can tell). `cargo` there is a stand-in that uses what the
//! test suite built: `cargo build …` links the binary and the examples under `target/<profile>/`,
//! `cargo run … --example NAME -- ARGS` runs the example. ` ```sh no-run` blocks are skipped; an
//! unmarked `sh` block is an error, so that a new one is marked on purpose.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const README: &str = include_str!("../README.md");
const BINARY: &str = env!("CARGO_BIN_EXE_tixngo-feedback");

/// How long one block may run (it builds nothing: the binaries are there).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// A shell block of the README and its first line number.
struct Block {
    line: usize,
    runnable: bool,
    script: String,
}

/// The shell blocks of a Markdown text; an unmarked one is an error naming its line.
fn shell_blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let language = words.next().unwrap_or_default();
        let mut script = String::new();
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            script.push_str(line);
            script.push('\n');
        }
        if !matches!(language, "sh" | "bash" | "shell" | "console") {
            continue;
        }
        let runnable = match words.next() {
            Some("runnable") => true,
            Some("no-run") => false,
            _ => {
                return Err(format!(
                    "README.md line {}: mark the shell block `{language} runnable` or `{language} no-run`",
                    index + 1
                ));
            }
        };
        blocks.push(Block {
            line: index + 1,
            runnable,
            script,
        });
    }
    Ok(blocks)
}

#[test]
fn shell_blocks_must_be_marked_and_are_read_whole() {
    let blocks = shell_blocks(
        "a\n```sh runnable\necho 1\necho 2\n```\n```text\nx\n```\n```sh no-run\nrm -rf /\n```\n",
    )
    .unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!((blocks[0].line, blocks[0].runnable), (2, true));
    assert_eq!(blocks[0].script, "echo 1\necho 2\n");
    assert!(!blocks[1].runnable);
    let error = shell_blocks("x\n```sh\ncargo test\n```\n").err().unwrap();
    assert!(error.contains("line 2"), "{error}");
}

/// The directory of the examples the test suite built, built now if missing or stale (a no-op
/// when `cargo test` built them, which it does unless told to build one test only).
fn examples_dir() -> PathBuf {
    let profile_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_owned();
    let mut build = Command::new(env!("CARGO"));
    // What `cargo test` sets for the test process is not the caller's environment: passed on,
    // it would make this build and the caller's next one rebuild the examples for each other.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_BIN_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || matches!(&*name, "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR");
        if set_for_tests {
            build.env_remove(&*name);
        }
    }
    build
        .args([
            "build",
            "--quiet",
            "--example",
            "tixngo-sim",
            "--example",
            "quickstart",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "cargo build of the examples: {status}");
    profile_dir.join("examples")
}

/// A `cargo` for the README's commands that uses the binaries already built.
fn cargo_stand_in(dir: &Path, examples: &Path) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/bin/sh
# `cargo` as the README calls it, on the binaries the test suite built.
set -eu
case "$1" in
build)
  profile=release
  case " $* " in *" --profile dist "*) profile=dist ;; esac
  mkdir -p "target/$profile/examples"
  ln -sf '{binary}' "target/$profile/tixngo-feedback"
  ln -sf '{examples}/tixngo-sim' '{examples}/quickstart' "target/$profile/examples/"
  ;;
run)
  while [ "$1" != "--example" ]; do shift; done
  example="$2"
  shift 2
  if [ "${{1:-}}" = "--" ]; then shift; fi
  exec '{examples}'/"$example" "$@"
  ;;
*)
  echo "cargo (README test): no stand-in for: cargo $*" >&2
  exit 1
  ;;
esac
"#,
        binary = BINARY,
        examples = examples.display()
    );
    let cargo = bin.join("cargo");
    fs::write(&cargo, script).unwrap();
    fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Runs one block in its own process group; whatever it left running is stopped after it.
fn run_block(block: &Block, dir: &Path, bin: &Path) {
    let log = |name: &str| dir.join(format!("block-{}.{name}", block.line));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("sh")
        .args(["-e", "-c", &block.script])
        .current_dir(dir)
        .env("PATH", path)
        .env("PREFIX", dir.join("prefix"))
        .env_remove("TIXNGO_API_URL")
        .env_remove("TIXNGO_API_KEY")
        .env_remove("TIXNGO_FEEDBACK_STORE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(fs::File::create(log("out")).unwrap())
        .stderr(fs::File::create(log("err")).unwrap())
        .process_group(0)
        .spawn()
        .expect("sh runs");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > BLOCK_TIMEOUT {
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    // The group: a simulator the block started in the background, were it still running.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    let shown = || {
        format!(
            "README.md block at line {}:\n{}--- stdout\n{}--- stderr\n{}",
            block.line,
            block.script,
            fs::read_to_string(log("out")).unwrap_or_default(),
            fs::read_to_string(log("err")).unwrap_or_default()
        )
    };
    match status {
        Some(status) => assert!(status.success(), "{status}\n{}", shown()),
        None => panic!("still running after {BLOCK_TIMEOUT:?}\n{}", shown()),
    }
}

#[test]
fn every_runnable_shell_block_of_the_readme_runs_as_written() {
    let blocks = shell_blocks(README).unwrap_or_else(|e| panic!("{e}"));
    let runnable: Vec<&Block> = blocks.iter().filter(|block| block.runnable).collect();
    assert!(
        runnable.len() >= 3,
        "the quick start, by hand and installing"
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = cargo_stand_in(dir.path(), &examples_dir());
    for block in runnable {
        run_block(block, dir.path(), &bin);
    }
    // What the blocks promise to leave behind.
    for made in [
        "quickstart.db",
        "quickstart.key",
        "demo.db",
        "response.json",
        "prefix/bin/tixngo-feedback",
        "prefix/share/man/man1/tixngo-feedback.1",
        "prefix/share/bash-completion/completions/tixngo-feedback",
        "prefix/share/zsh/site-functions/_tixngo-feedback",
        "prefix/share/fish/vendor_completions.d/tixngo-feedback.fish",
    ] {
        let path = dir.path().join(made);
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 0,
            "{made} missing or empty after the README's blocks"
        );
    }
}
