//! One container definition on its own: the member-by-member checks of
//! `containerDefinitions[i]` and the defaults ECS fills in (`essential`, `cpu`), with the
//! concern-specific members handed to the sibling modules (ports, volumes, health, linux).
//!
//! [`TaskCtx`] is what a container's checks need to know about the rest of the task (network
//! mode, the other containers' names, volumes, accelerators, task memory); checks that span
//! containers (name uniqueness, dependency cycles, port clashes, task size) live in the parent.

use std::collections::HashSet;

use berth_api::types::{self as api, enums};

use super::health::{depends_on, health_check};
use super::linux::{linux_parameters, system_controls, ulimits};
use super::ports::{extra_hosts, links, port_mappings};
use super::volumes::{mount_points, volumes_from};
use super::{At, MAX_ENVIRONMENT_FILES, MAX_IGNORED_EXIT_CODES, MIN_CONTAINER_MEMORY, list_names};
use crate::entity::NetworkMode;
use crate::error::Error;
use crate::validate::shorten;

/// What a container's checks need to know about the task.
pub(super) struct TaskCtx<'a> {
    pub(super) mode: NetworkMode,
    pub(super) ipc_mode: Option<&'a str>,
    pub(super) names: &'a [&'a str],
    pub(super) volumes: &'a [&'a str],
    pub(super) accelerators: &'a [&'a str],
    pub(super) task_memory: Option<i64>,
}

