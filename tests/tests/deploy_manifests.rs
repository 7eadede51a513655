//! The deployment files keep their promises: every Kubernetes manifest and the Compose
//! file parse, and the invariants the drain and the roles rely on hold (grace periods
//! longer than the drain, probes, one image tag, the Docker socket on executors only,
//! secrets by reference, configuration keys drover accepts).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use drover_tests::workspace_root;
use serde::Deserialize;
use yaml_rust2::{Yaml, YamlLoader};

const DOCKER_SOCKET: &str = "/var/run/docker.sock";
const DROVER_IMAGE: &str = "drover/drover";

// ---------------------------------------------------------------------------------
// Kubernetes

/// Every document of every `deploy/kubernetes/*.yaml`, with the file it came from.
fn kubernetes_documents() -> anyhow::Result<Vec<(PathBuf, Yaml)>> {
    let dir = workspace_root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    files.sort();
    ensure!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut documents = Vec::new();
    for file in files {
        for doc in load_yaml(&file)? {
            if !doc.is_null() {
                documents.push((file.clone(), doc));
            }
        }
    }
    Ok(documents)
}

fn load_yaml(path: &Path) -> anyhow::Result<Vec<Yaml>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    YamlLoader::load_from_str(&text).with_context(|| format!("{} is not YAML", path.display()))
}

fn str_of<'a>(yaml: &'a Yaml, what: &str) -> anyhow::Result<&'a str> {
    yaml.as_str()
        .with_context(|| format!("{what} is not a string: {yaml:?}"))
}

fn items(yaml: &Yaml) -> &[Yaml] {
    yaml.as_vec().map_or(&[], Vec::as_slice)
}

/// The Kubernetes objects by kind and name.
struct Objects {
    by_kind: BTreeMap<String, BTreeMap<String, Yaml>>,
    kustomization: Option<Yaml>,
}

impl Objects {
    fn load() -> anyhow::Result<Objects> {
        let mut by_kind: BTreeMap<String, BTreeMap<String, Yaml>> = BTreeMap::new();
        let mut kustomization = None;
        for (file, doc) in kubernetes_documents()? {
            let kind = str_of(&doc["kind"], &format!("kind in {}", file.display()))?.to_owned();
            ensure!(
                doc["apiVersion"].as_str().is_some(),
                "{}: {kind} has no apiVersion",
                file.display()
            );
            if kind == "Kustomization" {
                kustomization = Some(doc);
                continue;
            }
            let name = str_of(&doc["metadata"]["name"], &format!("a {kind}'s name"))?.to_owned();
            if kind != "Namespace" {
                ensure!(
                    doc["metadata"]["namespace"].as_str() == Some("drover"),
                    "{}: {kind} {name} is not in namespace drover",
                    file.display()
                );
            }
            let previous = by_kind
                .entry(kind.clone())
                .or_default()
                .insert(name.clone(), doc);
            ensure!(previous.is_none(), "{kind} {name} is defined twice");
        }
        Ok(Objects {
            by_kind,
            kustomization,
        })
    }

    fn get(&self, kind: &str, name: &str) -> anyhow::Result<&Yaml> {
        self.by_kind
            .get(kind)
            .and_then(|objects| objects.get(name))
            .with_context(|| format!("no {kind} named {name}"))
    }

    /// Every workload (Deployment, StatefulSet, DaemonSet, Job...) with its kind and name.
    fn workloads(&self) -> impl Iterator<Item = (&str, &str, &Yaml)> {
        self.by_kind.iter().flat_map(|(kind, objects)| {
            objects
                .iter()
                .filter(|(_, o)| !o["spec"]["template"]["spec"].is_badvalue())
                .map(move |(name, o)| (kind.as_str(), name.as_str(), o))
        })
    }

    /// The workload whose drover container runs `role` (its first argument).
    fn drover_role(&self, role: &str) -> anyhow::Result<(&str, &Yaml, &Yaml)> {
        let mut found = Vec::new();
        for (kind, _, workload) in self.workloads() {
            for container in items(&workload["spec"]["template"]["spec"]["containers"]) {
                let first = items(&container["args"]).first().and_then(Yaml::as_str);
                if first == Some(role) {
                    found.push((kind, workload, container));
                }
            }
        }
        ensure!(
            found.len() == 1,
            "expected one workload running `drover {role}`, found {}",
            found.len()
        );
        Ok(found.remove(0))
    }

