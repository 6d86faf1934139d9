//! HTTP API (axum) and the supervisors' dashboard.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use time::OffsetDateTime;

pub use crate::auth::AppState;
use crate::auth::{LoginForm, LoginOutcome, Principal, Remote, Right, Scoped};
use crate::map::{MapModel, geojson, png, svg};
use crate::metrics::Metrics;
use crate::store::{FacilityOverview, GapFilter, Scope, parse_ts};

/// An API error: status and a sentence.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

fn bad(metrics: &Metrics, msg: String) -> ApiError {
    metrics.bad_request();
    ApiError(StatusCode::BAD_REQUEST, msg)
}

fn db_error(e: sqlx::Error) -> ApiError {
    tracing::error!("database: {e}");
    ApiError(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("database unavailable: {e}"),
    )
}

type ApiResult<T> = Result<T, ApiError>;

/// The router.
pub fn router(state: AppState) -> Router {
    let sessions = crate::auth::session_layer(&state.store, state.auth.secure);
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/api/me", get(me))
        .route("/api/security-log", get(security_log))
        .route("/dashboard.js", get(dashboard_js))
        .route("/dashboard.css", get(dashboard_css))
        .route("/api/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/facilities", get(facilities))
        .route("/api/overview", get(overview))
        .route("/api/facilities/{id}", get(facility))
        .route("/api/facilities/{id}/zones", get(zones))
        .route("/api/facilities/{id}/sensors", get(sensors))
        .route("/api/facilities/{id}/gaps", get(gaps))
        .route("/api/facilities/{id}/gaps/history", get(history))
        .route("/api/facilities/{id}/jammers", get(jammers))
        .route("/api/facilities/{id}/aggregates", get(aggregates))
        .route("/api/facilities/{id}/spectrum", get(spectrum))
        .route("/api/facilities/{id}/{file}", get(map_file))
        .route("/api/rejects", get(rejects))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::gate,
        ))
        .with_state(state)
        .layer(sessions)
        .layer(axum::middleware::map_response(security_headers))
}

/// The dashboard's policy: scripts, styles and images from this server only, no inline script
/// or style, no plugins, not framed by any page.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The map's SVG policy: nothing in it may run or load (a zone or sensor name is text, never
/// script), even opened on its own.
pub const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

/// Security headers on every answer (an answer that set its own policy keeps it).
async fn security_headers(mut r: Response) -> Response {
    use axum::http::HeaderValue;
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        // Not `no-referrer`: with it browsers send `Origin: null` on form posts, and the login
        // checks the origin. Other sites still get no referrer.
        HeaderValue::from_static("same-origin"),
    );
    // Nothing here is for a shared cache: maps and gaps are per user.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn dashboard_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard.js"),
    )
        .into_response()
}

async fn dashboard_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("dashboard.css"),
    )
        .into_response()
}

async fn not_found(State(s): State<AppState>, uri: axum::http::Uri) -> ApiError {
    s.metrics.bad_request();
    ApiError(StatusCode::NOT_FOUND, format!("no such resource: {uri}"))
}

