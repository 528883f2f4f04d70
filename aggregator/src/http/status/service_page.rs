//! The page of one service: its tile, this month's figures, a bar per day of the last 30 and
//! the incidents of those days.

use axum::extract::{Path, State};
use axum::response::Response;

use super::page::{self, IncidentRow, ServicePage};
use super::{assess, blocking, health, html, incident_row, not_found, service_href};
use crate::availability::Interval;
use crate::availability::service;
use crate::http::AppState;
use nines_common::model::now_ms;

pub(super) async fn service_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Response {
    let Some(svc) = state.services.iter().find(|s| s.name == name).cloned() else {
        return not_found(&format!("No service {name:?} is configured."));
    };
    let body = blocking(move || {
        let now = now_ms();
        let store = state.store();
        let a = assess(&state, now);
        let status = state
            .services
            .iter()
            .position(|s| s.name == svc.name)
            .and_then(|i| a.services.get(i).cloned())
            .unwrap_or_else(|| health::service_status(&svc, &[], &[], now));
        let tile = status.tile(
            &svc.name,
            service_href(&svc.name),
            a.months
                .iter()
                .find(|m| m.name == svc.name)
                .and_then(|m| Some((m.percent?, m.target))),
        );
        let month = state
            .month_cache
            .get(store, &state.services, now)
            .into_iter()
            .find(|m| m.name == svc.name)
            .map_or((None, 0.0), |m| (m.percent, m.budget_left));
        let today = now - now.rem_euclid(86_400_000);
        let days = (0..30)
            .rev()
            .map(|d| {
                let start = today - d * 86_400_000;
                let range = Interval::new(start, (start + 86_400_000).min(now));
                let pct =
                    service::report(store, &crate::alerts::persist::History, &svc, range, now)
                        .ok()
                        .filter(|r| r.summary.scheduled_minutes > 0.0)
                        .map(|r| r.summary.availability_percent);
                (start, pct)
            })
            .collect();
        let mut incidents: Vec<IncidentRow> = service::report(
            store,
            &crate::alerts::persist::History,
            &svc,
            Interval::new(today - 29 * 86_400_000, now),
            now,
        )
        .map(|r| r.incidents.iter().map(incident_row).collect())
        .unwrap_or_default();
        incidents.sort_by_key(|i| std::cmp::Reverse(i.start_ms));
        page::service(&ServicePage {
            tile,
            reasons: status.reasons,
            target: svc.target_percent,
            month,
            days,
            incidents,
            now_ms: now,
        })
    })
    .await;
    match body {
        Ok(b) => html(b),
        Err(r) => r,
    }
}