    /// A container's environment, with ConfigMap, Secret and field references resolved
    /// (secrets to the example's values).
    fn environment(&self, container: &Yaml) -> anyhow::Result<HashMap<String, String>> {
        let mut env = HashMap::new();
        for var in items(&container["env"]) {
            let name = str_of(&var["name"], "an env name")?.to_owned();
            let value = if let Some(value) = var["value"].as_str() {
                value.to_owned()
            } else if let Some(key_ref) = var["valueFrom"]["configMapKeyRef"].as_hash() {
                let _ = key_ref;
                let r = &var["valueFrom"]["configMapKeyRef"];
                let map = self.get("ConfigMap", str_of(&r["name"], "configMapKeyRef.name")?)?;
                let key = str_of(&r["key"], "configMapKeyRef.key")?;
                str_of(
                    &map["data"][key],
                    &format!("ConfigMap key {key} (for {name})"),
                )?
                .to_owned()
            } else if !var["valueFrom"]["secretKeyRef"].is_badvalue() {
                let r = &var["valueFrom"]["secretKeyRef"];
                let secret = self.get("Secret", str_of(&r["name"], "secretKeyRef.name")?)?;
                let key = str_of(&r["key"], "secretKeyRef.key")?;
                str_of(
                    &secret["stringData"][key],
                    &format!("Secret key {key} (for {name})"),
                )?
                .to_owned()
            } else if !var["valueFrom"]["fieldRef"].is_badvalue() {
                "drover-executor-x7k2p".to_owned()
            } else {
                bail!("env {name} has neither value nor a known valueFrom");
            };
            env.insert(name, value);
        }
        Ok(env)
    }
}

fn pod_spec(workload: &Yaml) -> &Yaml {
    &workload["spec"]["template"]["spec"]
}

fn has_probe(container: &Yaml, probe: &str) -> bool {
    let p = &container[probe];
    !p.is_badvalue() && (p["httpGet"].is_hash() || p["exec"].is_hash() || p["tcpSocket"].is_hash())
}

fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text.trim()).with_context(|| format!("{text:?} is not a duration"))
}

/// The configuration every drover role reads (the binary's `Config`, without the
/// sections of roles these tests do not start), to check the variables a deployment
/// sets are keys drover accepts, with values it accepts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RoleConfig {
    zookeeper: drover_coordination::ZkSettings,
    api: drover_api::ApiConfig,
    executor: drover_executor::ExecutorConfig,
    url: Option<String>,
    token: Option<String>,
    log_format: drover_core::LogFormat,
    // The distributor role's section is another crate's; accepted as it is here.
    distributor: Option<serde_json::Value>,
}

