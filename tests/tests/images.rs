//! The container images, as a cluster runs them: built by `scripts/images.sh` (buildah),
//! run by real podman (runc, host network) with the chart's security settings.
//!
//! - the chart's default image references are exactly the images built here, tagged with
//!   the workspace version (= the chart's appVersion), and drift fails a test;
//! - each image is small (≤ 40 MiB), static, non-root, labelled, without a HEALTHCHECK;
//! - the ext_proc container serves `grpc.health.v1` and `/readyz` with its config mounted
//!   read-only and a read-only root filesystem; the operator container answers `--help` and
//!   renders mounted manifests exactly as the compiler does;
//! - one call through real Envoy (the chart's gateway config) → the ext_proc *container* →
//!   real Redis is charged to the nano-dollar;
//! - `scripts/images.sh --push` pushes to a real registry on loopback, and rebuilding gives
//!   the same image IDs (reproducible);
//! - the release workflow passes actionlint (with shellcheck on its scripts).
//!
//! Missing images fail with "run scripts/images.sh"; missing tools name their installer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize as _;
use serde_json::Value;
use tally_tests::bedrock_sim::SimOptions;
use tally_tests::client::{Attribution, bedrock_client, user_message};
use tally_tests::expect::{PricesNanos, Tokens, cost_nanos, hash_field, monthly_utc_key, record_for, usd_to_nanos};
use tally_tests::fixtures::admin;
use tally_tests::fixtures::container::{
    EXTPROC_REPOSITORY, ExtProcContainer, IMAGE_USER, ImageInfo, OPERATOR_REPOSITORY, Registry, image_ref,
    podman_output, require_image, run_to_completion, workspace_version,
};
use tally_tests::fixtures::envoy::{Envoy, EnvoyOptions};
use tally_tests::fixtures::extproc::ExtProcOptions;
use tally_tests::fixtures::redis::RedisServer;
use tally_tests::fixtures::sim::SimServer;
use tally_tests::fixtures::tools;
use tally_tests::scenarios::{US_HAIKU, compile_manifests, default_config};

/// The size budget of each image (uncompressed, as stored).
const MAX_IMAGE_BYTES: u64 = 40 * 1024 * 1024;
/// `us.anthropic.claude-haiku-4-5` in nano-USD per 1M tokens (bedrock-wire.md): input, output,
/// cache read, cache write 5m, cache write 1h.
const US_HAIKU_PRICES: PricesNanos = [1_100_000_000, 5_500_000_000, 110_000_000, 1_375_000_000, 2_200_000_000];
const DIRECTIVE: &str = "Summarise the quarterly report [[usage in=1200 out=300 cr=4000 cw5m=500 cw1h=100]]";
const TOKENS: Tokens = [1200, 300, 4000, 500, 100];
/// The `search` team's monthly limit in the default scenario: $100.
const SEARCH_LIMIT_NANOS: i64 = 100_000_000_000;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn chart_dir() -> PathBuf {
    tools::workspace_root().join("charts/tally")
}

