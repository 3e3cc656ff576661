//! Restore points: before a bootstrap job (schema migrations) replaces a
//! running generation, a consistent dump of the service's databases, taken
//! by its `x-kolla.restore_point` commands inside the database service's
//! live container on the node. Each is kept on the node in a never-started
//! container of its own, `<svc>.kolla-restore-<generation>` (the dump in its
//! anonymous volume; its labels say the service, the generation whose
//! schema it holds, its size and time, and how to load it back), so
//! `rollback --restore-db` reads no compose file and everything about a
//! restore point is seen with one list call. Their names carry no role the
//! deployer knows, so swaps, recovery and `ps` never take them for a
//! service's containers; only `destroy --purge-data` removes them besides
//! the pruning that follows the kept generations.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::context::NodeRun;
use super::error::DeployError;
use super::fault::{self, FaultPoint};
use super::labels::{self, Role};
use super::owned;
use crate::config::compose::RestorePointSpec;
use crate::container::ContainerSpec;
use crate::engine::{Engine, EngineError};

/// On a restore point: the project it belongs to (what lists them).
pub const PROJECT_LABEL: &str = "kolla.restore-point";
/// The database service whose container dumped it and loads it back.
pub const DB_SERVICE: &str = "kolla.restore-point-service";
/// The command that loads it back (JSON list), reading `$KOLLA_RESTORE_POINT`.
pub const RESTORE: &str = "kolla.restore-point-restore";
pub const BYTES: &str = "kolla.restore-point-bytes";
pub const TAKEN: &str = "kolla.restore-point-taken";

/// The dump's place inside a restore point's container (its volume).
const FOLDER: &str = "/restore-point";
const FILE: &str = "/restore-point/dump";
/// Where the dump is put in the database container for the restore.
const STAGED: &str = "/tmp/kolla-restore-point";
const NAME_INFIX: &str = ".kolla-restore-";

/// A restore point on a node.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorePoint {
    pub id: String,
    pub name: String,
    pub service: String,
    /// The generation whose schema the dump holds: the one a rollback to it
    /// restores.
    pub generation: u64,
    pub db_service: String,
    pub restore: Vec<String>,
    pub bytes: u64,
    /// Seconds since the Unix epoch.
    pub taken: u64,
}

pub fn name(prefix: &str, service: &str, generation: u64) -> String {
    format!("{prefix}{service}{NAME_INFIX}{generation}")
}

/// The restore points of `project` on a node, by service and generation.
pub async fn list(engine: &Engine, project: &str) -> Result<Vec<RestorePoint>, EngineError> {
    Ok(scan(engine, project).await?.0)
}

/// The restore points of `project` on a node, by service and generation,
/// and apart from them the dumps a killed run left half written (their
/// containers carry the `.writing` name still): never restore points, only
/// containers to remove.
pub async fn scan(
    engine: &Engine,
    project: &str,
) -> Result<(Vec<RestorePoint>, Vec<RestorePoint>), EngineError> {
    let listing = engine
        .list_containers(&format!("{PROJECT_LABEL}={project}"))
        .await?;
    let (points, partial): (Vec<_>, Vec<_>) = listing
        .into_iter()
        .filter_map(|c| {
            let label = |key: &str| c.labels.get(key).cloned().unwrap_or_default();
            let service = label(labels::SERVICE);
            let generation: u64 = label(labels::GENERATION).parse().ok()?;
            let complete = c
                .name
                .ends_with(&format!("{service}{NAME_INFIX}{generation}"));
            let point = RestorePoint {
                id: c.id.clone(),
                name: c.name.clone(),
                generation,
                db_service: label(DB_SERVICE),
                restore: serde_json::from_str(&label(RESTORE)).unwrap_or_default(),
                bytes: label(BYTES).parse().unwrap_or(0),
                taken: label(TAKEN).parse().unwrap_or(0),
                service,
            };
            Some((complete, point))
        })
        .partition(|(complete, _)| *complete);
    let mut points: Vec<RestorePoint> = points.into_iter().map(|(_, p)| p).collect();
    points.sort_by(|a, b| (&a.service, a.generation).cmp(&(&b.service, b.generation)));
    Ok((points, partial.into_iter().map(|(_, p)| p).collect()))
}