/// The dashboard for a signed-in user; the login page for anyone else.
async fn dashboard(State(s): State<AppState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    match crate::auth::authenticate(&s, &mut parts).await {
        Ok(_) => Html(include_str!("dashboard.html")).into_response(),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

fn login_html(message: &str, status: StatusCode) -> Response {
    (
        status,
        Html(include_str!("login.html").replace("<!--message-->", message)),
    )
        .into_response()
}

async fn login_page() -> Response {
    login_html("", StatusCode::OK)
}

async fn login(
    State(s): State<AppState>,
    remote: Remote,
    session: tower_sessions::Session,
    headers: HeaderMap,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        s.metrics.bad_request();
        return login_html(
            "<p class=\"error\">Faltan el usuario o la contraseña. <span class=\"en\">User or password missing.</span></p>",
            StatusCode::BAD_REQUEST,
        );
    };
    match crate::auth::login(&s, &session, &headers, remote.0, form).await {
        LoginOutcome::Ok => Redirect::to("/").into_response(),
        LoginOutcome::Refused("login_throttled") => login_html(
            "<p class=\"error\">Demasiados intentos fallidos desde esta dirección; espere unos minutos (los demás usuarios pueden entrar). <span class=\"en\">Too many failed attempts from this address; wait a few minutes (other users may sign in).</span></p>",
            StatusCode::TOO_MANY_REQUESTS,
        ),
        LoginOutcome::Refused(_) => login_html(
            "<p class=\"error\">Usuario o contraseña incorrectos, o cuenta bloqueada por intentos fallidos. <span class=\"en\">Wrong user or password, or the account is locked after failed attempts.</span></p>",
            StatusCode::UNAUTHORIZED,
        ),
    }
}

async fn logout(
    State(s): State<AppState>,
    remote: Remote,
    session: tower_sessions::Session,
) -> Response {
    crate::auth::logout(&s, &session, remote.0).await;
    Redirect::to("/login").into_response()
}

async fn me(who: Principal) -> axum::Json<Principal> {
    axum::Json(who)
}

async fn security_log(
    State(s): State<AppState>,
    who: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::Json<serde_json::Value>, Response> {
    crate::auth::require(&s, &who, Right::SecurityLog, "the security log").await?;
    let f = filter(&s, &q, &["limit"]).map_err(IntoResponse::into_response)?;
    let rows = crate::auth::security_log_lines(&s.store, f.limit.unwrap_or(200))
        .await
        .map_err(|e| db_error(e).into_response())?;
    Ok(axum::Json(json!(rows)))
}

/// Logs an export (history, GeoJSON) in the security log.
async fn exported(s: &AppState, who: &Principal, facility: &str, what: &str) {
    crate::auth::security_log(&s.store, &who.actor(), "export", facility, what, "").await;
}

async fn health(State(s): State<AppState>) -> Response {
    // Reading proves little (a database on a full disk still reads): writes are what receipts
    // rest on, and they are probed every few seconds and watched at every ingest batch.
    let readable = sqlx::query("SELECT 1")
        .execute(s.store.pool())
        .await
        .is_ok();
    let w = s.metrics.database();
    let broker = s.metrics.connected();
    let db_ok = readable && w.writable;
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(json!({
            "status": if db_ok && broker { "ok" } else { "degraded" },
            "database": {
                "readable": readable,
                "writable": w.writable,
                "error": w.error,
                "failing_s": w.failing_s.map(f64::round),
                "last_write_s": w.last_ok_s.map(f64::round),
            },
            "broker_connected": broker,
            "version": env!("CARGO_PKG_VERSION"),
        })),
    )
        .into_response()
}

async fn metrics(State(s): State<AppState>, who: Principal) -> Response {
    if let Err(r) = crate::auth::require(&s, &who, Right::Metrics, "the metrics").await {
        return r;
    }
    let mut text = s.metrics.render();
    // Gauges of the current state, read at scrape time.
    if let Ok(rows) = s.store.sensors(None).await {
        let online = rows
            .iter()
            .filter(|r| r.state == protocol::SensorState::Online)
            .count();
        text = text.replace("# EOF\n", "");
        text.push_str(&format!(
            "# HELP centinela_sensors_online Sensors online.\n# TYPE centinela_sensors_online gauge\ncentinela_sensors_online {online}\n"
        ));
        let mut active = 0;
        for f in &s.config.facilities {
            if let Ok(g) = s.store.gaps(&f.id, true, &GapFilter::default()).await {
                active += g.len();
            }
        }
        text.push_str(&format!(
            "# HELP centinela_active_gaps Active gaps in configured facilities.\n# TYPE centinela_active_gaps gauge\ncentinela_active_gaps {active}\n# EOF\n"
        ));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn facilities(
    State(s): State<AppState>,
    who: Principal,
) -> Result<axum::Json<serde_json::Value>, Response> {
    crate::auth::require(&s, &who, Right::Facility, "facilities").await?;
    facility_list(&s, &who)
        .await
        .map(axum::Json)
        .map_err(IntoResponse::into_response)
}

/// The facilities `who` may see, configured or only heard of, with what their sensors say: a
/// fixed number of queries whatever the number of facilities, each limited to the principal's
/// facilities in the query itself.
async fn visible_facilities<'a>(
    s: &'a AppState,
    who: &Principal,
) -> ApiResult<Vec<(Option<&'a crate::config::Facility>, FacilityOverview)>> {
    let scope = if who.role.every_facility() {
        Scope::All
    } else {
        Scope::User(who.user_id)
    };
    let mut seen = s.store.overview(&scope).await.map_err(db_error)?;
    let mut out = Vec::new();
    for f in &s.config.facilities {
        if !who.may_see(&f.id) {
            continue;
        }
        let o = match seen.iter().position(|o| o.facility_id == f.id) {
            Some(i) => seen.swap_remove(i),
            None => FacilityOverview {
                facility_id: f.id.clone(),
                ..FacilityOverview::default()
            },
        };
        out.push((Some(f), o));
    }
    // Heard of but not in the configuration (its sensors' messages were refused or it was
    // removed): shown, so that nothing the database holds is hidden from those who may see it.
    for o in seen {
        if who.may_see(&o.facility_id) {
            out.push((None, o));
        }
    }
    Ok(out)
}

async fn facility_list(s: &AppState, who: &Principal) -> ApiResult<serde_json::Value> {
    let rows = visible_facilities(s, who).await?;
    Ok(json!(
        rows.iter()
            .map(|(cfg, o)| json!({
                "id": o.facility_id,
                "name": cfg.map_or(o.facility_id.as_str(), |f| f.name.as_str()),
                "region": cfg.and_then(|f| f.region.clone()),
                "configured": cfg.is_some(),
                "active_gaps": o.gaps_critical + o.gaps_high + o.gaps_low,
                "critical_gaps": o.gaps_critical,
                "sensors": o.sensors_online + o.sensors_offline,
                "sensors_online": o.sensors_online,
            }))
            .collect::<Vec<_>>()
    ))
}

fn configured<'a>(s: &'a AppState, id: &str) -> ApiResult<&'a crate::config::Facility> {
    s.config.facility(id).ok_or_else(|| {
        s.metrics.bad_request();
        ApiError(StatusCode::NOT_FOUND, crate::auth::no_facility(id))
    })
}

