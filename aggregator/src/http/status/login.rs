//! Who may see the status page: the token from the `nines_token` cookie that the login form
//! sets (any API token), or nobody needs one with `[status] anonymous = true`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::page;
use crate::http::AppState;

/// The cookie that keeps the token.
const COOKIE: &str = "nines_token";

fn cookie_token(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
}

pub(super) async fn cookie_auth(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if state.status_anonymous {
        return next.run(req).await;
    }
    let ok = cookie_token(&req).is_some_and(|t| state.caller(&t).is_some());
    if ok {
        return next.run(req).await;
    }
    if req.uri().path() == "/status/live" {
        return (StatusCode::UNAUTHORIZED, "log in at /status/login").into_response();
    }
    Redirect::to("/status/login").into_response()
}

fn login_page(error: Option<&str>) -> String {
    page::layout(
        "Log in",
        &format!(
            "{}<form method=post action=/status/login><p><label>API token<br>\
<input name=token type=password autocomplete=current-password required style=\"width:100%;max-width:30em\"></label></p>\
<p><button type=submit>Show status</button></p></form><p class=muted>The token is kept in a cookie for 30 days. \
Any API token works; `nines-aggregator token new --role read` makes one.</p>",
            error
                .map(|e| format!("<p class=r>{}</p>", page::esc(e)))
                .unwrap_or_default()
        ),
        false,
    )
}

pub(super) async fn login_form() -> Html<String> {
    Html(login_page(None))
}

pub(super) async fn login(State(state): State<AppState>, body: String) -> Response {
    let token = form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    match state.caller(&token) {
        Some(caller) => {
            tracing::info!(token = %caller.name, "status page login");
            let cookie = format!(
                "{COOKIE}={}; Path=/status; HttpOnly; SameSite=Strict; Max-Age=2592000",
                form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
            );
            let mut r = Redirect::to("/status").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        None => (
            StatusCode::UNAUTHORIZED,
            Html(login_page(Some("That token is not valid."))),
        )
            .into_response(),
    }
}
