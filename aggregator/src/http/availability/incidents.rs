//! Incidents (docs/api.md, "Incidents"): the period's list, manual ones reported by people,
//! and changes to any (acknowledged, root cause, follow-up, ...), each kept in its history.

use axum::Json;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;

use crate::availability::Interval;
use crate::availability::config::ServiceConfig;
use crate::availability::records::{self, Change, Incident, RecordError};
use crate::availability::service;
use crate::http::AppState;
use crate::http::auth::{Caller, admin};
use crate::http::dto::{self, ErrorBody, IncidentList, IncidentPatch, NewIncident};
use crate::http::error::{ApiError, bad_request, internal, not_found};
use crate::http::params::{json_body, known_host, one, params, time_value};
use nines_common::model::now_ms;

use super::{blocking, find_service, incident_dto, period};

#[utoipa::path(get, path = "/api/v1/incidents", tag = "availability", params(("service" = Option<String>, Query, description = "Service name"), ("host" = Option<String>, Query, description = "Host id: the host's own incidents"), ("from" = Option<String>, Query, description = "Start: ms since the epoch, RFC 3339 or now-relative (now-30d)"), ("to" = Option<String>, Query, description = "End: ms since the epoch, RFC 3339 or now-relative (now)")), responses((status = 200, description = "Incidents", body = IncidentList), (status = 400, description = "Bad parameter", body = ErrorBody), (status = 404, description = "Unknown service", body = ErrorBody)))]
pub(crate) async fn list_incidents(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<IncidentList>, ApiError> {
    let p = params(raw);
    for (k, _) in &p {
        if !["service", "host", "from", "to"].contains(&k.as_str()) {
            return Err(bad_request(format!("unknown parameter {k:?}")));
        }
    }
    let now = now_ms();
    let range = period(&p, now)?;
    let services: Vec<ServiceConfig> = match (one(&p, "service"), one(&p, "host")) {
        (Some(_), Some(_)) => return Err(bad_request("give service or host, not both")),
        (Some(s), None) => vec![find_service(&state, s)?.clone()],
        (None, Some(h)) => {
            known_host(&state, h)?;
            vec![ServiceConfig::for_host(h, 99.9)]
        }
        // Every service's, and every host's own.
        (None, None) => {
            let mut all = state.services.to_vec();
            all.extend(
                state
                    .store()
                    .hosts()
                    .iter()
                    .map(|h| ServiceConfig::for_host(&h.host, 99.9)),
            );
            all
        }
    };
    let store = state.store().clone();
    let mut list = blocking(move || {
        let mut out = Vec::new();
        for s in &services {
            out.extend(
                service::report(&store, &crate::alerts::persist::History, s, range, now)?.incidents,
            );
        }
        Ok(out)
    })
    .await?;
    list.sort_by_key(|i| i.incident.start_ms);
    Ok(Json(IncidentList {
        incidents: list
            .iter()
            .map(|i| incident_dto(&i.incident, Some(i.lost_minutes)))
            .collect(),
    }))
}

fn fraction(name: &str, v: Option<f64>) -> Result<f64, ApiError> {
    let v = v.unwrap_or(1.0);
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(bad_request(format!("{name} = {v}: use 0 to 1")))
    }
}

#[utoipa::path(post, path = "/api/v1/incidents", tag = "availability", request_body(content = NewIncident, description = "A manual incident", content_type = "application/json"), responses((status = 201, description = "The incident", body = dto::Incident), (status = 400, description = "Bad incident", body = ErrorBody), (status = 403, description = "Needs the admin role", body = ErrorBody)))]
pub(crate) async fn create_incident(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    text: String,
) -> Result<(StatusCode, Json<dto::Incident>), ApiError> {
    admin(&caller)?;
    let n: NewIncident = json_body(&text)?;
    let svc = find_service(&state, &n.service)?;
    let start_ms = time_value("start", &n.start)?;
    let end_ms = n.end.as_ref().map(|e| time_value("end", e)).transpose()?;
    if end_ms.is_some_and(|e| e <= start_ms) {
        return Err(bad_request("end must be after start"));
    }
    let share = match (&n.share_group, n.share) {
        (Some(_), Some(_)) => return Err(bad_request("give share or share_group, not both")),
        (Some(g), None) => svc.share_of(g).ok_or_else(|| {
            bad_request(format!("service {:?} has no share group {g:?}", svc.name))
        })?,
        (None, s) => fraction("share", s)?,
    };
    let inc = Incident {
        id: String::new(),
        service: svc.name.clone(),
        automatic: false,
        title: n.title,
        start_ms,
        end_ms,
        share,
        impact: fraction("impact", n.impact)?,
        acknowledged: false,
        root_cause: None,
        follow_up: Vec::new(),
        customer_impacting: true,
        history: vec![Change {
            at_ms: now_ms(),
            by: caller.name.clone(),
            what: "reported".into(),
        }],
    };
    let store = state.store().clone();
    let inc = blocking(move || records::create_incident(&store, inc)).await?;
    Ok((StatusCode::CREATED, Json(incident_dto(&inc, None))))
}