/// Loads `file` (if any) and the `DROVER_*` variables of `env` as drover would.
fn role_config(file: Option<&Path>, env: &HashMap<String, String>) -> anyhow::Result<RoleConfig> {
    let env: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("DROVER_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let config: RoleConfig = drover_core::load_config(file, &env)?;
    config.zookeeper.validate()?;
    config.api.validate()?;
    config.executor.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

#[test]
fn kubernetes_manifests_parse_and_name_their_objects() -> anyhow::Result<()> {
    let objects = Objects::load()?;
    for kind in [
        "StatefulSet",
        "Deployment",
        "DaemonSet",
        "Service",
        "ConfigMap",
        "Secret",
    ] {
        ensure!(
            objects.by_kind.contains_key(kind),
            "no {kind} in deploy/kubernetes"
        );
    }
    // Every resource kustomization lists exists.
    let kustomization = objects
        .kustomization
        .as_ref()
        .context("no kustomization.yaml")?;
    let dir = workspace_root().join("deploy/kubernetes");
    for resource in items(&kustomization["resources"]) {
        let file = str_of(resource, "a kustomization resource")?;
        ensure!(
            dir.join(file).is_file(),
            "kustomization lists missing {file}"
        );
    }
    Ok(())
}

#[test]
fn kubernetes_uses_one_drover_image_tag_everywhere() -> anyhow::Result<()> {
    let objects = Objects::load()?;
    let mut tags = BTreeSet::new();
    let mut roles = 0;
    for (kind, name, workload) in objects.workloads() {
        let spec = pod_spec(workload);
        for container in items(&spec["containers"])
            .iter()
            .chain(items(&spec["initContainers"]))
        {
            let image = str_of(&container["image"], &format!("{kind} {name}'s image"))?;
            if let Some(tag) = image.strip_prefix(&format!("{DROVER_IMAGE}:")) {
                tags.insert(tag.to_owned());
                roles += 1;
            } else {
                ensure!(
                    !image.starts_with(DROVER_IMAGE),
                    "{kind} {name}: {image} has no tag"
                );
            }
            ensure!(
                !image.ends_with(":latest") && image.contains(':'),
                "{kind} {name}: pin {image} to a version"
            );
        }
    }
    ensure!(
        roles >= 3,
        "api, distributor and executor should run {DROVER_IMAGE}"
    );
    ensure!(tags.len() == 1, "several drover image tags: {tags:?}");
    let tag = tags.into_iter().next().unwrap_or_default();
    let kustomization = objects
        .kustomization
        .as_ref()
        .context("no kustomization.yaml")?;
    let pinned: Vec<&Yaml> = items(&kustomization["images"])
        .iter()
        .filter(|i| i["name"].as_str() == Some(DROVER_IMAGE))
        .collect();
    ensure!(
        pinned.len() == 1 && pinned[0]["newTag"].as_str() == Some(tag.as_str()),
        "kustomization.yaml should pin {DROVER_IMAGE} to {tag}"
    );
    ensure!(
        compose_drover_image()? == format!("{DROVER_IMAGE}:{tag}"),
        "the Compose file's default image should be {DROVER_IMAGE}:{tag}"
    );
    Ok(())
}

#[test]
fn kubernetes_executor_is_a_draining_daemonset_with_the_docker_socket() -> anyhow::Result<()> {
    let objects = Objects::load()?;
    let (kind, workload, container) = objects.drover_role("executor")?;
    ensure!(
        kind == "DaemonSet",
        "the executor runs as a {kind}, not a DaemonSet"
    );
    let spec = pod_spec(workload);

    // Grace > drain: the drain deadline as the executor will read it.
    let env = objects.environment(container)?;
    let config = role_config(None, &env)?;
    let grace = spec["terminationGracePeriodSeconds"]
        .as_i64()
        .context("the executor sets no terminationGracePeriodSeconds")?;
    let budget = config.executor.shutdown_budget();
    ensure!(
        Duration::from_secs(u64::try_from(grace)?) > budget,
        "terminationGracePeriodSeconds {grace} must exceed the executor's worst-case stop {budget:?} (drain, stop grace, giving jobs back, deregistering)"
    );
    // Slots come from the ConfigMap.
    let slots = items(&container["env"])
        .iter()
        .find(|v| v["name"].as_str() == Some("DROVER_EXECUTOR__SLOTS"))
        .context("DROVER_EXECUTOR__SLOTS is not set")?;
    ensure!(
        slots["valueFrom"]["configMapKeyRef"].is_hash(),
        "the executor's slots should come from a ConfigMap"
    );
    ensure!(config.executor.slots.is_some_and(|s| s > 0), "no slots");
    // Probes, on the port the executor listens on.
    for probe in ["readinessProbe", "livenessProbe"] {
        ensure!(has_probe(container, probe), "the executor has no {probe}");
    }
    ensure!(
        config.executor.metrics && config.executor.metrics_listen.port() == 9101,
        "the executor's probes need its listener on 9101"
    );
    ensure!(
        container["readinessProbe"]["httpGet"]["path"].as_str() == Some("/readyz")
            && container["livenessProbe"]["httpGet"]["path"].as_str() == Some("/healthz"),
        "the executor's probes should use /readyz (attached, not draining) and /healthz"
    );
    // The Docker socket, by hostPath, mounted where bollard looks.
    let socket_volume = items(&spec["volumes"])
        .iter()
        .find(|v| v["hostPath"]["path"].as_str() == Some(DOCKER_SOCKET))
        .context("the executor has no hostPath volume for the Docker socket")?;
    let volume_name = str_of(&socket_volume["name"], "the socket volume's name")?;
    ensure!(
        items(&container["volumeMounts"]).iter().any(|m| {
            m["name"].as_str() == Some(volume_name)
                && m["mountPath"].as_str() == Some(DOCKER_SOCKET)
        }),
        "the executor does not mount the Docker socket at {DOCKER_SOCKET}"
    );
    // Old and new executor of a node never overlap during a rolling update.
    ensure!(
        workload["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"].as_i64() == Some(0),
        "the executor DaemonSet's maxSurge must be 0"
    );
    Ok(())
}

#[test]
fn kubernetes_docker_socket_is_mounted_by_executors_only() -> anyhow::Result<()> {
    let objects = Objects::load()?;
    for (kind, name, workload) in objects.workloads() {
        let mounts_socket = items(&pod_spec(workload)["volumes"]).iter().any(|v| {
            v["hostPath"]["path"]
                .as_str()
                .is_some_and(|p| p.contains("docker.sock"))
        });
        ensure!(
            !mounts_socket || name == "drover-executor",
            "{kind} {name} mounts the Docker socket; only executors may"
        );
    }
    Ok(())
}

#[test]
fn kubernetes_api_reads_its_database_url_from_a_secret() -> anyhow::Result<()> {
    let objects = Objects::load()?;
    let (kind, workload, container) = objects.drover_role("api")?;
    ensure!(kind == "Deployment", "the api runs as a {kind}");
    let url = items(&container["env"])
        .iter()
        .find(|v| v["name"].as_str() == Some("DROVER_API__DATABASE_URL"))
        .context("DROVER_API__DATABASE_URL is not set")?;
    ensure!(
        url["value"].is_badvalue() && url["valueFrom"]["secretKeyRef"].is_hash(),
        "DROVER_API__DATABASE_URL must come from a Secret (secretKeyRef), not a literal"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        ensure!(has_probe(container, probe), "the api has no {probe}");
    }
    ensure!(
        container["readinessProbe"]["httpGet"]["path"].as_str() == Some("/readyz")
            && container["livenessProbe"]["httpGet"]["path"].as_str() == Some("/healthz"),
        "the api's probes should use /readyz and /healthz"
    );
    // The configuration loads and validates: PostgreSQL, tokens, listen address.
    let api_toml = objects.get("Secret", "drover")?["stringData"]["api.toml"]
        .as_str()
        .context("the Secret has no api.toml")?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("api.toml");
    std::fs::write(&file, api_toml)?;
    let config = role_config(Some(&file), &objects.environment(container)?)?;
    ensure!(
        config.api.database_url.starts_with("postgres"),
        "several api replicas need PostgreSQL"
    );
    // A Service selects the api's pods.
    let labels = &workload["spec"]["template"]["metadata"]["labels"];
    let service = objects.get("Service", "drover-api")?;
    for (key, value) in service["spec"]["selector"]
        .as_hash()
        .context("no selector")?
    {
        ensure!(
            &labels[str_of(key, "a selector key")?] == value,
            "the drover-api Service does not select the api"
        );
    }
    Ok(())
}

#[test]
fn kubernetes_roles_have_their_replicas() -> anyhow::Result<()> {
    let objects = Objects::load()?;
    let (kind, workload, container) = objects.drover_role("distributor")?;
    ensure!(
        kind == "Deployment" && workload["spec"]["replicas"].as_i64() == Some(2),
        "two distributor replicas (a Deployment)"
    );
    role_config(None, &objects.environment(container)?)?;
    let zookeeper = objects.get("StatefulSet", "zookeeper")?;
    ensure!(
        zookeeper["spec"]["replicas"].as_i64() == Some(3),
        "three ZooKeeper servers"
    );
    let headless = str_of(
        &zookeeper["spec"]["serviceName"],
        "the StatefulSet's serviceName",
    )?;
    ensure!(
        objects.get("Service", headless)?["spec"]["clusterIP"].as_str() == Some("None"),
        "the ZooKeeper StatefulSet's Service {headless} must be headless"
    );
    for (_, name, workload) in objects.workloads() {
        ensure!(
            pod_spec(workload)["terminationGracePeriodSeconds"]
                .as_i64()
                .is_some(),
            "{name} should say how long it may take to stop"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Docker Compose

fn compose_file() -> PathBuf {
    workspace_root().join("deploy/compose/docker-compose.yml")
}

/// The Compose file's services, with `<<` merge keys applied.
fn compose_services() -> anyhow::Result<BTreeMap<String, Yaml>> {
    let docs = load_yaml(&compose_file())?;
    let root = docs.first().context("the Compose file is empty")?;
    ensure!(
        root["version"].as_str() == Some("2.4"),
        "docker-compose 1.29 needs file format 2.4 for healthcheck conditions and scale"
    );
    let mut services = BTreeMap::new();
    for (name, service) in root["services"].as_hash().context("no services")? {
        services.insert(str_of(name, "a service name")?.to_owned(), merged(service));
    }
    Ok(services)
}

/// A mapping with its `<<` merge key applied (YAML 1.1, which Compose supports).
fn merged(yaml: &Yaml) -> Yaml {
    let Some(hash) = yaml.as_hash() else {
        return yaml.clone();
    };
    let mut out = yaml_rust2::yaml::Hash::new();
    if let Some(base) = hash.get(&Yaml::String("<<".into())).and_then(Yaml::as_hash) {
        for (k, v) in base {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in hash {
        if k.as_str() != Some("<<") {
            out.insert(k.clone(), v.clone());
        }
    }
    Yaml::Hash(out)
}

/// `${NAME:-default}` → default, `${NAME:?message}` → `placeholder-name` (a token for
/// variables the file requires), `$$` → `$`.
fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let (Some(body), Some(end)) = (after.strip_prefix('{'), after.find('}')) {
            let body = &body[..end - 1];
            if let Some((_, default)) = body.split_once(":-") {
                out.push_str(default);
            } else if let Some((name, _)) = body.split_once(":?") {
                out.push_str(&format!("placeholder-{}", name.to_ascii_lowercase()));
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn compose_environment(service: &Yaml) -> anyhow::Result<HashMap<String, String>> {
    let mut env = HashMap::new();
    for (k, v) in service["environment"]
        .as_hash()
        .context("no environment mapping")?
    {
        let value = match v {
            Yaml::String(s) => interpolate(s),
            Yaml::Integer(i) => i.to_string(),
            other => bail!("environment value {other:?}"),
        };
        env.insert(str_of(k, "an environment name")?.to_owned(), value);
    }
    Ok(env)
}

/// The drover image the Compose file uses when DROVER_IMAGE is unset.
fn compose_drover_image() -> anyhow::Result<String> {
    let services = compose_services()?;
    let images: BTreeSet<String> = services
        .values()
        .filter_map(|s| s["image"].as_str())
        .filter(|i| i.contains("DROVER_IMAGE"))
        .map(interpolate)
        .collect();
    ensure!(
        images.len() == 1,
        "several drover images in the Compose file: {images:?}"
    );
    Ok(images.into_iter().next().unwrap_or_default())
}

/// The configuration file a service's shell command writes with a here-document
/// (`cat > FILE <<EOF ... EOF`), with the shell's `${NAME}` taken from `env`.
fn compose_config_file(
    service: &Yaml,
    env: &HashMap<String, String>,
    dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    let Some(script) = items(&service["command"]).first().and_then(Yaml::as_str) else {
        return Ok(None);
    };
    let Some((_, body)) = script.split_once("<<EOF\n") else {
        return Ok(None);
    };
    let (body, _) = body
        .split_once("\nEOF")
        .context("a here-document without its EOF")?;
    let mut text = interpolate(body);
    for (name, value) in env {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    ensure!(
        !text.contains("${"),
        "an unset variable in the written file:\n{text}"
    );
    let file = dir.join("config.toml");
    std::fs::write(&file, text)?;
    Ok(Some(file))
}

#[test]
fn compose_executors_drain_within_the_stop_grace_period() -> anyhow::Result<()> {
    let services = compose_services()?;
    let executor = services.get("executor").context("no executor service")?;
    let env = compose_environment(executor)?;
    let config = role_config(None, &env)?;
    let grace = parse_duration(str_of(&executor["stop_grace_period"], "stop_grace_period")?)?;
    let budget = config.executor.shutdown_budget();
    ensure!(
        grace > budget,
        "stop_grace_period {grace:?} must exceed the executor's worst-case stop {budget:?} (drain, stop grace, giving jobs back, deregistering)"
    );
    ensure!(
        executor["container_name"].is_badvalue() && executor["ports"].is_badvalue(),
        "the executor service must be able to scale: no container_name, no host ports"
    );
    ensure!(
        interpolate(str_of(&executor["scale"], "scale")?) == "1",
        "executors scale from EXECUTOR_REPLICAS (default 1)"
    );
    Ok(())
}

#[test]
fn compose_mounts_the_docker_socket_into_executors_only() -> anyhow::Result<()> {
    for (name, service) in compose_services()? {
        let mounts_socket = items(&service["volumes"])
            .iter()
            .filter_map(Yaml::as_str)
            .any(|v| v.contains("docker.sock"));
        ensure!(
            mounts_socket == (name == "executor"),
            "{name}: {} the Docker socket",
            if mounts_socket {
                "mounts"
            } else {
                "does not mount"
            }
        );
    }
    Ok(())
}

#[test]
fn compose_services_are_healthchecked_and_need_no_distributor() -> anyhow::Result<()> {
    let services = compose_services()?;
    for name in ["zookeeper", "api", "executor"] {
        let service = services
            .get(name)
            .with_context(|| format!("no {name} service"))?;
        ensure!(
            !items(&service["healthcheck"]["test"]).is_empty(),
            "{name} has no healthcheck"
        );
    }
    let distributors: Vec<&String> = services
        .keys()
        .filter(|n| n.starts_with("distributor"))
        .collect();
    ensure!(
        distributors.len() == 2,
        "two distributors: {distributors:?}"
    );
    for (name, service) in &services {
        if let Some(deps) = service["depends_on"].as_hash() {
            for dep in deps.keys().filter_map(Yaml::as_str) {
                ensure!(
                    !dep.starts_with("distributor"),
                    "{name} depends on {dep}: nothing may wait for distributors"
                );
            }
        }
        // Every drover role's variables (and the api's file) are keys drover accepts.
        if service["image"]
            .as_str()
            .is_some_and(|i| i.contains("DROVER_IMAGE"))
        {
            let env = compose_environment(service)?;
            let dir = tempfile::tempdir()?;
            let file = compose_config_file(service, &env, dir.path())?;
            role_config(file.as_deref(), &env)
                .with_context(|| format!("the {name} service's configuration"))?;
        }
    }
    let api = services.get("api").context("no api service")?;
    let ports: Vec<String> = items(&api["ports"])
        .iter()
        .filter_map(Yaml::as_str)
        .map(interpolate)
        .collect();
    ensure!(
        ports == ["127.0.0.1:8080:8080"],
        "the api should be published on the host's 127.0.0.1:8080 by default: {ports:?}"
    );
    Ok(())
}

#[test]
fn compose_sample_actions_load() -> anyhow::Result<()> {
    let dir = workspace_root().join("deploy/compose/actions");
    let catalogue = drover_actions::Catalogue::load(Some(&dir), &HashMap::new())?;
    let Some(drover_actions::Action::Docker(hello)) = catalogue.get("hello") else {
        bail!("the sample action `hello` is not a Docker action");
    };
    ensure!(
        hello.action.image == "drover/busybox:latest" && hello.action.network == "none",
        "the sample action runs drover/busybox:latest without a network: {hello:?}"
    );
    Ok(())
}

#[test]
fn interpolation_follows_compose() {
    assert_eq!(interpolate("${A:-x}:${B:-8080}:8080"), "x:8080:8080");
    assert_eq!(interpolate("${TOKEN:?set TOKEN}"), "placeholder-token");
    assert_eq!(interpolate("$${HOME} $x"), "${HOME} $x");
}