/// Of `points`, those of `service` whose generation is none of `kept`
/// (live and kept generations): the ones to prune. Pure.
pub fn beyond_kept<'a>(
    points: &'a [RestorePoint],
    service: &str,
    kept: &[u64],
) -> Vec<&'a RestorePoint> {
    points
        .iter()
        .filter(|p| p.service == service && !kept.contains(&p.generation))
        .collect()
}

/// One node's restore points: taken, found, loaded back and pruned, over
/// its `NodeRun`.
#[derive(Clone, Copy)]
pub struct RestorePoints<'r> {
    run: &'r NodeRun<'r>,
}

impl<'r> RestorePoints<'r> {
    pub fn of(run: &'r NodeRun<'r>) -> Self {
        RestorePoints { run }
    }
}

impl RestorePoints<'_> {
    /// The database service's live container, running, or an error that
    /// says why nothing can be dumped or restored.
    async fn database_container(
        &self,
        service: &str,
        db_service: &str,
    ) -> Result<String, DeployError> {
        let name = labels::container_name(self.run.placement_prefix, db_service, Role::Live);
        match owned::find(self.run.engine, &name, self.run.project, db_service)
            .await
            .map_err(|e| self.run.owned_error(e))?
        {
            Some(db) if db.running => Ok(db.id),
            _ => Err(self.restore_point_error(
                service,
                format!("the database service {db_service} has no running container ({name}) on this node"),
            )),
        }
    }

    pub(super) fn restore_point_error(&self, service: &str, message: String) -> DeployError {
        DeployError::RestorePoint {
            node: self.run.node.to_string(),
            service: service.to_string(),
            message,
        }
    }

    /// Dump `service`'s databases as the restore point of `generation`
    /// (the running one, about to be migrated away from). A restore point
    /// of that generation already there is replaced only once the new one
    /// is complete. `image` is any image on the node (the restore point's
    /// container never runs).
    pub(super) async fn take_restore_point(
        &self,
        service: &str,
        spec: &RestorePointSpec,
        generation: u64,
        image: &str,
    ) -> Result<(), DeployError> {
        let started = Instant::now();
        let db = self.database_container(service, &spec.service).await?;
        let step = format!(
            "taking a restore point of generation {generation} (in {})",
            spec.service
        );
        self.run.steps.status(self.run.node, service, &step);
        let dumped = self
            .run
            .engine
            .exec(&db, &spec.dump, "0", &[])
            .await
            .map_err(|e| self.run.engine_error(e))?;
        if dumped.exit_code != 0 {
            return Err(self.restore_point_error(
                service,
                format!(
                    "the dump: {}",
                    exited(&spec.dump, dumped.exit_code, &dumped.stderr)
                ),
            ));
        }
        fault::point(FaultPoint::Dumped);
        let final_name = self
            .store_dump(service, spec, generation, image, &dumped.stdout)
            .await?;
        self.run.steps.event(
            self.run.node,
            service,
            &format!(
                "restore point {final_name}: {} bytes in {:.1}s",
                dumped.stdout.len(),
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    /// Keep `dump` as the restore point of `service`'s `generation`: written
    /// under a name of its own first, so the one it replaces goes only once
    /// it is complete. Its name.
    async fn store_dump(
        &self,
        service: &str,
        spec: &RestorePointSpec,
        generation: u64,
        image: &str,
        dump: &[u8],
    ) -> Result<String, DeployError> {
        let final_name = name(self.run.placement_prefix, service, generation);
        let writing = format!("{final_name}.writing");
        owned::remove(self.run.engine, &writing, self.run.project, service)
            .await
            .map_err(|e| self.run.owned_error(e))?;
        let restore = serde_json::to_string(&spec.restore).unwrap_or_default();
        let container = ContainerSpec {
            name: writing.clone(),
            image: image.to_string(),
            anonymous_volumes: vec![FOLDER.to_string()],
            // Never run; the engine wants a command all the same.
            entrypoint: Some(vec!["/bin/false".into()]),
            restart_policy: Some("no".into()),
            labels: BTreeMap::from([
                (labels::PROJECT.to_string(), self.run.project.to_string()),
                (labels::SERVICE.to_string(), service.to_string()),
                (labels::GENERATION.to_string(), generation.to_string()),
                (labels::DATA.to_string(), "true".to_string()),
                (PROJECT_LABEL.to_string(), self.run.project.to_string()),
                (DB_SERVICE.to_string(), spec.service.clone()),
                (RESTORE.to_string(), restore),
                (BYTES.to_string(), dump.len().to_string()),
                (TAKEN.to_string(), super::now_secs().to_string()),
            ]),
            ..ContainerSpec::default()
        };
        let err = |e| self.run.engine_error(e);
        let id = self
            .run
            .engine
            .create_container(&container)
            .await
            .map_err(err)?;
        self.run
            .engine
            .put_file(&id, FILE, dump)
            .await
            .map_err(err)?;
        fault::point(FaultPoint::DumpWritten);
        if let Some(old) = owned::find(self.run.engine, &final_name, self.run.project, service)
            .await
            .map_err(|e| self.run.owned_error(e))?
        {
            self.run
                .engine
                .remove_container(&old.id, true)
                .await
                .map_err(err)?;
        }
        self.run
            .engine
            .rename_container(&id, &final_name)
            .await
            .map_err(err)?;
        Ok(final_name)
    }

    /// The restore point of `service`'s `generation` on this node.
    pub async fn restore_point(
        &self,
        service: &str,
        generation: u64,
    ) -> Result<Option<RestorePoint>, DeployError> {
        let points = list(self.run.engine, self.run.project)
            .await
            .map_err(|e| self.run.engine_error(e))?;
        Ok(points
            .into_iter()
            .find(|p| p.service == service && p.generation == generation))
    }

    /// The restore point of `generation` and its dump, or an error saying
    /// why there is none (nothing has been changed yet).
    async fn find_dump(
        &self,
        service: &str,
        generation: u64,
    ) -> Result<(RestorePoint, Vec<u8>), DeployError> {
        let point = self.restore_point(service, generation).await?.ok_or_else(|| {
            self.restore_point_error(
                service,
                format!(
                    "there is no restore point of generation {generation} on this node (one is taken when an upgrade runs the bootstrap job of a service with x-kolla.restore_point; `kolla history` lists them); nothing was changed"
                ),
            )
        })?;
        if point.restore.is_empty() {
            return Err(self.restore_point_error(
                service,
                format!(
                    "{} does not say how to load it (label {RESTORE}); nothing was changed",
                    point.name
                ),
            ));
        }
        let dump = self
            .run
            .engine
            .get_file(&point.id, FILE)
            .await
            .map_err(|e| self.run.engine_error(e))?
            .ok_or_else(|| {
                self.restore_point_error(
                    service,
                    format!("{} holds no dump; nothing was changed", point.name),
                )
            })?;
        Ok((point, dump))
    }

    /// Stage `dump` in the database container `db` and run the restore
    /// point's load command on it; what went wrong, if anything.
    async fn load_dump(&self, db: &str, point: &RestorePoint, dump: &[u8]) -> Option<String> {
        let loaded = match self.run.engine.put_file(db, STAGED, dump).await {
            Ok(()) => self
                .run
                .engine
                .exec(
                    db,
                    &point.restore,
                    "0",
                    &[format!("KOLLA_RESTORE_POINT={STAGED}")],
                )
                .await
                .map(|out| (out.exit_code, out.stderr)),
            Err(e) => Err(e),
        };
        let _ = self
            .run
            .engine
            .exec(db, &["rm".into(), "-f".into(), STAGED.into()], "0", &[])
            .await;
        match loaded {
            Ok((0, _)) => None,
            Ok((code, stderr)) => Some(exited(&point.restore, code, &stderr)),
            Err(e) => Some(e.to_string()),
        }
    }

    /// Load the restore point of `generation` back into the database with
    /// `live` (the generation being rolled back from) stopped, so no code
    /// runs on a half-restored database. Everything that can be checked
    /// is checked before `live` stops; if the load fails, `live` stays
    /// stopped and the error says what to do. The time `live` was down.
    pub(super) async fn restore_database(
        &self,
        service: &str,
        live_id: &str,
        generation: u64,
    ) -> Result<Duration, DeployError> {
        let (point, dump) = self.find_dump(service, generation).await?;
        let db = self.database_container(service, &point.db_service).await?;
        self.run.steps.status(
            self.run.node,
            service,
            "stopping it for the database restore",
        );
        let stopped = Instant::now();
        self.run
            .engine
            .stop_container(live_id, None)
            .await
            .map_err(|e| self.run.engine_error(e))?;
        fault::point(FaultPoint::RestoreStopped);
        let step = format!("restoring the database from {}", point.name);
        self.run.steps.status(self.run.node, service, &step);
        if let Some(failure) = self.load_dump(&db, &point, &dump).await {
            return Err(self.restore_point_error(
                service,
                format!(
                    "loading {} failed: {failure}\n  {service} is stopped and generation {generation} was not started: neither runs on a half-restored database\n  hint: fix what the error says, then run `kolla rollback {service} --restore-db` again (the restore point is kept); `kolla deploy` would start the newer generation again instead",
                    point.name
                ),
            ));
        }
        fault::point(FaultPoint::Restored);
        self.run.steps.event(
            self.run.node,
            service,
            &format!("database restored from {}", point.name),
        );
        Ok(stopped.elapsed())
    }

    /// Remove `service`'s restore points whose generation is no longer
    /// live or kept: retention follows `--retain` through the kept
    /// containers. A failure is reported, never fatal.
    pub(super) async fn prune_restore_points(&self, service: &str, generations: &[u64]) {
        let (points, partial) = match scan(self.run.engine, self.run.project).await {
            Ok(found) => found,
            Err(e) => {
                self.run
                    .steps
                    .note(format!("{}: warning: {e}", self.run.node));
                return;
            }
        };
        // Under the service's lock no dump of it is being written: one
        // named `.writing` is a killed run's.
        let half_written = partial.iter().filter(|p| p.service == service);
        // With no generation left (its containers destroyed), its restore
        // points are the data `destroy` keeps.
        let unkept = match generations {
            [] => Vec::new(),
            _ => beyond_kept(&points, service, generations),
        };
        for point in unkept.into_iter().chain(half_written) {
            if let Err(e) = self.run.engine.remove_container(&point.id, true).await {
                self.run.steps.note(format!(
                    "{}: warning: cannot remove {}: {e}",
                    self.run.node, point.name
                ));
            }
        }
    }
}

/// `cmd exited N`, with what it said on stderr if anything.
fn exited(cmd: &[String], code: i64, stderr: &str) -> String {
    match stderr.trim() {
        "" => format!("{} exited {code}", cmd.join(" ")),
        said => format!("{} exited {code}: {said}", cmd.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(service: &str, generation: u64) -> RestorePoint {
        RestorePoint {
            id: format!("{service}-{generation}"),
            name: name("p-", service, generation),
            service: service.into(),
            generation,
            db_service: "mariadb".into(),
            restore: vec!["true".into()],
            bytes: 1,
            taken: 0,
        }
    }

    #[test]
    fn restore_points_of_generations_no_longer_kept_are_pruned() {
        let points = vec![
            point("glance-api", 1),
            point("glance-api", 2),
            point("glance-api", 3),
            point("keystone", 1),
        ];
        let pruned: Vec<u64> = beyond_kept(&points, "glance-api", &[4, 3, 2])
            .iter()
            .map(|p| p.generation)
            .collect();
        assert_eq!(pruned, vec![1]);
        assert!(beyond_kept(&points, "keystone", &[1]).is_empty());
    }

    #[test]
    fn a_restore_point_name_is_no_role_of_the_service() {
        let n = name("p-", "glance-api", 3);
        assert_eq!(n, "p-glance-api.kolla-restore-3");
        // The deployer reads it as a service of another name, which the
        // service label contradicts: never one of glance-api's containers.
        let (service, _) = labels::parse_name("p-", &n).expect("a name with the prefix");
        assert_ne!(service, "glance-api");
    }
}
