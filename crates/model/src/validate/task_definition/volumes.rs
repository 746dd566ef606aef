//! Storage: the task's `volumes` (bind/host, Docker, EFS, S3 Files and FSx, each with its
//! own members and defaults such as Docker `scope`), and a container's `mountPoints` and
//! `volumesFrom`, which must name a volume or container of the same task.

use std::collections::HashSet;

use berth_api::types::{self as api, enums};

use super::{At, NAME_RULE, is_name, list_names};
use crate::error::Error;
use crate::validate::shorten;

pub(super) fn volumes(vols: &[api::Volume]) -> Result<Vec<api::Volume>, Error> {
    let task = At::task();
    let mut out: Vec<api::Volume> = Vec::with_capacity(vols.len());
    let mut at_launch = 0;
    for (i, v) in vols.iter().enumerate() {
        let name = match v.name.as_deref() {
            Some(n) if !n.is_empty() => n,
            _ => {
                return Err(task.err(format!(
                    "volumes[{i}].name is required so containers can mount the volume; {NAME_RULE}"
                )));
            }
        };
        if !is_name(name) {
            return Err(task.err(format!(
                "Volume name '{}' is invalid: {NAME_RULE}",
                shorten(name)
            )));
        }
        if out.iter().any(|o| o.name.as_deref() == Some(name)) {
            return Err(task.err(format!(
                "Volume name '{name}' is used by more than one volume; volume names must be unique"
            )));
        }
        let at = At(format!("Volume '{name}': "));
        let kinds = [
            v.host.is_some(),
            v.docker_volume_configuration.is_some(),
            v.efs_volume_configuration.is_some(),
            v.s3files_volume_configuration.is_some(),
            v.fsx_windows_file_server_volume_configuration.is_some(),
            v.configured_at_launch == Some(true),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(at.err(
                "give only one of host, dockerVolumeConfiguration, efsVolumeConfiguration, \
                 s3filesVolumeConfiguration, fsxWindowsFileServerVolumeConfiguration or configuredAtLaunch",
            ));
        }
        if v.configured_at_launch == Some(true) {
            at_launch += 1;
            if at_launch > 1 {
                return Err(
                    at.err("only one volume of a task definition can be configuredAtLaunch")
                );
            }
        }
        let mut nv = v.clone();
        if let Some(host) = &v.host
            && let Some(p) = host.source_path.as_deref().filter(|p| !p.is_empty())
        {
            at.absolute(p, "host.sourcePath")?;
        }
        if let Some(d) = &v.docker_volume_configuration {
            let scope = d.scope.as_deref().unwrap_or("task");
            at.one_of(scope, enums::SCOPE, "dockerVolumeConfiguration.scope")?;
            if d.autoprovision == Some(true) && scope != "shared" {
                return Err(at.err(
                    "dockerVolumeConfiguration.autoprovision can only be true when scope is 'shared'; \
                     task-scoped volumes are always created with the task",
                ));
            }
            if d.driver.as_deref() == Some("") {
                return Err(at.err("dockerVolumeConfiguration.driver must not be empty; omit it for the local driver"));
            }
            for (what, map) in [("driverOpts", &d.driver_opts), ("labels", &d.labels)] {
                if map.as_ref().is_some_and(|m| m.keys().any(String::is_empty)) {
                    return Err(at.err(format!(
                        "dockerVolumeConfiguration.{what} keys must not be empty"
                    )));
                }
            }
            if let Some(nd) = nv.docker_volume_configuration.as_mut() {
                nd.scope = Some(scope.to_owned());
            }
        }
        if let Some(e) = &v.efs_volume_configuration {
            at.required_str(&e.file_system_id, "efsVolumeConfiguration.fileSystemId")?;
            let transit = e.transit_encryption.as_deref().unwrap_or("DISABLED");
            at.one_of(
                transit,
                enums::EFS_TRANSIT_ENCRYPTION,
                "efsVolumeConfiguration.transitEncryption",
            )?;
            if let Some(p) = e.transit_encryption_port {
                at.range(
                    p,
                    (1, 65535),
                    "efsVolumeConfiguration.transitEncryptionPort",
                    "",
                )?;
            }
            if let Some(auth) = &e.authorization_config {
                let iam = auth.iam.as_deref().unwrap_or("DISABLED");
                at.one_of(
                    iam,
                    enums::EFS_AUTHORIZATION_CONFIG_IAM,
                    "efsVolumeConfiguration.authorizationConfig.iam",
                )?;
                let access_point = auth
                    .access_point_id
                    .as_deref()
                    .is_some_and(|a| !a.is_empty());
                if (iam == "ENABLED" || access_point) && transit != "ENABLED" {
                    return Err(at.err(
                        "efsVolumeConfiguration.transitEncryption must be ENABLED when IAM authorization or an access point is used",
                    ));
                }
                if access_point && !matches!(e.root_directory.as_deref(), None | Some("/")) {
                    return Err(at.err(
                        "efsVolumeConfiguration.rootDirectory must be omitted or '/' when an access point is used; the access point sets the path",
                    ));
                }
            }
        }
        if let Some(s) = &v.s3files_volume_configuration {
            at.required_str(
                &s.file_system_arn,
                "s3filesVolumeConfiguration.fileSystemArn",
            )?;
            if let Some(p) = s.transit_encryption_port {
                at.range(
                    p,
                    (1, 65535),
                    "s3filesVolumeConfiguration.transitEncryptionPort",
                    "",
                )?;
            }
            if s.access_point_arn.as_deref().is_some_and(|a| !a.is_empty())
                && !matches!(s.root_directory.as_deref(), None | Some("/"))
            {
                return Err(at.err(
                    "s3filesVolumeConfiguration.rootDirectory must be omitted or '/' when an access point is used",
                ));
            }
        }
        if let Some(f) = &v.fsx_windows_file_server_volume_configuration {
            at.required_str(
                &f.file_system_id,
                "fsxWindowsFileServerVolumeConfiguration.fileSystemId",
            )?;
            at.required_str(
                &f.root_directory,
                "fsxWindowsFileServerVolumeConfiguration.rootDirectory",
            )?;
            let auth = at.required(
                &f.authorization_config,
                "fsxWindowsFileServerVolumeConfiguration.authorizationConfig",
            )?;
            at.required_str(
                &auth.credentials_parameter,
                "fsxWindowsFileServerVolumeConfiguration.authorizationConfig.credentialsParameter",
            )?;
            at.required_str(
                &auth.domain,
                "fsxWindowsFileServerVolumeConfiguration.authorizationConfig.domain",
            )?;
        }
        out.push(nv);
    }
    Ok(out)
}

