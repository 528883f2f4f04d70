//! Maintenance windows (docs/api.md, "Maintenance windows"): once or weekly, per service or
//! for all; listed by anyone, created and deleted by admins.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use serde_json::Value;

use crate::availability::records::{self, Maintenance, MaintenanceWhen};
use crate::http::AppState;
use crate::http::auth::{Caller, admin};
use crate::http::dto::{
    self, ErrorBody, MaintenanceKind, MaintenanceList, NewMaintenance, rfc3339,
};
use crate::http::error::{ApiError, bad_request, not_found};
use crate::http::params::{json_body, time_value};

use super::{blocking, find_service};

fn maintenance_dto(m: &Maintenance) -> dto::Maintenance {
    let (kind, start, end, time_zone, days) = match &m.when {
        MaintenanceWhen::Once { start_ms, end_ms } => (
            MaintenanceKind::Once,
            rfc3339(*start_ms),
            rfc3339(*end_ms),
            None,
            None,
        ),
        MaintenanceWhen::Weekly {
            time_zone,
            days,
            start,
            end,
        } => (
            MaintenanceKind::Weekly,
            Some(start.clone()),
            Some(end.clone()),
            Some(time_zone.clone()),
            Some(days.clone()),
        ),
    };
    dto::Maintenance {
        id: m.id,
        services: m.services.clone(),
        title: m.title.clone(),
        created_by: m.created_by.clone(),
        kind,
        start,
        end,
        time_zone,
        days,
    }
}

#[utoipa::path(get, path = "/api/v1/maintenance", tag = "availability", responses((status = 200, description = "Maintenance windows", body = MaintenanceList)))]
pub(crate) async fn list_maintenance(
    State(state): State<AppState>,
) -> Result<Json<MaintenanceList>, ApiError> {
    let store = state.store().clone();
    let list = blocking(move || records::maintenance(&store)).await?;
    Ok(Json(MaintenanceList {
        maintenance: list.iter().map(maintenance_dto).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/maintenance", tag = "availability", request_body(content = NewMaintenance, description = "A window, once or weekly", content_type = "application/json"), responses((status = 201, description = "The window", body = dto::Maintenance), (status = 400, description = "Bad window", body = ErrorBody), (status = 403, description = "Needs the admin role", body = ErrorBody)))]
pub(crate) async fn create_maintenance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    text: String,
) -> Result<(StatusCode, Json<dto::Maintenance>), ApiError> {
    admin(&caller)?;
    let n: NewMaintenance = json_body(&text)?;
    for s in &n.services {
        find_service(&state, s)?;
    }
    let need = |v: &Option<Value>, name: &str| {
        v.clone()
            .ok_or_else(|| bad_request(format!("missing {name}")))
    };
    let when = match n.kind.as_str() {
        "once" => MaintenanceWhen::Once {
            start_ms: time_value("start", &need(&n.start, "start")?)?,
            end_ms: time_value("end", &need(&n.end, "end")?)?,
        },
        "weekly" => {
            let text = |v: Value, name: &str| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad_request(format!("{name}: use \"HH:MM\""))),
            };
            MaintenanceWhen::Weekly {
                time_zone: n.time_zone.unwrap_or_else(|| "UTC".into()),
                days: n.days,
                start: text(need(&n.start, "start")?, "start")?,
                end: text(need(&n.end, "end")?, "end")?,
            }
        }
        k => {
            return Err(bad_request(format!(
                "kind = {k:?}: use \"once\" or \"weekly\""
            )));
        }
    };
    when.validate().map_err(bad_request)?;
    let m = Maintenance {
        id: 0,
        services: n.services,
        title: n.title,
        when,
        created_by: caller.name.clone(),
    };
    let store = state.store().clone();
    let m = blocking(move || records::create_maintenance(&store, m)).await?;
    Ok((StatusCode::CREATED, Json(maintenance_dto(&m))))
}

#[utoipa::path(delete, path = "/api/v1/maintenance/{id}", tag = "availability", params(("id" = u64, Path, description = "Window id")), responses((status = 204, description = "Deleted"), (status = 403, description = "Needs the admin role", body = ErrorBody), (status = 404, description = "No such window", body = ErrorBody)))]
pub(crate) async fn delete_maintenance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    admin(&caller)?;
    let store = state.store().clone();
    if blocking(move || records::delete_maintenance(&store, id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!("no maintenance window {id}")))
    }
}