/// What a facility's row in the national overview says first, worst first.
fn overview_status(o: &FacilityOverview) -> (u8, &'static str) {
    if o.gaps_critical > 0 {
        (0, "critical")
    } else if !o.jammer_bands_down.is_empty() {
        (1, "jammer_down")
    } else if o.gaps_high > 0 {
        (2, "high")
    } else if o.sensors_offline > 0 {
        (3, "sensors_offline")
    } else if o.gaps_low > 0 || !o.jammer_bands_degraded.is_empty() {
        (4, "low")
    } else if o.sensors_online == 0 {
        (5, "no_data")
    } else {
        (6, "ok")
    }
}

/// The national overview: every facility the user may see, with its worst active gap, its
/// jammer bands down and its sensors offline; `region=` filters, `q=` finds by name or id,
/// `sort=status|name|region|offline|down|margin` (`order=asc|desc`) sorts.
async fn overview(
    State(s): State<AppState>,
    who: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = crate::auth::require(&s, &who, Right::Facility, "the national overview").await {
        return r;
    }
    for k in q.keys() {
        if !["region", "q", "sort", "order"].contains(&k.as_str()) {
            return bad(
                &s.metrics,
                format!("unknown parameter `{k}` (region, q, sort, order)"),
            )
            .into_response();
        }
    }
    let sort = q.get("sort").map_or("status", String::as_str);
    if !["status", "name", "region", "offline", "down", "margin"].contains(&sort) {
        return bad(
            &s.metrics,
            format!("sort=`{sort}`: one of status, name, region, offline, down, margin"),
        )
        .into_response();
    }
    let descending = match q.get("order").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return bad(&s.metrics, format!("order=`{o}`: asc or desc")).into_response();
        }
    };
    let rows = match visible_facilities(&s, &who).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut regions: Vec<String> = rows
        .iter()
        .filter_map(|(c, _)| c.and_then(|f| f.region.clone()))
        .collect();
    regions.sort();
    regions.dedup();
    let needle = q.get("q").map(|n| n.to_lowercase());
    let mut rows: Vec<_> = rows
        .into_iter()
        .filter(|(c, _)| {
            q.get("region")
                .is_none_or(|r| c.and_then(|f| f.region.as_ref()) == Some(r))
        })
        .filter(|(c, o)| {
            needle.as_ref().is_none_or(|n| {
                o.facility_id.to_lowercase().contains(n)
                    || c.is_some_and(|f| f.name.to_lowercase().contains(n))
            })
        })
        .collect();
    let name = |c: &Option<&crate::config::Facility>, o: &FacilityOverview| {
        c.map_or_else(|| o.facility_id.clone(), |f| f.name.clone())
    };
    let margin = |o: &FacilityOverview| {
        o.worst_gap
            .as_ref()
            .map_or(f64::NEG_INFINITY, |g| g.margin_db)
    };
    rows.sort_by(|(ca, a), (cb, b)| {
        let by_name = name(ca, a).cmp(&name(cb, b));
        let key = match sort {
            "name" => by_name,
            "region" => ca
                .and_then(|f| f.region.clone())
                .cmp(&cb.and_then(|f| f.region.clone()))
                .then(by_name),
            "offline" => b.sensors_offline.cmp(&a.sensors_offline).then(by_name),
            "down" => b
                .jammer_bands_down
                .len()
                .cmp(&a.jammer_bands_down.len())
                .then(by_name),
            "margin" => margin(b).total_cmp(&margin(a)).then(by_name),
            _ => overview_status(a)
                .0
                .cmp(&overview_status(b).0)
                .then(margin(b).total_cmp(&margin(a)))
                .then(by_name),
        };
        if descending { key.reverse() } else { key }
    });
    let totals = json!({
        "facilities": rows.len(),
        "critical": rows.iter().filter(|(_, o)| o.gaps_critical > 0).count(),
        "jammer_down": rows.iter().filter(|(_, o)| !o.jammer_bands_down.is_empty()).count(),
        "sensors_offline": rows.iter().map(|(_, o)| o.sensors_offline).sum::<i64>(),
    });
    let list: Vec<serde_json::Value> = rows
        .iter()
        .map(|(c, o)| {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            v["name"] = name(c, o).into();
            v["region"] = c.and_then(|f| f.region.clone()).into();
            v["configured"] = c.is_some().into();
            v["status"] = overview_status(o).1.into();
            v
        })
        .collect();
    axum::Json(json!({
        "generated_at": crate::store::ts(OffsetDateTime::now_utc()),
        "regions": regions,
        "totals": totals,
        "facilities": list,
    }))
    .into_response()
}