pub(super) fn mount_points(
    at: &At,
    mps: &[api::MountPoint],
    volumes: &[&str],
) -> Result<Vec<api::MountPoint>, Error> {
    let mut paths: HashSet<&str> = HashSet::new();
    for (i, mp) in mps.iter().enumerate() {
        let src = at.required_str(&mp.source_volume, &format!("mountPoints[{i}].sourceVolume"))?;
        if !volumes.contains(&src) {
            return Err(at.err(format!(
                "mountPoints[{i}].sourceVolume '{}' is not a volume of this task definition; define it under volumes or use one of {}",
                shorten(src),
                list_names(volumes)
            )));
        }
        let path = at.required_str(
            &mp.container_path,
            &format!("mountPoints[{i}].containerPath"),
        )?;
        at.absolute(path, &format!("mountPoints[{i}].containerPath"))?;
        if !paths.insert(path) {
            return Err(at.err(format!(
                "containerPath '{}' is used by more than one mount point; mount each path once",
                shorten(path)
            )));
        }
    }
    Ok(mps.to_vec())
}

pub(super) fn volumes_from(
    at: &At,
    me: &str,
    vfs: &[api::VolumeFrom],
    names: &[&str],
) -> Result<Vec<api::VolumeFrom>, Error> {
    for (i, vf) in vfs.iter().enumerate() {
        let src = at.required_str(
            &vf.source_container,
            &format!("volumesFrom[{i}].sourceContainer"),
        )?;
        if src == me {
            return Err(at.err(
                "volumesFrom names the container itself; name another container of the task",
            ));
        }
        if !names.contains(&src) {
            return Err(at.err(format!(
                "volumesFrom[{i}].sourceContainer '{}' is not a container of this task definition; use one of {}",
                shorten(src),
                list_names(names)
            )));
        }
    }
    Ok(vfs.to_vec())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::validate::task_definition::tests::*;

    fn vols(vs: Value) -> Value {
        task(vec![ctr("web", json!({}))], json!({"volumes": vs}))
    }

    #[test]
    fn volume_names_and_kinds() {
        client(
            vols(json!([{"host": {}}])),
            &["volumes[0].name is required"],
        );
        client(
            vols(json!([{"name": "my data"}])),
            &["Volume name 'my data'", "letters, numbers"],
        );
        client(
            vols(json!([{"name": "d"}, {"name": "d"}])),
            &["Volume name 'd'", "unique"],
        );
        client(
            vols(json!([{"name": "d", "host": {"sourcePath": "srv/data"}}])),
            &["Volume 'd'", "host.sourcePath 'srv/data'", "absolute"],
        );
        ok(vols(
            json!([{"name": "d", "host": {"sourcePath": "/srv/data"}}, {"name": "e", "host": {}}, {"name": "f"}]),
        ));
        ok(vols(
            json!([{"name": "w", "host": {"sourcePath": "C:\\data"}}]),
        ));
        client(
            vols(json!([{"name": "d", "host": {}, "dockerVolumeConfiguration": {}}])),
            &["Volume 'd'", "only one of host, dockerVolumeConfiguration"],
        );
        client(
            vols(
                json!([{"name": "a", "configuredAtLaunch": true}, {"name": "b", "configuredAtLaunch": true}]),
            ),
            &["Volume 'b'", "only one volume", "configuredAtLaunch"],
        );
    }

    #[test]
    fn docker_efs_s3files_and_fsx_volumes() {
        client(
            vols(json!([{"name": "d", "dockerVolumeConfiguration": {"scope": "global"}}])),
            &["Volume 'd'", "'global'", "task, shared"],
        );
        client(
            vols(json!([{"name": "d", "dockerVolumeConfiguration": {"autoprovision": true}}])),
            &["Volume 'd'", "autoprovision", "'shared'"],
        );
        client(
            vols(json!([{"name": "d", "dockerVolumeConfiguration": {"driver": ""}}])),
            &["driver must not be empty"],
        );
        client(
            vols(json!([{"name": "d", "dockerVolumeConfiguration": {"labels": {"": "x"}}}])),
            &["dockerVolumeConfiguration.labels keys"],
        );
        let t = ok(vols(
            json!([{"name": "d", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true, "driver": "rexray/ebs"}}]),
        ));
        assert!(attribute_names(&t).contains(&"ecs.capability.docker-plugin.rexray/ebs"));

        client(
            vols(json!([{"name": "e", "efsVolumeConfiguration": {}}])),
            &["Volume 'e'", "efsVolumeConfiguration.fileSystemId"],
        );
        client(
            vols(
                json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryption": "ON"}}]),
            ),
            &["transitEncryption", "ENABLED, DISABLED"],
        );
        client(
            vols(
                json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "authorizationConfig": {"iam": "ENABLED"}}}]),
            ),
            &["Volume 'e'", "transitEncryption must be ENABLED"],
        );
        client(
            vols(
                json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryption": "ENABLED", "rootDirectory": "/x", "authorizationConfig": {"accessPointId": "fsap-1"}}}]),
            ),
            &["rootDirectory must be omitted or '/'"],
        );
        client(
            vols(
                json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryptionPort": 0}}]),
            ),
            &["transitEncryptionPort (0)"],
        );
        let t = ok(vols(
            json!([{"name": "e", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryption": "ENABLED", "authorizationConfig": {"iam": "ENABLED", "accessPointId": "fsap-1"}}}]),
        ));
        assert!(attribute_names(&t).contains(&"ecs.capability.efsAuth"));

        client(
            vols(json!([{"name": "s", "s3filesVolumeConfiguration": {}}])),
            &["Volume 's'", "fileSystemArn"],
        );
        client(
            vols(
                json!([{"name": "f", "fsxWindowsFileServerVolumeConfiguration": {"fileSystemId": "fs-1", "rootDirectory": "share"}}]),
            ),
            &["Volume 'f'", "authorizationConfig"],
        );
        ok(vols(
            json!([{"name": "f", "fsxWindowsFileServerVolumeConfiguration": {"fileSystemId": "fs-1", "rootDirectory": "share", "authorizationConfig": {"credentialsParameter": "arn:x", "domain": "corp.example.com"}}}]),
        ));
    }

    #[test]
    fn mount_points_and_volumes_from() {
        let with = |c: Value| {
            task(
                vec![c, ctr("side", json!({}))],
                json!({"volumes": [{"name": "data"}]}),
            )
        };
        ok(with(ctr(
            "web",
            json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}]}),
        )));
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"sourceVolume": "logs", "containerPath": "/logs"}]}),
            )),
            &["Container 'web'", "sourceVolume 'logs'", "'data'"],
        );
        client(
            task(
                vec![ctr(
                    "web",
                    json!({"mountPoints": [{"sourceVolume": "logs", "containerPath": "/logs"}]}),
                )],
                json!({}),
            ),
            &["(none defined)"],
        );
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"containerPath": "/x"}]}),
            )),
            &["Container 'web'", "mountPoints[0].sourceVolume"],
        );
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"sourceVolume": "data"}]}),
            )),
            &["Container 'web'", "mountPoints[0].containerPath"],
        );
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "data"}]}),
            )),
            &["Container 'web'", "containerPath 'data'", "absolute"],
        );
        client(
            with(ctr(
                "web",
                json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "/d"}, {"sourceVolume": "data", "containerPath": "/d"}]}),
            )),
            &["containerPath '/d'", "more than one mount point"],
        );
        ok(with(ctr(
            "web",
            json!({"volumesFrom": [{"sourceContainer": "side"}]}),
        )));
        client(
            with(ctr(
                "web",
                json!({"volumesFrom": [{"sourceContainer": "nope"}]}),
            )),
            &["Container 'web'", "sourceContainer 'nope'", "'side'"],
        );
        client(
            with(ctr(
                "web",
                json!({"volumesFrom": [{"sourceContainer": "web"}]}),
            )),
            &["Container 'web'", "itself"],
        );
        client(
            with(ctr("web", json!({"volumesFrom": [{}]}))),
            &["volumesFrom[0].sourceContainer"],
        );
    }
}
