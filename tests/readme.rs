//! The README's quick start, run literally: every `sh` block from "First steps" to
//! "Configuration", in order, in one shell, against the real binary on a fresh data dir (in
//! a fresh folder, as a new user's `./picloud-data`) and a free port. The only edits are the
//! ones a reader makes: the port, the key they were shown, `picloud` being the binary the
//! run command built, and `<id>` being a key id. A `# {…}` line after a command is the
//! output the README promises: it must appear.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Server, BIN};

const README: &str = include_str!("../README.md");

fn quick_start_blocks() -> Vec<String> {
    let start = README
        .find("## First steps")
        .expect("a First steps section");
    let end = README
        .find("## Configuration")
        .expect("a Configuration section");
    let mut blocks = Vec::new();
    let mut rest = &README[start..end];
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("```").expect("a closed block");
        blocks.push(body[..close].to_owned());
        rest = &body[close + 3..];
    }
    blocks
}

#[test]
fn the_readme_quick_start_works_as_written() {
    let blocks = quick_start_blocks();
    assert!(blocks.len() >= 6, "{} blocks", blocks.len());
    let home = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::os::unix::fs::symlink(repo.join("examples"), home.path().join("examples")).unwrap();
    let server = Server::start(&home.path().join("picloud-data"), &[]);
    let key = server.bootstrap_key().unwrap();
    let port = server.port.to_string();

    let mut script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n\
         picloud() {{ {BIN:?} \"$@\"; }}\nexport PICLOUD_URL=http://127.0.0.1:{port}\n"
    );
    let mut promised = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        // The reader's own definition of `picloud` (cargo run) is replaced by the binary.
        if block.contains("cargo run") {
            continue;
        }
        let text = block
            .replace("localhost:8080", &format!("localhost:{port}"))
            .replace("KEY=pk_...", &format!("KEY={key}"))
            .replace(
                "<id>",
                "\"$(picloud admin key list | awk 'NR==2 {print $1}')\"",
            );
        for line in text.lines() {
            if let Some(json) = line.trim().strip_prefix("# {") {
                promised.push(format!("{{{json}"));
            }
        }
        script.push_str(&format!("echo '@@ block {i}'\n{text}\n"));
        if text.contains(" &") {
            // Let a background stream print what it received.
            script.push_str("sleep 1\n");
        }
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(home.path())
        .env_remove("PICLOUD_DATA_DIR")
        .env_remove("DATABASE_URL")
        .env_remove("PICLOUD_ADMIN_KEY")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the quick start failed:\n{stdout}\n{stderr}"
    );
    for p in &promised {
        assert!(
            stdout.contains(p.as_str()),
            "the README promises {p}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("event: message"),
        "the SSE stream received the publish:\n{stdout}"
    );
    assert!(
        stdout.contains("chat: 15 changes made"),
        "the chat example deployed:\n{stdout}"
    );
    assert!(stderr.contains("Revoked admin key"), "{stderr}");
    let (status, _, _) = server.stop("TERM");
    assert!(status.success());
}
