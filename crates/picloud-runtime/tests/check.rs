//! The deploy-time check over the shared corpus (`tests/corpus/check.json`): what deploys
//! has no diagnostics; what a deploy refuses has exactly one error, on the right line. The
//! same corpus is what the wasm build must agree with (issue 24).

use picloud_runtime::{check_script, compile_with_limits, Limits, Severity};
use serde_json::Value;

const CORPUS: &str = include_str!("corpus/check.json");

struct Case {
    name: String,
    source: String,
    limits: Limits,
    expect: Value,
}

fn scripts() -> Vec<Case> {
    let doc: Value = serde_json::from_str(CORPUS).expect("corpus is JSON");
    doc["scripts"]
        .as_array()
        .expect("scripts")
        .iter()
        .map(|s| {
            let mut source = s["source"].as_str().expect("source").to_owned();
            if let Some(r) = s.get("repeat") {
                let times = r["times"].as_u64().expect("times") as usize;
                source.push_str(&r["text"].as_str().expect("text").repeat(times));
            }
            let limits = s.get("limits").map_or_else(Limits::default, |o| {
                Limits::from_overrides(o).expect("limits")
            });
            Case {
                name: s["name"].as_str().expect("name").to_owned(),
                source,
                limits,
                expect: s["expect"].clone(),
            }
        })
        .collect()
}

#[test]
fn the_corpus_is_judged_as_a_deploy_judges_it() {
    let corpus = scripts();
    assert!(corpus.len() >= 50, "{} scripts", corpus.len());
    let (mut ok, mut refused) = (0, 0);
    for Case {
        name,
        source,
        limits,
        expect,
    } in corpus
    {
        let found = check_script(&source, &limits);
        assert_eq!(
            found.is_empty(),
            compile_with_limits(&source, &limits).is_ok(),
            "{name}: the check and the deploy's compile disagree"
        );
        if expect == "ok" {
            assert!(found.is_empty(), "{name}: {found:?}");
            ok += 1;
            continue;
        }
        let line = expect["line"].as_u64().expect("expect.line") as usize;
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        let d = &found[0];
        assert_eq!(d.line, line, "{name}: {d:?}");
        assert!(d.column >= 1, "{name}: {d:?}");
        assert_eq!(d.severity, Severity::Error);
        assert!(!d.message.is_empty(), "{name}");
        refused += 1;
    }
    assert!(ok >= 20 && refused >= 25, "{ok} ok, {refused} refused");
}

/// Disabled features fail at the check, as at deploy, with a message that names them.
#[test]
fn disabled_features_say_what_is_disabled() {
    for (source, word) in [
        ("eval(\"1 + 1\")", "eval"),
        ("import \"other\" as o;", "import"),
    ] {
        let found = check_script(source, &Limits::default());
        let message = &found.first().expect(source).message;
        assert!(message.contains(word), "{source}: {message}");
    }
}