/// `https://github.com/tally-dev/tally`, the workspace's `repository`: the images' source label.
fn workspace_repository() -> String {
    read(&tools::workspace_root().join("Cargo.toml"))
        .lines()
        .find_map(|l| l.trim().strip_prefix("repository"))
        .and_then(|rest| rest.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("Cargo.toml [workspace.package] repository")
}

/// The image the chart names by default for `repository`, built from this commit; panics with
/// "run scripts/images.sh" when it is missing or was built from another commit (a test of a
/// stale image would test old code).
fn current_image(repository: &str) -> ImageInfo {
    let image = require_image(&image_ref(repository));
    let revision = image
        .labels
        .get("org.opencontainers.image.revision")
        .cloned()
        .unwrap_or_default();
    let head = git_head();
    assert!(
        revision.starts_with(&head),
        "{} was built from {revision:?}, not HEAD {head}: run scripts/images.sh",
        image.reference
    );
    image
}

fn git_head() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(tools::workspace_root())
        .output()
        .expect("run git rev-parse HEAD");
    assert!(out.status.success(), "git rev-parse HEAD failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every `(container name, image)` of the Deployments `helm template` renders with `values`.
fn rendered_images(values: &[&str]) -> Vec<(String, String)> {
    let mut cmd = Command::new(tools::helm());
    cmd.args(["template", "tally"])
        .arg(chart_dir())
        .args(["--namespace", "tally-system"]);
    for v in values {
        cmd.args(["--set", v]);
    }
    let out = cmd.output().expect("run helm template");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut images = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout)) {
        let doc = serde_yaml::Value::deserialize(doc).expect("rendered YAML");
        if doc.get("kind").and_then(|k| k.as_str()) != Some("Deployment") {
            continue;
        }
        let containers = doc["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for c in containers {
            images.push((
                c["name"].as_str().unwrap_or_default().to_string(),
                c["image"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    images
}

fn image_of<'a>(images: &'a [(String, String)], container: &str) -> &'a str {
    images
        .iter()
        .find(|(name, _)| name == container)
        .map(|(_, image)| image.as_str())
        .unwrap_or_else(|| panic!("no Deployment container named {container:?} in {images:?}"))
}

#[test]
fn chart_defaults_name_the_images_built_here_with_the_workspace_version() {
    let version = workspace_version();
    assert_chart_carries(&version);
    assert_values_name_the_images(&version);
    // What a default `helm install` actually starts.
    let images = rendered_images(&[]);
    assert_eq!(image_of(&images, "extproc"), image_ref(EXTPROC_REPOSITORY));
    assert_eq!(image_of(&images, "operator"), image_ref(OPERATOR_REPOSITORY));

    let prefix = assert_images_sh_builds_those_names();
    assert_release_workflow_pushes_to(&prefix);
    assert_overrides_reach_the_pods();
}

/// The chart's version and appVersion (the images' default tag) are the workspace version.
fn assert_chart_carries(version: &str) {
    let chart: serde_yaml::Value = serde_yaml::from_str(&read(&chart_dir().join("Chart.yaml"))).expect("Chart.yaml");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version),
        "charts/tally/Chart.yaml appVersion must equal the workspace version in Cargo.toml (the images' tag)"
    );
    assert_eq!(
        chart["version"].as_str(),
        Some(version),
        "charts/tally/Chart.yaml version must equal the workspace version (RELEASING.md: one version for everything)"
    );
}

/// values.yaml names the images built here, untagged (= appVersion) and unpinned.
fn assert_values_name_the_images(version: &str) {
    let values: serde_yaml::Value = serde_yaml::from_str(&read(&chart_dir().join("values.yaml"))).expect("values.yaml");
    for (component, repository) in [("extproc", EXTPROC_REPOSITORY), ("operator", OPERATOR_REPOSITORY)] {
        let image = &values[component]["image"];
        assert_eq!(
            image["repository"].as_str(),
            Some(repository),
            "{component}.image.repository"
        );
        assert!(
            matches!(image["tag"].as_str(), Some("")) || image["tag"].as_str() == Some(version),
            "{component}.image.tag must be empty (= appVersion) or the workspace version, got {:?}",
            image["tag"]
        );
        assert_eq!(
            image["digest"].as_str(),
            Some(""),
            "{component}.image.digest pins another image"
        );
    }
}

/// scripts/images.sh builds the same names; returns its image prefix.
fn assert_images_sh_builds_those_names() -> String {
    // What scripts/images.sh builds: the same prefix and names.
    let script = read(&tools::workspace_root().join("scripts/images.sh"));
    let prefix = script
        .lines()
        .find_map(|l| l.strip_prefix("IMAGE_PREFIX=\""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("scripts/images.sh sets IMAGE_PREFIX=\"...\"");
    let built = script
        .lines()
        .find(|l| l.starts_with("IMAGES=("))
        .expect("scripts/images.sh lists IMAGES=(name:target:binary ...)");
    let names: Vec<String> = built
        .trim_start_matches("IMAGES=(")
        .split(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|spec| format!("{prefix}/{}", spec.split(':').next().unwrap_or_default()))
        .collect();
    assert_eq!(
        names,
        [EXTPROC_REPOSITORY, OPERATOR_REPOSITORY],
        "scripts/images.sh builds other names"
    );

    prefix.to_string()
}

/// The release workflow pushes to the same names under the repository owner.
fn assert_release_workflow_pushes_to(prefix: &str) {
    let workflow = read(&tools::workspace_root().join(".github/workflows/release.yml"));
    let owner = workspace_repository()
        .trim_start_matches("https://github.com/")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        format!("ghcr.io/{owner}"),
        prefix,
        "the release workflow pushes to ghcr.io/<repository owner>"
    );
    assert!(workflow.contains("IMAGE_PREFIX: ghcr.io/${{ github.repository_owner }}"));
    for name in ["tally-extproc", "tally-operator"] {
        assert!(workflow.contains(&format!("name: {name}")), "release.yml builds {name}");
    }
}

/// Overrides reach the pods: a mirror registry and a digest pin.
fn assert_overrides_reach_the_pods() {
    let images = rendered_images(&[
        "extproc.image.repository=my-registry.example/tally/tally-extproc",
        "extproc.image.tag=custom",
        "operator.image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]);
    assert_eq!(
        image_of(&images, "extproc"),
        "my-registry.example/tally/tally-extproc:custom"
    );
    assert_eq!(
        image_of(&images, "operator"),
        format!("{OPERATOR_REPOSITORY}@sha256:0000000000000000000000000000000000000000000000000000000000000000")
    );
}

#[test]
fn built_images_are_small_static_nonroot_labelled_and_current() {
    let version = workspace_version();
    let mut sizes = Vec::new();
    for (repository, binary) in [
        (EXTPROC_REPOSITORY, "/usr/local/bin/tally-extproc"),
        (OPERATOR_REPOSITORY, "/usr/local/bin/tally"),
    ] {
        let image = current_image(repository);
        let label = |k: &str| image.labels.get(k).cloned().unwrap_or_default();
        assert!(
            image.size_bytes <= MAX_IMAGE_BYTES,
            "{} is {} bytes, over the 40 MiB budget",
            image.reference,
            image.size_bytes
        );
        assert_eq!(image.user, IMAGE_USER, "{}: runs as nonroot (65532)", image.reference);
        assert_eq!(image.entrypoint, [binary], "{}", image.reference);
        assert!(
            image.healthcheck.is_none(),
            "{}: probes are the chart's, not a HEALTHCHECK",
            image.reference
        );
        assert_eq!(
            image.architecture,
            std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64")
        );
        assert_eq!(
            label("org.opencontainers.image.version"),
            version,
            "{}",
            image.reference
        );
        assert_eq!(label("org.opencontainers.image.source"), workspace_repository());
        assert!(!label("org.opencontainers.image.created").is_empty());
        assert!(image.layers <= 2, "{}: base layer + binary layer", image.reference);
        sizes.push(format!(
            "{} {:.1} MiB",
            image.reference,
            image.size_bytes as f64 / 1048576.0
        ));
    }
    eprintln!("image sizes: {}", sizes.join(", "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extproc_container_serves_grpc_health_and_readyz_read_only_as_nonroot() {
    let image = current_image(EXTPROC_REPOSITORY).reference;
    let redis = RedisServer::start(false).await;
    let extproc = ExtProcContainer::start(&image, &ExtProcOptions::new(default_config(), Some(redis.url()))).await;

    for path in ["/readyz", "/healthz"] {
        assert!(
            matches!(admin::get(&extproc.metrics_url(path)).await, Ok((200, _))),
            "GET {path}"
        );
    }
    let metrics = admin::get_ok(&extproc.metrics_url("/metrics")).await;
    assert!(
        metrics.contains("tally_config_info{"),
        "the mounted config was loaded:\n{metrics}"
    );

    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", extproc.grpc_port()))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to the container's gRPC port");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "envoy.service.ext_proc.v3.ExternalProcessor"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("grpc.health.v1 Check({service:?}): {e}"))
            .into_inner();
        assert_eq!(
            status.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "grpc.health.v1 Check({service:?})"
        );
    }

    let container = extproc.container();
    let inspect = container.inspect();
    assert_eq!(
        inspect["HostConfig"]["ReadonlyRootfs"], true,
        "read-only root filesystem"
    );
    let config_mount = inspect["Mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["Destination"] == "/etc/tally"))
        .unwrap_or_else(|| panic!("no /etc/tally mount: {:#}", inspect["Mounts"]));
    assert_eq!(config_mount["RW"], false, "config mounted read-only");
    // The process as the kernel sees it: the image's user, no capabilities.
    let status = read(Path::new(&format!("/proc/{}/status", container.host_pid())));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), "65532 65532 65532 65532", "{status}");
    assert_eq!(field("Gid:"), "65532 65532 65532 65532", "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
}

/// Copies the example manifests into a directory the container user can read.
fn readable_manifests() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::Builder::new()
        .prefix("tally-manifests-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for sub in ["teams", "catalog"] {
        let src = tools::workspace_root().join("examples").join(sub);
        for entry in std::fs::read_dir(&src).expect("examples dir").flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let dest = dir
                    .path()
                    .join(format!("{sub}-{}", entry.file_name().to_string_lossy()));
                std::fs::copy(&path, &dest).expect("copy manifest");
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            }
        }
    }
    dir
}

#[test]
fn operator_container_answers_help_and_renders_mounted_manifests() {
    let image = current_image(OPERATOR_REPOSITORY).reference;
    let text = |out: &std::process::Output| {
        format!(
            "status {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    let help = run_to_completion(&image, &[], &["--help"]);
    assert!(help.status.success(), "{}", text(&help));
    let stdout = String::from_utf8_lossy(&help.stdout);
    for command in ["operator", "render", "crds"] {
        assert!(
            stdout.contains(command),
            "`tally --help` lists {command}: {}",
            text(&help)
        );
    }
    let help = run_to_completion(&image, &[], &["operator", "--help"]);
    assert!(help.status.success(), "{}", text(&help));
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--config-map-name"),
        "{}",
        text(&help)
    );

    let manifests = readable_manifests();
    let out = run_to_completion(&image, &[(manifests.path(), "/manifests")], &["render", "/manifests"]);
    assert!(out.status.success(), "tally render in the container: {}", text(&out));
    let rendered: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("tally render printed no JSON ({e}): {}", text(&out)));
    let expected = serde_json::to_value(compile_manifests(&[manifests.path().to_path_buf()])).expect("config JSON");
    assert_eq!(
        rendered, expected,
        "the container's `tally render` equals the operator's compiler on the same manifests"
    );
    assert!(
        rendered["teams"].as_array().is_some_and(|t| t.len() >= 3),
        "{rendered:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_envoy_and_the_extproc_container_is_charged() {
    let image = current_image(EXTPROC_REPOSITORY).reference;
    let sim = SimServer::start(SimOptions::default()).await;
    let redis = RedisServer::start(false).await;
    let extproc = ExtProcContainer::start(&image, &ExtProcOptions::new(default_config(), Some(redis.url()))).await;
    // failOpen=false: had Envoy not reached the container, the call would fail with 500.
    let envoy = Envoy::start(&EnvoyOptions {
        upstream_port: sim.port(),
        ext_proc_port: extproc.grpc_port(),
        fail_open: false,
        signing: None,
        extra_values: vec![],
    })
    .await;

    let client = bedrock_client(&envoy.url(), Attribution::new("search", "acme", "rag"), false);
    let out = client
        .sdk
        .converse()
        .model_id(US_HAIKU)
        .messages(user_message(DIRECTIVE))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Converse through Envoy → ext_proc container: {e:?}\n----- container log -----\n{}",
                extproc.container().log()
            )
        });
    assert_eq!(
        out.usage().map(|u| u.output_tokens()),
        Some(300),
        "the answer reached the client"
    );

    let cost = cost_nanos(TOKENS, US_HAIKU_PRICES);
    assert_eq!(
        cost, 4_317_500,
        "1200×1.1 + 300×5.5 + 4000×0.11 + 500×1.375 + 100×2.2 µ$"
    );
    let headers = client.responses.last();
    let header = |name: &str| {
        headers
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("response has no {name}: {headers:?}"))
    };
    assert_eq!(usd_to_nanos(&header("x-tally-cost-usd")), cost);
    assert_eq!(
        usd_to_nanos(&header("x-tally-budget-remaining-usd")),
        SEARCH_LIMIT_NANOS - cost
    );

    let ledger = extproc.api().wait_ledger(1, Duration::from_secs(15)).await;
    let record = record_for(&ledger, &header("x-tally-request-id"));
    assert_eq!(
        (
            record["team"].as_str(),
            record["workflow"].as_str(),
            record["costNanos"].as_i64(),
            record["outcome"].as_str()
        ),
        (Some("search"), Some("rag"), Some(cost), Some("ok")),
        "{record:#}"
    );
    let mut conn = redis.connection().await;
    let key = format!("tally:{{search}}:c:{}:team", monthly_utc_key());
    assert_eq!(hash_field(&mut conn, &key, "spent").await, cost, "{key}");
    assert_eq!(hash_field(&mut conn, &key, "reserved").await, 0, "{key}: settled");
    assert_eq!(
        sim.stats().requests.values().sum::<u64>(),
        1,
        "one call reached Bedrock"
    );
}