#[utoipa::path(patch, path = "/api/v1/incidents/{id}", tag = "availability", params(("id" = String, Path, description = "Incident id")), request_body(content = IncidentPatch, description = "The fields to change", content_type = "application/json"), responses((status = 200, description = "The incident", body = dto::Incident), (status = 400, description = "Bad change", body = ErrorBody), (status = 403, description = "Needs the admin role", body = ErrorBody), (status = 404, description = "No such incident", body = ErrorBody)))]
pub(crate) async fn update_incident(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    text: String,
) -> Result<Json<dto::Incident>, ApiError> {
    admin(&caller)?;
    let p: IncidentPatch = json_body(&text)?;
    if p.customer_impacting == Some(false)
        && p.reason.as_deref().is_none_or(|r| r.trim().is_empty())
    {
        return Err(bad_request("customer_impacting = false needs a reason"));
    }
    let end_ms = p.end.as_ref().map(|e| time_value("end", e)).transpose()?;
    let store = state.store().clone();
    let services = state.services.clone();
    let now = now_ms();
    let updated =
        tokio::task::spawn_blocking(move || -> Result<Result<Incident, ApiError>, RecordError> {
            let stored = records::incidents(&store)?.into_iter().find(|i| i.id == id);
            let mut inc = match stored {
                Some(i) => i,
                None => {
                    // An automatic incident is stored on its first annotation.
                    let Some((svc, start)) = id
                        .strip_prefix("auto:")
                        .and_then(|r| r.rsplit_once(':'))
                        .and_then(|(s, t)| Some((s.to_owned(), t.parse::<i64>().ok()?)))
                        .filter(|(_, t)| crate::util::time::in_range(*t) && *t < now)
                    else {
                        return Ok(Err(not_found(format!("no incident {id:?}"))));
                    };
                    let host = svc
                        .strip_prefix("host:")
                        .filter(|h| store.host(h).is_some())
                        .map(|h| ServiceConfig::for_host(h, 99.9));
                    let Some(cfg) = services.iter().find(|s| s.name == svc).or(host.as_ref())
                    else {
                        return Ok(Err(not_found(format!("no incident {id:?}"))));
                    };
                    let look = Interval::new(start, now);
                    match service::automatic_incidents(
                        &store,
                        &crate::alerts::persist::History,
                        cfg,
                        look,
                        now,
                    )?
                    .into_iter()
                    .find(|i| i.id == id)
                    {
                        Some(i) => i,
                        None => {
                            return Ok(Err(not_found(format!("no incident {id:?}"))));
                        }
                    }
                }
            };
            let mut what = Vec::new();
            if let Some(a) = p.acknowledged {
                inc.acknowledged = a;
                what.push(format!("acknowledged = {a}"));
            }
            if let Some(r) = p.root_cause {
                what.push(format!("root cause: {r}"));
                inc.root_cause = Some(r);
            }
            if let Some(f) = p.follow_up {
                what.push(format!("follow-up: {}", f.join("; ")));
                inc.follow_up = f;
            }
            if let Some(e) = end_ms {
                if inc.automatic || e <= inc.start_ms {
                    return Ok(Err(bad_request(
                        "end: only a manual incident's end can be set, after its start",
                    )));
                }
                inc.end_ms = Some(e);
                what.push("end set".into());
            }
            if let Some(c) = p.customer_impacting {
                inc.customer_impacting = c;
                let reason = p.reason.unwrap_or_default();
                what.push(format!("customer_impacting = {c}: {reason}"));
            }
            if what.is_empty() {
                return Ok(Err(bad_request("nothing to change")));
            }
            inc.history.push(Change {
                at_ms: now,
                by: caller.name.clone(),
                what: what.join(", "),
            });
            records::put_incident(&store, &inc)?;
            Ok(Ok(inc))
        })
        .await
        .map_err(|e| internal("availability task", e))?
        .map_err(|e| internal("availability", e))??;
    Ok(Json(incident_dto(&updated, None)))
}