/// One container on its own; returns it normalized.
pub(super) fn container(
    c: &api::ContainerDefinition,
    name: &str,
    t: &TaskCtx<'_>,
) -> Result<api::ContainerDefinition, Error> {
    let at = At::container(name);
    let mut out = c.clone();

    image(&at, c.image.as_deref())?;
    if let Some(rc) = &c.repository_credentials {
        at.required_str(
            &rc.credentials_parameter,
            "repositoryCredentials.credentialsParameter",
        )?;
    }
    memory(&at, name, c, t.task_memory)?;
    if let Some(cpu) = c.cpu
        && cpu < 0
    {
        return Err(at.err(format!(
            "cpu ({cpu}) must be 0 or more CPU units (1024 units = 1 vCPU)"
        )));
    }
    out.cpu = Some(c.cpu.unwrap_or(0));
    out.essential = Some(c.essential.unwrap_or(true));
    out.port_mappings = Some(port_mappings(
        &at,
        c.port_mappings.as_deref().unwrap_or_default(),
        t.mode,
    )?);
    links(&at, name, c.links.as_deref().unwrap_or_default(), t)?;
    out.mount_points = Some(mount_points(
        &at,
        c.mount_points.as_deref().unwrap_or_default(),
        t.volumes,
    )?);
    out.volumes_from = Some(volumes_from(
        &at,
        name,
        c.volumes_from.as_deref().unwrap_or_default(),
        t.names,
    )?);
    out.environment = Some(environment(&at, c)?);
    secrets(&at, c.secrets.as_deref().unwrap_or_default(), "secrets")?;
    depends_on(
        &at,
        name,
        c.depends_on.as_deref().unwrap_or_default(),
        t.names,
    )?;
    for (what, v) in [
        ("startTimeout", c.start_timeout),
        ("stopTimeout", c.stop_timeout),
    ] {
        if let Some(v) = v
            && v < 0
        {
            return Err(at.err(format!("{what} ({v}) must be 0 or more seconds")));
        }
    }
    if let Some(v) = c.version_consistency.as_deref() {
        at.one_of(v, enums::VERSION_CONSISTENCY, "versionConsistency")?;
    }
    if t.mode == NetworkMode::Awsvpc && c.hostname.is_some() {
        return Err(at.err(
            "hostname is not supported when networkMode is awsvpc; the task's network interface sets the hostname",
        ));
    }
    extra_hosts(&at, c.extra_hosts.as_deref().unwrap_or_default(), t.mode)?;
    if c.docker_labels
        .as_ref()
        .is_some_and(|m| m.keys().any(String::is_empty))
    {
        return Err(at.err("dockerLabels keys must not be empty"));
    }
    ulimits(&at, c.ulimits.as_deref().unwrap_or_default())?;
    if let Some(l) = &c.log_configuration {
        let driver = at.required_str(&l.log_driver, "logConfiguration.logDriver")?;
        at.one_of(driver, enums::LOG_DRIVER, "logConfiguration.logDriver")?;
        if l.options
            .as_ref()
            .is_some_and(|m| m.keys().any(String::is_empty))
        {
            return Err(at.err("logConfiguration.options keys must not be empty"));
        }
        secrets(
            &at,
            l.secret_options.as_deref().unwrap_or_default(),
            "logConfiguration.secretOptions",
        )?;
    }
    if let Some(f) = &c.firelens_configuration {
        let ty = at.required_str(&f.r#type, "firelensConfiguration.type")?;
        at.one_of(
            ty,
            enums::FIRELENS_CONFIGURATION_TYPE,
            "firelensConfiguration.type",
        )?;
    }
    if let Some(hc) = &c.health_check {
        out.health_check = Some(health_check(&at, hc)?);
    }
    if let Some(rp) = &c.restart_policy {
        at.required(&rp.enabled, "restartPolicy.enabled")?;
        at.list_len(
            rp.ignored_exit_codes.as_deref().unwrap_or_default(),
            "restartPolicy.ignoredExitCodes",
            MAX_IGNORED_EXIT_CODES,
        )?;
        if let Some(p) = rp.restart_attempt_period {
            at.range(
                p,
                (60, 1800),
                "restartPolicy.restartAttemptPeriod",
                " seconds",
            )?;
        }
    }
    system_controls(&at, c.system_controls.as_deref().unwrap_or_default(), t)?;
    resource_requirements(
        &at,
        c.resource_requirements.as_deref().unwrap_or_default(),
        t.accelerators,
    )?;
    if let Some(lp) = &c.linux_parameters {
        linux_parameters(&at, lp)?;
    }
    let specs = c.credential_specs.as_deref().unwrap_or_default();
    at.list_len(specs, "credentialSpecs", 1)?;
    for s in specs {
        if !(s.starts_with("credentialspec:") || s.starts_with("credentialspecdomainless:")) {
            return Err(at.err(format!(
                "credentialSpecs entry '{}' must start with 'credentialspec:' or 'credentialspecdomainless:' followed by an ARN",
                shorten(s)
            )));
        }
    }
    Ok(out)
}

/// `repository-url/image:tag` or `repository-url/image@sha256:<64 hex>`.
pub(super) fn image(at: &At, image: Option<&str>) -> Result<(), Error> {
    let image = match image {
        Some(i) if !i.is_empty() => i,
        _ => {
            return Err(at.err(
                "Container.image should not be null or empty; give an image such as 'nginx:1.27' or 'registry.example.com/team/app:v1'",
            ));
        }
    };
    let (repo, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if repo.is_empty() {
        return Err(at.err(format!(
            "image '{}' has no repository before '@'",
            shorten(image)
        )));
    }
    let n = repo.chars().count();
    if n > 255 {
        return Err(at.err(format!(
            "image is {n} characters; at most 255 are allowed (not counting an @digest)"
        )));
    }
    if !repo
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b'/' | b'#'))
    {
        return Err(at.err(format!(
            "image '{}' is invalid: use letters, numbers, hyphens, underscores, colons, periods, forward slashes and number signs (#)",
            shorten(image)
        )));
    }
    if let Some(d) = digest {
        let ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(at.err(format!(
                "image digest '{}' is invalid: after '@' give 'sha256:' followed by exactly 64 hexadecimal characters",
                shorten(d)
            )));
        }
    }
    Ok(())
}

pub(super) fn memory(
    at: &At,
    name: &str,
    c: &api::ContainerDefinition,
    task_memory: Option<i64>,
) -> Result<(), Error> {
    for (what, v) in [
        ("memory", c.memory),
        ("memoryReservation", c.memory_reservation),
    ] {
        if let Some(v) = v
            && v < MIN_CONTAINER_MEMORY
        {
            return Err(at.err(format!(
                "{what} ({v}) must be at least {MIN_CONTAINER_MEMORY} MiB, the least Docker gives a container"
            )));
        }
    }
    match (c.memory, c.memory_reservation) {
        (Some(m), Some(r)) if m < r => Err(at.err(format!(
            "memory ({m}) must be greater than or equal to memoryReservation ({r}): memory is the hard limit, memoryReservation the soft limit reserved for placement"
        ))),
        (None, None) if task_memory.is_none() => Err(Error::client(format!(
            "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified (or set the task-level 'memory')."
        ))),
        _ => Ok(()),
    }
}