async fn facility(
    State(s): State<AppState>,
    Scoped { facility: id, .. }: Scoped,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let f = configured(&s, &id)?;
    Ok(axum::Json(json!(f)))
}

fn filter(s: &AppState, q: &HashMap<String, String>, allowed: &[&str]) -> ApiResult<GapFilter> {
    for k in q.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(
                &s.metrics,
                format!(
                    "unknown query parameter `{k}` (allowed: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    let time = |k: &str| -> ApiResult<Option<OffsetDateTime>> {
        q.get(k)
            .map(|v| parse_ts(v).map_err(|e| bad(&s.metrics, format!("{k}: {e}"))))
            .transpose()
    };
    let technology = q.get("technology").cloned();
    if let Some(t) = &technology
        && !["gsm", "umts", "lte", "nr", "unknown"].contains(&t.as_str())
    {
        return Err(bad(
            &s.metrics,
            format!("technology `{t}` is not one of gsm, umts, lte, nr, unknown"),
        ));
    }
    let limit = q
        .get("limit")
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| bad(&s.metrics, format!("limit `{v}` is not 1–100000")))
        })
        .transpose()?;
    Ok(GapFilter {
        band: q.get("band").cloned(),
        technology,
        zone: q.get("zone").cloned(),
        since: time("since")?,
        until: time("until")?,
        limit,
    })
}

async fn gaps(
    State(s): State<AppState>,
    Scoped { facility: id, .. }: Scoped,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let f = filter(
        &s,
        &q,
        &[
            "band",
            "technology",
            "zone",
            "since",
            "until",
            "limit",
            "state",
        ],
    )?;
    let active = match q.get("state").map(String::as_str) {
        None | Some("active") => true,
        Some("all") => false,
        Some(other) => {
            return Err(bad(
                &s.metrics,
                format!("state `{other}` is not `active` or `all`"),
            ));
        }
    };
    let rows = s.store.gaps(&id, active, &f).await.map_err(db_error)?;
    Ok(axum::Json(json!(rows)))
}