/// Removes extra tags from local storage when dropped: an image that also has another tag
/// (a reproducible rebuild) stays, one that does not (a rebuild that differed) is deleted.
struct RemoveTags(Vec<String>);

impl Drop for RemoveTags {
    fn drop(&mut self) {
        for reference in &self.0 {
            let _ = podman_output(&["rmi", reference]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_sh_pushes_to_a_registry_and_rebuilds_the_same_images() {
    let built = [current_image(EXTPROC_REPOSITORY), current_image(OPERATOR_REPOSITORY)];
    let registry = Registry::start().await;
    let tag = format!("push-test-{}", std::process::id());
    let _remove = RemoveTags(
        [EXTPROC_REPOSITORY, OPERATOR_REPOSITORY]
            .map(|r| format!("{r}:{tag}"))
            .to_vec(),
    );
    let prefix = format!("{}/tally", registry.host());
    let script = tools::workspace_root().join("scripts/images.sh");
    let args = vec![
        "--skip-binaries".to_string(),
        "--tag".to_string(),
        tag.clone(),
        "--push".to_string(),
        prefix.clone(),
        "--tls-verify=false".to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new(script).args(&args).output())
        .await
        .expect("join")
        .expect("run scripts/images.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scripts/images.sh --push failed:\n{stdout}\n{}\n----- registry log -----\n{}",
        String::from_utf8_lossy(&out.stderr),
        registry.log()
    );

    for (image, name) in built.iter().zip(["tally-extproc", "tally-operator"]) {
        // Rebuilt from the same context: the same image, byte for byte.
        let rebuilt = require_image(&format!("{}:{tag}", image.reference.rsplit_once(':').unwrap().0));
        let now = require_image(&image.reference);
        assert_eq!(
            rebuilt.id,
            image.id,
            "{name}: a rebuild gives the same image ID{}\nbuilt:   {image:?}\nrebuilt: {rebuilt:?}",
            if now.id == image.id {
                String::new()
            } else {
                format!(
                    " ({} changed during the test: another scripts/images.sh run shares this machine's \
                     build context; rerun when it is done)",
                    image.reference
                )
            }
        );

        let pushed_ref = format!("{prefix}/{name}:{tag}");
        let digest = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("pushed {pushed_ref}@")))
            .unwrap_or_else(|| panic!("scripts/images.sh printed no digest for {pushed_ref}:\n{stdout}"))
            .to_string();
        let skopeo = tools::cached_tool("skopeo", "images.sh");
        let inspect = Command::new(skopeo)
            .args(["inspect", "--tls-verify=false", &format!("docker://{pushed_ref}")])
            .output()
            .expect("run skopeo inspect");
        assert!(
            inspect.status.success(),
            "skopeo inspect {pushed_ref}: {}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let remote: Value = serde_json::from_slice(&inspect.stdout).expect("skopeo prints JSON");
        assert_eq!(
            remote["Digest"],
            digest.as_str(),
            "{pushed_ref}: the printed digest is the registry's"
        );
        assert_eq!(
            remote["Labels"]["org.opencontainers.image.version"],
            workspace_version().as_str()
        );
    }
}

#[test]
fn release_workflow_passes_actionlint() {
    let actionlint = tools::cached_tool("actionlint", "actionlint.sh");
    let shellcheck = tools::cached_tool("shellcheck", "actionlint.sh");
    let workflow = tools::workspace_root().join(".github/workflows/release.yml");
    let out = Command::new(actionlint)
        .arg("-no-color")
        .arg("-shellcheck")
        .arg(&shellcheck)
        .arg(&workflow)
        .current_dir(tools::workspace_root())
        .output()
        .expect("run actionlint");
    assert!(
        out.status.success(),
        "actionlint {}:\n{}{}",
        workflow.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What the release must do, in the workflow that does it.
    let text = read(&workflow);
    for needle in [
        "file: images/Dockerfile",
        "platforms: linux/amd64,linux/arm64",
        "provenance: mode=max",
        "sbom: true",
        "scripts/images.sh --context-only",
        "helm package charts/tally",
        "helm push",
        "cosign sign --yes",
        "id-token: write",
        "target: extproc",
        "target: operator",
    ] {
        assert!(text.contains(needle), "release.yml lacks {needle:?}");
    }
}