pub(super) fn environment(
    at: &At,
    c: &api::ContainerDefinition,
) -> Result<Vec<api::KeyValuePair>, Error> {
    let env = c.environment.as_deref().unwrap_or_default();
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, kv) in env.iter().enumerate() {
        let name = at.required_str(&kv.name, &format!("environment[{i}].name"))?;
        if !seen.insert(name) {
            return Err(at.err(format!(
                "environment variable '{}' is set more than once; names must be unique",
                shorten(name)
            )));
        }
    }
    let files = c.environment_files.as_deref().unwrap_or_default();
    at.list_len(files, "environmentFiles", MAX_ENVIRONMENT_FILES)?;
    for (i, f) in files.iter().enumerate() {
        let ty = at.required_str(&f.r#type, &format!("environmentFiles[{i}].type"))?;
        at.one_of(
            ty,
            enums::ENVIRONMENT_FILE_TYPE,
            &format!("environmentFiles[{i}].type"),
        )?;
        at.required_str(&f.value, &format!("environmentFiles[{i}].value"))?;
    }
    Ok(env.to_vec())
}

pub(super) fn secrets(at: &At, secrets: &[api::Secret], what: &str) -> Result<(), Error> {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, s) in secrets.iter().enumerate() {
        let name = at.required_str(&s.name, &format!("{what}[{i}].name"))?;
        at.required_str(&s.value_from, &format!("{what}[{i}].valueFrom"))?;
        if !seen.insert(name) {
            return Err(at.err(format!(
                "{what} name '{}' is used more than once; names must be unique",
                shorten(name)
            )));
        }
    }
    Ok(())
}

