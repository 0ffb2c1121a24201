//! The GitHub workflows keep the promises docs/ci.md makes: caches are
//! saved from the default branch only and never keyed per run, nothing needs
//! a write permission (pull requests from forks work), hidvm is checked out
//! at an input ref (the `job` context's workflow fields are empty on GitHub
//! Enterprise Server), results are uploaded whatever happened, and the
//! summary fails when a needed job did not succeed. Then actionlint and
//! zizmor, when installed (`.ci/lint-workflows --install`).
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn workflows() -> Vec<(String, String)> {
    let dir = root().join(".github/workflows");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    assert!(
        out.len() >= 3,
        "ci.yml, ci-target.yml, hidvm.yml: found {:?}",
        out.iter().map(|w| &w.0).collect::<Vec<_>>()
    );
    out
}

/// The lines of each step (`- name:` or `- uses:` to the next one) that uses `action`.
fn steps_using<'a>(text: &'a str, action: &str) -> Vec<Vec<&'a str>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("- ") {
            let indent = lines[i].len() - lines[i].trim_start().len();
            let mut j = i + 1;
            while j < lines.len() {
                let l = lines[j];
                let ind = l.len() - l.trim_start().len();
                if !l.trim().is_empty() && ind <= indent {
                    break;
                }
                j += 1;
            }
            let step = &lines[i..j];
            if step.iter().any(|l| l.contains(&format!("uses: {action}@"))) {
                steps.push(step.to_vec());
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    steps
}

#[test]
fn caches_are_saved_from_the_default_branch_only_and_never_per_run() {
    let mut saves = 0;
    for (name, text) in workflows() {
        assert!(!text.contains("run_id"), "{name}: a cache or artifact keyed by the run id");
        assert!(
            steps_using(&text, "actions/cache").is_empty(),
            "{name}: actions/cache saves on every branch; use actions/cache/restore and a default-branch actions/cache/save"
        );
        for step in steps_using(&text, "actions/cache/save") {
            saves += 1;
            let text = step.join("\n");
            assert!(
                text.contains("github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"),
                "{name}: a cache save that is not limited to the default branch:\n{text}"
            );
        }
    }
    assert!(saves >= 4, "cargo and kernel caches in ci and in the reusable workflow: {saves} saves");
}

#[test]
fn nothing_needs_a_write_permission_and_hidvm_is_checked_out_by_input() {
    for (name, text) in workflows() {
        assert!(!text.contains(": write"), "{name}: a write permission (fork pull requests do not get one)");
        assert!(text.contains("permissions: {}"), "{name}: no empty top-level permissions");
        assert!(!text.contains("job.workflow_"), "{name}: job.workflow_repository/sha are empty on GHES");
        for step in steps_using(&text, "actions/checkout") {
            assert!(step.iter().any(|l| l.contains("persist-credentials: false")), "{name}: {step:?}");
        }
    }
    let (_, hidvm) = workflows().into_iter().find(|w| w.0 == "hidvm.yml").unwrap();
    assert!(hidvm.contains("ref: ${{ inputs.hidvm-ref }}") && hidvm.contains("runs-on: ${{ inputs.runner }}"));
}

#[test]
fn results_are_always_uploaded_and_the_summary_follows_every_job() {
    for (name, text) in workflows() {
        for step in steps_using(&text, "actions/upload-artifact") {
            let s = step.join("\n");
            if s.contains("results") {
                assert!(s.contains("if: always()"), "{name}: results uploaded only sometimes:\n{s}");
            }
        }
    }
    let (_, ci) = workflows().into_iter().find(|w| w.0 == "ci.yml").unwrap();
    let summary = &ci[ci.find("\n  summary:").expect("ci.yml has a summary job")..];
    assert!(summary.contains("needs: [plan, lint, binaries, unit, target, example]"), "{summary}");
    assert!(
        summary.contains("if: always()") && summary.contains("toJSON(needs)") && summary.contains("!= \"success\"")
    );
    assert!(ci.contains("uses: ./.github/workflows/hidvm.yml"), "ci.yml must exercise the reusable workflow");
    let step = std::fs::read_to_string(root().join(".ci/ci-step")).unwrap();
    assert!(
        step.contains("--archive-file") && step.contains("--partition"),
        "test legs run the nextest archive by partition"
    );
}

#[test]
fn actionlint_and_zizmor_are_clean_when_installed() {
    let out = std::process::Command::new(root().join(".ci/lint-workflows"))
        .arg("--if-installed")
        .output()
        .expect("running .ci/lint-workflows");
    assert!(
        out.status.success(),
        ".ci/lint-workflows failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
