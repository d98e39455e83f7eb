//! Projects, and who may see and change them: the owner, members, everyone for public ones,
//! and superusers.

use sqlx::FromRow;

use super::pql::{self, PROJECT_FIELDS, Params};
use super::{Count, Flag, Result, Store, StoreError, User, new_uuid, now_micros};

#[derive(Clone, Debug, FromRow)]
pub struct ProjectRow {
    pub id: i64,
    pub uuid: String,
    pub owner: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: String,
    pub is_public: Flag,
    pub readme: Option<String>,
    pub settings: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub user_id: Option<i64>,
}

impl ProjectRow {
    pub fn tags(&self) -> Vec<String> {
        serde_json::from_str(&self.tags).unwrap_or_default()
    }
}

#[derive(Clone, Debug, Default)]
pub struct NewProject {
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub is_public: bool,
    pub readme: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub is_public: Option<bool>,
    pub readme: Option<String>,
}

const COLS: &str = "p.id, p.uuid, p.owner, p.name, p.description, p.tags, p.is_public, p.readme, p.settings, p.created_at, p.updated_at, p.user_id";

/// Checks a project name: letters, digits, `-`, `_`, `.`; not empty; at most 128 characters.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(StoreError::Invalid(format!(
            "`{name}` is not a valid project name: use letters, digits, `-`, `_` and `.`"
        )));
    }
    Ok(())
}

/// SQL condition: `user` may see the project aliased `p`.
fn visible(user: &User, p: &mut Params) -> String {
    if user.is_superuser {
        return "1 = 1".into();
    }
    let uid = p.push(user.id);
    let name = p.push(user.username.clone());
    format!(
        "(p.owner = {name} OR p.is_public = TRUE OR p.user_id = {uid} OR EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = p.id AND m.user_id = {uid}))"
    )
}

impl Store {
    pub async fn create_project(
        &self,
        owner: &str,
        user: &User,
        new: NewProject,
    ) -> Result<ProjectRow> {
        check_name(&new.name)?;
        if owner != user.username && !user.is_superuser {
            return Err(StoreError::NotFound(format!("owner `{owner}`")));
        }
        let now = now_micros();
        let uuid = new_uuid();
        let res = self
            .execute(
                "INSERT INTO projects (uuid, owner, name, user_id, description, tags, is_public, readme, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                vec![
                    uuid.clone().into(),
                    owner.into(),
                    new.name.clone().into(),
                    user.id.into(),
                    new.description.into(),
                    serde_json::to_string(&new.tags).unwrap_or_else(|_| "[]".into()).into(),
                    new.is_public.into(),
                    new.readme.into(),
                    now.into(),
                ],
            )
            .await;
        match res {
            Ok(_) => self.project_by_uuid(&uuid).await,
            Err(StoreError::Db(e)) if is_unique_violation(&e) => Err(StoreError::Conflict(
                format!("project `{owner}/{}` already exists", new.name),
            )),
            Err(e) => Err(e),
        }
    }

    async fn project_by_uuid(&self, uuid: &str) -> Result<ProjectRow> {
        self.fetch_optional(
            &format!("SELECT {COLS} FROM projects p WHERE p.uuid = $1"),
            vec![uuid.into()],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("project {uuid}")))
    }

    /// The project, if `user` may see it (not-found otherwise, so private names do not leak).
    pub async fn project(&self, owner: &str, name: &str, user: &User) -> Result<ProjectRow> {
        let mut p = Params::new(self.dialect());
        let (po, pn) = (p.push(owner), p.push(name));
        let vis = visible(user, &mut p);
        self.fetch_optional(
            &format!(
                "SELECT {COLS} FROM projects p WHERE p.owner = {po} AND p.name = {pn} AND {vis}"
            ),
            p.args,
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("project `{owner}/{name}`")))
    }

    /// Whether `user` may change the project (owner, member with a writing role, superuser).
    pub async fn can_write_project(&self, project: &ProjectRow, user: &User) -> Result<bool> {
        if user.is_superuser || project.owner == user.username || project.user_id == Some(user.id) {
            return Ok(true);
        }
        let n: Count = self
            .fetch_one(
                "SELECT COUNT(*) AS n FROM project_members WHERE project_id = $1 AND user_id = $2 AND role <> 'viewer'",
                vec![project.id.into(), user.id.into()],
            )
            .await?;
        Ok(n.n > 0)
    }

    pub async fn add_project_member(
        &self,
        project_id: i64,
        user_id: i64,
        role: &str,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)",
            vec![project_id.into(), user_id.into(), role.into()],
        )
        .await?;
        Ok(())
    }

    pub async fn list_projects(
        &self,
        owner: &str,
        user: &User,
        query: &str,
        sort: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<ProjectRow>)> {
        let mut p = Params::new(self.dialect());
        let po = p.push(owner);
        let vis = visible(user, &mut p);
        let cond = pql::where_clause(query, PROJECT_FIELDS, &mut p)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let order = pql::order_by(sort, PROJECT_FIELDS, "-updated_at", &mut p, "p.id DESC")
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let base = format!("FROM projects p WHERE p.owner = {po} AND {vis} AND {cond}");
        let count: Count = self
            .fetch_one(&format!("SELECT COUNT(*) AS n {base}"), p.args.clone())
            .await?;
        let (pl, po2) = (p.push(limit), p.push(offset));
        let rows = self
            .fetch_all(
                &format!("SELECT {COLS} {base} ORDER BY {order} LIMIT {pl} OFFSET {po2}"),
                p.args,
            )
            .await?;
        Ok((count.n, rows))
    }

    pub async fn patch_project(
        &self,
        project: &ProjectRow,
        patch: ProjectPatch,
    ) -> Result<ProjectRow> {
        if let Some(n) = &patch.name {
            check_name(n)?;
        }
        let tags = patch
            .tags
            .map(|t| serde_json::to_string(&t).unwrap_or_else(|_| "[]".into()));
        let res = self
            .execute(
                "UPDATE projects SET name = COALESCE($1, name), description = COALESCE($2, description), tags = COALESCE($3, tags), \
                 is_public = COALESCE($4, is_public), readme = COALESCE($5, readme), updated_at = $6 WHERE id = $7",
                vec![
                    patch.name.clone().into(),
                    patch.description.into(),
                    tags.into(),
                    patch.is_public.into(),
                    patch.readme.into(),
                    now_micros().into(),
                    project.id.into(),
                ],
            )
            .await;
        match res {
            Ok(_) => self.project_by_uuid(&project.uuid).await,
            Err(StoreError::Db(e)) if is_unique_violation(&e) => {
                Err(StoreError::Conflict(format!(
                    "project `{}/{}` already exists",
                    project.owner,
                    patch.name.unwrap_or_default()
                )))
            }
            Err(e) => Err(e),
        }
    }

    pub async fn delete_project(&self, project: &ProjectRow) -> Result<Vec<String>> {
        #[derive(FromRow)]
        struct U {
            uuid: String,
        }
        let mut tx = self.begin().await?;
        let runs: Vec<U> = tx
            .fetch_all(
                "SELECT uuid FROM runs WHERE project_id = $1",
                vec![project.id.into()],
            )
            .await?;
        for r in &runs {
            super::runs::note_removal(&mut tx, &r.uuid).await?;
        }
        tx.execute(
            "DELETE FROM projects WHERE id = $1",
            vec![project.id.into()],
        )
        .await?;
        tx.commit().await?;
        Ok(runs.into_iter().map(|u| u.uuid).collect())
    }
}

/// Whether a database error is a uniqueness violation (both backends).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.code()
                .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
                || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}