async fn history(
    State(s): State<AppState>,
    Scoped { facility: id, who }: Scoped,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::Json<serde_json::Value>, Response> {
    crate::auth::require(&s, &who, Right::Export, "the gap history").await?;
    let f = filter(
        &s,
        &q,
        &["band", "technology", "zone", "since", "until", "limit"],
    )
    .map_err(IntoResponse::into_response)?;
    let rows = s
        .store
        .gap_history(&id, &f)
        .await
        .map_err(|e| db_error(e).into_response())?;
    exported(
        &s,
        &who,
        &id,
        &format!("gap history, {} row(s)", rows.len()),
    )
    .await;
    Ok(axum::Json(json!(rows)))
}

/// A facility's aggregates: `period=hour` (default) or `day`, `zone=`, `band=`, `since=`,
/// `until=`, `limit=`.
async fn aggregates(
    State(s): State<AppState>,
    Scoped { facility: id, .. }: Scoped,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let f = filter(
        &s,
        &q,
        &["band", "zone", "since", "until", "limit", "period"],
    )?;
    let daily = match q.get("period").map(String::as_str) {
        None | Some("hour") => false,
        Some("day") => true,
        Some(other) => {
            return Err(bad(
                &s.metrics,
                format!("period `{other}` is not `hour` or `day`"),
            ));
        }
    };
    let rows = s.store.aggregates(&id, daily, &f).await.map_err(db_error)?;
    Ok(axum::Json(json!({
        "facility_id": id,
        "period": if daily { "day" } else { "hour" },
        "rows": rows,
    })))
}

async fn jammers(
    State(s): State<AppState>,
    Scoped { facility: id, .. }: Scoped,
) -> ApiResult<axum::Json<serde_json::Value>> {
    Ok(axum::Json(json!(
        s.store.jammers(&id).await.map_err(db_error)?
    )))
}

async fn sensors(
    State(s): State<AppState>,
    Scoped { facility: id, .. }: Scoped,
) -> ApiResult<axum::Json<serde_json::Value>> {
    Ok(axum::Json(json!(
        s.store.sensors(Some(&id)).await.map_err(db_error)?
    )))
}

async fn spectrum(
    State(s): State<AppState>,
    Scoped { facility: id, .. }: Scoped,
) -> ApiResult<axum::Json<serde_json::Value>> {
    Ok(axum::Json(json!(
        s.store.spectra(&id).await.map_err(db_error)?
    )))
}

async fn model(
    s: &AppState,
    id: &str,
    q: &HashMap<String, String>,
) -> ApiResult<(MapModel, Option<[f64; 2]>)> {
    let f = configured(s, id)?;
    // `t` is the dashboard's cache-buster; it means nothing here.
    let filt = filter(s, q, &["band", "t"])?;
    let gaps = s.store.gaps(id, true, &filt).await.map_err(db_error)?;
    let sensors = s.store.sensors(Some(id)).await.map_err(db_error)?;
    Ok((
        MapModel::build(f, filt.band, &gaps, &sensors, OffsetDateTime::now_utc()),
        f.origin_latlon,
    ))
}

async fn zones(
    State(s): State<AppState>,
    Scoped { facility: id, .. }: Scoped,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let (m, _) = model(&s, &id, &q).await?;
    Ok(axum::Json(json!(m.zones)))
}

async fn map_file(
    State(s): State<AppState>,
    Scoped { facility: id, who }: Scoped,
    axum::extract::Path((_, file)): axum::extract::Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, Response> {
    if file == "map.geojson" {
        crate::auth::require(&s, &who, Right::Export, "the map's GeoJSON").await?;
        exported(&s, &who, &id, "map GeoJSON").await;
    }
    map_file_of(&s, &id, &file, &q)
        .await
        .map_err(IntoResponse::into_response)
}

async fn map_file_of(
    s: &AppState,
    id: &str,
    file: &str,
    q: &HashMap<String, String>,
) -> ApiResult<Response> {
    let fail = |e: String| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("drawing: {e}"));
    match file {
        "map.png" => {
            let (m, _) = model(s, id, q).await?;
            let bytes = tokio::task::spawn_blocking(move || png(&m))
                .await
                .map_err(|e| fail(e.to_string()))?
                .map_err(fail)?;
            Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response())
        }
        "map.svg" => {
            let (m, _) = model(s, id, q).await?;
            let text = svg(&m).map_err(fail)?;
            Ok((
                [
                    (header::CONTENT_TYPE, "image/svg+xml"),
                    (header::CONTENT_SECURITY_POLICY, SVG_CSP),
                ],
                text,
            )
                .into_response())
        }
        "map.geojson" => {
            let (m, origin) = model(s, id, q).await?;
            Ok((
                [(header::CONTENT_TYPE, "application/geo+json")],
                geojson(&m, origin).to_string(),
            )
                .into_response())
        }
        _ => {
            s.metrics.bad_request();
            Err(ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "no such resource `{file}` (map.png, map.svg, map.geojson, gaps, zones, sensors, jammers, spectrum)"
                ),
            ))
        }
    }
}

async fn rejects(
    State(s): State<AppState>,
    who: Principal,
) -> Result<axum::Json<serde_json::Value>, Response> {
    crate::auth::require(&s, &who, Right::Rejects, "the rejected messages").await?;
    Ok(axum::Json(json!({
        "rejected_total": s.metrics.rejected_total(),
        "latest": s.store.rejects(50).await.map_err(|e| db_error(e).into_response())?,
    })))
}
