//! `tally render` end to end, as a user runs it: on the examples (a config
//! comes out) and on the manifests with mistakes (every problem, non-zero exit).
//!
//! `examples/invalid/expected-errors.txt` is the exact expected stderr; after a
//! deliberate change of wording, regenerate it with
//! `TALLY_BLESS=1 cargo test -p tally-operator --test render`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tally_config::compiled::{CompiledConfig, Enforcement};
use tally_config::money::Nanos;
use tally_config::pricing::PriceBook;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Runs `tally ARGS` in the workspace root, so paths print as users see them.
fn tally(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap()
}

fn invalid_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(workspace().join("examples/invalid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".invalid"))
        .map(|n| format!("examples/invalid/{n}"))
        .collect();
    files.sort();
    files
}

#[test]
fn renders_the_examples_into_a_config_the_data_plane_loads() {
    let out = tally(&["render", "examples/"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = CompiledConfig::from_json(&out.stdout).unwrap();
    let teams: Vec<&str> = config.teams.iter().map(|t| t.team.as_str()).collect();
    assert_eq!(teams, ["data-science", "search", "support-bot", "unknown"]);

    let support = &config.teams[2];
    assert_eq!(support.source, "support/support-bot");
    let budget = support.budget.as_ref().unwrap();
    assert_eq!(
        (budget.limit, budget.enforcement),
        (Nanos(500_000_000_000), Enforcement::Warn)
    );
    assert_eq!(budget.alert_thresholds, [50, 80, 100]);
    assert_eq!(
        support.tenants.iter().map(|t| t.limit).collect::<Vec<_>>(),
        [Some(Nanos(150_000_000_000)), Some(Nanos(100_000_000_000))]
    );

    // The default catalog prices the models the examples use, cross-region ids and
    // application-inference-profile aliases included.
    let book = PriceBook::new(&config.catalog);
    let input = |model: &str, region: &str| book.lookup(book.alias(model), region).map(|p| p.entry.prices.input.0);
    assert_eq!(
        input("anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1"),
        Some(3_000_000_000)
    );
    assert_eq!(
        input("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1"),
        Some(3_300_000_000)
    );
    assert_eq!(
        input("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1"),
        Some(3_000_000_000)
    );
    assert_eq!(input("amazon.nova-micro-v1:0", "us-east-1"), Some(35_000_000));
    assert_eq!(
        input("anthropic.claude-sonnet-4-5-20250929-v1:0", "us-gov-west-1"),
        Some(3_600_000_000)
    );
    assert_eq!(
        input(
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/sb7k2m9x1q4w",
            "us-east-1"
        ),
        Some(1_100_000_000)
    );
    let opus = book
        .lookup("anthropic.claude-opus-4-5-20251101-v1:0", "us-east-1")
        .unwrap()
        .entry;
    assert_eq!(opus.prices.cache_write_1h.0, 10_000_000_000);
    assert_eq!(opus.max_output_tokens, 64_000);
    assert!(
        opus.source
            .starts_with("bedrock-on-demand: AWS Bedrock on-demand pricing via LiteLLM"),
        "{}",
        opus.source
    );
}

#[test]
fn render_is_deterministic_and_writes_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let out = tally(&[
        "render",
        "examples/teams",
        "examples/catalog",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    let from_file = std::fs::read(&file).unwrap();
    // Same objects, other argument order: byte-equal output.
    let again = tally(&["render", "examples/catalog/", "examples/teams/"]);
    assert_eq!(from_file, again.stdout);
}

/// `tally render examples/invalid/*.invalid`: the exit code and the lines from `tally: N problems found:` on.
fn render_invalid() -> (Option<i32>, Vec<u8>, Vec<String>) {
    let files = invalid_files();
    assert_eq!(files.len(), 4, "{files:?}");
    let args: Vec<&str> = std::iter::once("render")
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = tally(&args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let problems = stderr
        .lines()
        .skip_while(|l| !l.starts_with("tally: "))
        .map(String::from)
        .collect();
    (out.status.code(), out.stdout, problems)
}

#[test]
fn render_lists_every_problem_with_object_and_field_and_fails() {
    let (code, stdout, problems) = render_invalid();
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "no config may be printed when anything is wrong");

    let expected_path = workspace().join("examples/invalid/expected-errors.txt");
    if std::env::var_os("TALLY_BLESS").is_some() {
        std::fs::write(&expected_path, problems.join("\n") + "\n").unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    let expected: Vec<String> = expected.lines().map(String::from).collect();
    assert_eq!(
        problems,
        expected,
        "stderr of `tally render` differs from {}",
        expected_path.display()
    );

    // Each problem names the file and document, then the object and field.
    for line in &problems[1..] {
        assert!(
            line.starts_with("examples/invalid/") && line.contains(".invalid (document "),
            "{line}"
        );
    }
    let header = &problems[0];
    assert_eq!(*header, format!("tally: {} problems found:", problems.len() - 1));
}

#[test]
fn render_covers_every_validation_rule() {
    // One line per rule: the object and field each rule must be reported on.
    let (_, _, problems) = render_invalid();
    let reported = problems.join("\n");
    let must_report = [
        // TeamBudget, per object
        "TeamBudget team-a/everything-wrong: spec.team: ",
        "TeamBudget team-a/everything-wrong: spec.budget.limitUSD: ",
        "TeamBudget team-a/everything-wrong: spec.budget.timezone: unknown timezone",
        "TeamBudget team-a/everything-wrong: spec.budget.alertThresholds[0]: ",
        "TeamBudget team-a/everything-wrong: spec.budget.alertThresholds: must be strictly ascending",
        "TeamBudget team-a/everything-wrong: spec.tenants[1].id: duplicate tenant id",
        "TeamBudget team-a/everything-wrong: spec.tenants[1].limitUSD: ",
        "TeamBudget team-a/everything-wrong: spec.tenants[2].id: ",
        "TeamBudget team-a/everything-wrong: spec.workflows[0].allowedModels[0]: ",
        "TeamBudget team-a/everything-wrong: spec.workflows[1].id: duplicate workflow id",
        "TeamBudget team-a/everything-wrong: spec.allowedModels[0]: ",
        "TeamBudget team-a/everything-wrong: spec.allowedModels[1]: ",
        "TeamBudget team-a/everything-wrong: spec.principals[0]: ",
        "TeamBudget team-b/limits: spec.workflows[0].limitUSD: workflow limit 250.00 USD is above the team's limit",
        "TeamBudget team-b/limits: spec.tenants[0].limitUSD: tenant limit 100.01 USD is above the team's limit",
        "TeamBudget team-c/no-budget: spec.tenants[0].limitUSD: a tenant limit needs spec.budget",
        "TeamBudget team-c/no-budget: spec.workflows[0].limitUSD: a workflow limit needs spec.budget",
        // TeamBudget, across objects: both objects named
        "TeamBudget team-d/search-copy: spec.team: team \"search\" is already declared by TeamBudget team-0/search-original",
        "TeamBudget team-f/acme-thief: spec.tenants[1].id: tenant \"acme\" already belongs to team \"owner\" (TeamBudget team-e/acme-owner)",
        // ModelPricing
        "ModelPricing everything-wrong: spec.source: ",
        "ModelPricing everything-wrong: spec.effectiveFrom: ",
        "ModelPricing everything-wrong: spec.models[0].match: ",
        "ModelPricing everything-wrong: spec.models[0].maxOutputTokens: ",
        "ModelPricing everything-wrong: spec.models[1].regions[1]: ",
        "ModelPricing everything-wrong: spec.models[1].inputPerMillion: ",
        "ModelPricing everything-wrong: spec.models[1].outputPerMillion: ",
        "ModelPricing everything-wrong: spec.models[1].cacheReadPerMillion: ",
        "ModelPricing everything-wrong: spec.models[1].cacheWrite5mPerMillion: ",
        "ModelPricing everything-wrong: spec.models[1].cacheWrite1hPerMillion: ",
        "ModelPricing everything-wrong: spec.models[2].match: ",
        "ModelPricing everything-wrong: spec.aliases[0].model: ",
        "ModelPricing everything-wrong: spec.aliases[1].model: ",
        "ModelPricing profiles-b: spec.aliases[0].model: alias \"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/cccc\" is already mapped to \"us.anthropic.claude-haiku-4-5-20251001-v1:0\" by ModelPricing profiles-a",
        // Schema and YAML
        "TeamBudget team-g/wrong-shapes: spec.budget.limitUSD: expected a string",
        "TeamBudget team-g/wrong-shapes: spec.budget.period: \"Yearly\" is not one of",
        "TeamBudget team-g/wrong-shapes: spec.budget.enforcment: unknown field",
        "TeamBudget team-g/wrong-shapes: spec.tenants[0].id: required",
        "ModelPricing wrong-shapes: spec.models[0].maxOutputTokens: expected an integer",
        "TeamBudget future: apiVersion \"tally.dev/v1beta1\" is not served",
        "broken.yaml.invalid (document 1): invalid YAML: ",
    ];
    for needle in must_report {
        assert!(reported.contains(needle), "`tally render` does not report {needle:?}");
    }
}

#[test]
fn render_without_paths_or_with_a_missing_one_fails() {
    let out = tally(&["render"]);
    assert!(!out.status.success());
    let out = tally(&["render", "does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does/not/exist.yaml: cannot read"));
    assert!(Path::new(&workspace()).join("examples").is_dir());
}