pub(super) fn resource_requirements(
    at: &At,
    rrs: &[api::ResourceRequirement],
    accelerators: &[&str],
) -> Result<(), Error> {
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, r) in rrs.iter().enumerate() {
        let ty = at.required_str(&r.r#type, &format!("resourceRequirements[{i}].type"))?;
        at.one_of(
            ty,
            enums::RESOURCE_TYPE,
            &format!("resourceRequirements[{i}].type"),
        )?;
        let value = at.required_str(&r.value, &format!("resourceRequirements[{i}].value"))?;
        match ty {
            "GPU" => {
                let count_ok = value.bytes().all(|b| b.is_ascii_digit())
                    && value.parse::<u32>().is_ok_and(|n| n > 0);
                if value != "ALL" && !count_ok {
                    return Err(at.err(format!(
                        "resourceRequirements GPU value '{}' is invalid: give a whole number of GPUs of 1 or more, or ALL",
                        shorten(value)
                    )));
                }
            }
            "NeuronDevice" if value != "ALL" => {
                return Err(at.err(format!(
                    "resourceRequirements NeuronDevice value '{}' is invalid: the only allowed value is ALL",
                    shorten(value)
                )));
            }
            "InferenceAccelerator" if !accelerators.contains(&value) => {
                return Err(at.err(format!(
                    "resourceRequirements InferenceAccelerator value '{}' does not match the deviceName of any of the task's inferenceAccelerators ({})",
                    shorten(value),
                    list_names(accelerators)
                )));
            }
            _ => {}
        }
        if ty != "InferenceAccelerator" && !seen.insert(ty) {
            return Err(at.err(format!(
                "resourceRequirements lists {ty} more than once; give it once"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::validate::task_definition::tests::*;

    #[test]
    fn image_rules() {
        client(
            one(json!({"image": null})),
            &[
                "Container 'web'",
                "Container.image should not be null or empty",
            ],
        );
        client(one(json!({"image": ""})), &["Container 'web'", "image"]);
        // Before anything berth cannot provide is refused.
        client(
            task(
                vec![ctr("web", json!({"image": null}))],
                json!({"requiresCompatibilities": ["FARGATE"]}),
            ),
            &[
                "Container 'web'",
                "Container.image should not be null or empty",
            ],
        );
        client(
            one(json!({"image": "a".repeat(256)})),
            &["Container 'web'", "256 characters", "255"],
        );
        ok(one(json!({"image": "a".repeat(255)})));
        client(
            one(json!({"image": "nginx latest"})),
            &["Container 'web'", "image 'nginx latest'"],
        );
        client(
            one(json!({"image": "nginx@md5:abc"})),
            &["Container 'web'", "sha256"],
        );
        client(
            one(json!({"image": format!("nginx@sha256:{}", &DIGEST[1..])})),
            &["64 hexadecimal"],
        );
        client(one(json!({"image": "@sha256:0"})), &["no repository"]);
        ok(one(
            json!({"image": format!("{}@sha256:{DIGEST}", "r".repeat(255))}),
        ));
        ok(one(json!({"image": "localhost:5000/team/app_x:v1.2-rc#3"})));
    }

    #[test]
    fn container_cpu_must_not_be_negative() {
        client(
            one(json!({"cpu": -1})),
            &["Container 'web'", "cpu (-1)", "0 or more"],
        );
        ok(one(json!({"cpu": 0})));
        ok(one(json!({"cpu": 1_000_000})));
    }

    #[test]
    fn memory_limits() {
        client(
            one(json!({"memory": 5})),
            &["Container 'web'", "memory (5)", "at least 6 MiB"],
        );
        client(
            one(json!({"memory": null, "memoryReservation": 4})),
            &["Container 'web'", "memoryReservation (4)", "6 MiB"],
        );
        client(one(json!({"memory": 0})), &["memory (0)"]);
        client(
            one(json!({"memory": 64, "memoryReservation": 128})),
            &[
                "Container 'web'",
                "memory (64) must be greater than or equal to memoryReservation (128)",
            ],
        );
        ok(one(json!({"memory": 128, "memoryReservation": 128})));
        ok(one(json!({"memory": 6})));
        ok(one(json!({"memory": null, "memoryReservation": 6})));
    }

    #[test]
    fn memory_or_reservation_is_required_without_task_memory() {
        client(
            task(
                vec![ctr("web", json!({})), ctr("x", json!({"memory": null}))],
                json!({}),
            ),
            &[
                "Invalid setting for container 'x'. At least one of 'memory' or 'memoryReservation' must be specified",
            ],
        );
        let t = ok(task(
            vec![ctr("web", json!({"memory": null}))],
            json!({"memory": "512"}),
        ));
        assert_eq!(t.requirements.memory, 512);
    }

    #[test]
    fn essential_defaults_to_true_and_one_is_required() {
        client(
            task(
                vec![
                    ctr("a", json!({"essential": false})),
                    ctr("b", json!({"essential": false})),
                ],
                json!({}),
            ),
            &["At least one container must be essential", "'a', 'b'"],
        );
        let t = ok(task(
            vec![ctr("a", json!({"essential": false})), ctr("b", json!({}))],
            json!({}),
        ));
        assert_eq!(containers(&t)[1].essential, Some(true));
    }

    #[test]
    fn environment_and_environment_files() {
        client(
            one(json!({"environment": [{"value": "x"}]})),
            &["Container 'web'", "environment[0].name"],
        );
        client(
            one(json!({"environment": [{"name": "", "value": "x"}]})),
            &["environment[0].name"],
        );
        client(
            one(json!({"environment": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]})),
            &["Container 'web'", "environment variable 'A'", "unique"],
        );
        ok(one(json!({"environment": [{"name": "A"}]})));
        client(
            one(json!({"environmentFiles": [{"type": "s3"}]})),
            &["Container 'web'", "environmentFiles[0].value"],
        );
        client(
            one(json!({"environmentFiles": [{"value": "arn:aws:s3:::b/x.env"}]})),
            &["environmentFiles[0].type"],
        );
        client(
            one(json!({"environmentFiles": [{"type": "http", "value": "x"}]})),
            &["'http'", "s3"],
        );
        let files: Vec<Value> = (0..11)
            .map(|i| json!({"type": "s3", "value": format!("arn:aws:s3:::b/{i}.env")}))
            .collect();
        client(
            one(json!({"environmentFiles": files})),
            &["environmentFiles", "at most 10"],
        );
    }

    #[test]
    fn secrets_rules() {
        client(
            one(json!({"secrets": [{"name": "S"}]})),
            &["Container 'web'", "secrets[0].valueFrom"],
        );
        client(
            one(json!({"secrets": [{"valueFrom": "arn:x"}]})),
            &["secrets[0].name"],
        );
        client(
            one(
                json!({"secrets": [{"name": "S", "valueFrom": "a"}, {"name": "S", "valueFrom": "b"}]}),
            ),
            &["secrets name 'S'", "unique"],
        );
        let t = ok(one(
            json!({"secrets": [{"name": "S", "valueFrom": "arn:aws:ssm:eu-west-1:1:parameter/s"}]}),
        ));
        assert!(attribute_names(&t).contains(&"ecs.capability.secrets.ssm.environment-variables"));
    }

    #[test]
    fn log_configuration_rules() {
        client(
            one(json!({"logConfiguration": {}})),
            &["Container 'web'", "logConfiguration.logDriver"],
        );
        client(
            one(json!({"logConfiguration": {"logDriver": "loki"}})),
            &["'loki'", "awslogs"],
        );
        client(
            one(json!({"logConfiguration": {"logDriver": "json-file", "options": {"": "x"}}})),
            &["options keys"],
        );
        client(
            one(
                json!({"logConfiguration": {"logDriver": "splunk", "secretOptions": [{"name": "token"}]}}),
            ),
            &["logConfiguration.secretOptions[0].valueFrom"],
        );
        client(
            one(json!({"logConfiguration": {"logDriver": "awsfirelens"}})),
            &["Container 'web'", "awsfirelens", "firelensConfiguration"],
        );
        client(
            one(json!({"firelensConfiguration": {"type": "vector"}})),
            &["Container 'web'", "'vector'", "fluentd, fluentbit"],
        );
        client(
            one(json!({"firelensConfiguration": {}})),
            &["firelensConfiguration.type"],
        );
        ok(task(
            vec![
                ctr(
                    "web",
                    json!({"logConfiguration": {"logDriver": "awsfirelens", "options": {"Name": "stdout"}}}),
                ),
                ctr(
                    "router",
                    json!({"firelensConfiguration": {"type": "fluentbit"}}),
                ),
            ],
            json!({}),
        ));
    }

    #[test]
    fn timeouts_are_not_negative() {
        client(
            one(json!({"stopTimeout": -1})),
            &["Container 'web'", "stopTimeout (-1)"],
        );
        client(
            one(json!({"startTimeout": -5})),
            &["Container 'web'", "startTimeout (-5)"],
        );
        ok(one(json!({"startTimeout": 0, "stopTimeout": 3600})));
    }

    #[test]
    fn restart_policy_rules() {
        let rp = |v: Value| one(json!({"restartPolicy": v}));
        ok(rp(
            json!({"enabled": true, "ignoredExitCodes": [0, 137], "restartAttemptPeriod": 60}),
        ));
        ok(rp(json!({"enabled": false, "restartAttemptPeriod": 1800})));
        client(
            rp(json!({"ignoredExitCodes": [1]})),
            &["Container 'web'", "restartPolicy.enabled"],
        );
        client(
            rp(json!({"enabled": true, "restartAttemptPeriod": 59})),
            &["restartAttemptPeriod (59)", "60 and 1800"],
        );
        client(
            rp(json!({"enabled": true, "restartAttemptPeriod": 1801})),
            &["restartAttemptPeriod (1801)"],
        );
        let codes: Vec<i32> = (0..51).collect();
        client(
            rp(json!({"enabled": true, "ignoredExitCodes": codes})),
            &["ignoredExitCodes", "at most 50"],
        );
    }

    #[test]
    fn resource_requirements_rules() {
        let rr = |v: Value, extra: Value| {
            task(vec![ctr("web", json!({"resourceRequirements": v}))], extra)
        };
        ok(rr(json!([{"type": "GPU", "value": "2"}]), json!({})));
        ok(rr(json!([{"type": "GPU", "value": "ALL"}]), json!({})));
        client(
            rr(json!([{"type": "TPU", "value": "1"}]), json!({})),
            &["Container 'web'", "'TPU'", "GPU, InferenceAccelerator"],
        );
        client(
            rr(json!([{"value": "1"}]), json!({})),
            &["resourceRequirements[0].type"],
        );
        client(
            rr(json!([{"type": "GPU"}]), json!({})),
            &["resourceRequirements[0].value"],
        );
        for bad in ["0", "-1", "1.5", "two", "+1"] {
            client(
                rr(json!([{"type": "GPU", "value": bad}]), json!({})),
                &["Container 'web'", "GPU value", "whole number"],
            );
        }
        client(
            rr(
                json!([{"type": "GPU", "value": "1"}, {"type": "GPU", "value": "1"}]),
                json!({}),
            ),
            &["GPU more than once"],
        );
        client(
            rr(json!([{"type": "NeuronDevice", "value": "2"}]), json!({})),
            &["NeuronDevice", "ALL"],
        );
        client(
            rr(
                json!([{"type": "InferenceAccelerator", "value": "acc2"}]),
                json!({"inferenceAccelerators": [{"deviceName": "acc1", "deviceType": "eia2.medium"}]}),
            ),
            &["Container 'web'", "'acc2'", "'acc1'"],
        );
        ok(rr(
            json!([{"type": "InferenceAccelerator", "value": "acc1"}]),
            json!({"inferenceAccelerators": [{"deviceName": "acc1", "deviceType": "eia2.medium"}]}),
        ));
        let neuron = json!({"resourceRequirements": [{"type": "NeuronDevice", "value": "ALL"}]});
        client(
            task(vec![ctr("a", neuron.clone()), ctr("b", neuron)], json!({})),
            &["Only one container", "NeuronDevice", "'a', 'b'"],
        );
    }

    #[test]
    fn labels_extra_hosts_and_hostname() {
        client(
            one(json!({"dockerLabels": {"": "x"}})),
            &["Container 'web'", "dockerLabels keys"],
        );
        ok(one(
            json!({"dockerLabels": {"team": "web"}, "hostname": "web", "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}]}),
        ));
        client(
            one(json!({"extraHosts": [{"hostname": "db"}]})),
            &["Container 'web'", "extraHosts[0].ipAddress"],
        );
        client(
            one(json!({"extraHosts": [{"ipAddress": "10.0.0.5"}]})),
            &["extraHosts[0].hostname"],
        );
        let awsvpc = |extra: Value| task(vec![ctr("web", extra)], json!({"networkMode": "awsvpc"}));
        client(
            awsvpc(json!({"extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}]})),
            &["Container 'web'", "extraHosts", "awsvpc"],
        );
        client(
            awsvpc(json!({"hostname": "web"})),
            &["Container 'web'", "hostname", "awsvpc"],
        );
    }

    #[test]
    fn other_container_members() {
        client(
            one(json!({"credentialSpecs": ["credentialspec:a", "credentialspec:b"]})),
            &["Container 'web'", "credentialSpecs", "at most 1"],
        );
        client(
            one(json!({"credentialSpecs": ["arn:aws:s3:::b/spec.json"]})),
            &["credentialspec:"],
        );
        ok(one(
            json!({"credentialSpecs": ["credentialspecdomainless:arn:aws:s3:::b/spec.json"]}),
        ));
        client(
            one(json!({"versionConsistency": "always"})),
            &["Container 'web'", "'always'", "enabled, disabled"],
        );
        client(
            one(json!({"repositoryCredentials": {}})),
            &[
                "Container 'web'",
                "repositoryCredentials.credentialsParameter",
            ],
        );
        let t = ok(one(
            json!({"repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:eu-west-1:1:secret:r"}}),
        ));
        assert!(
            attribute_names(&t)
                .contains(&"ecs.capability.private-registry-authentication.secretsmanager")
        );
    }
}
