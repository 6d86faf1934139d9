//! Gap maps of a facility: zones coloured by their worst active leak, a heat layer interpolated
//! from the sensors' margins, sensors and jammers marked, a legend and a timestamp. PNG and SVG
//! through plotters, and GeoJSON of the zones with their status.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{Facility, Point, contains};
use crate::store::{GapRow, SensorRow};

/// Margin, dB, given to a sensor that sees no leak: "comfortably jammed".
pub const CLEAN_MARGIN_DB: f64 = -10.0;

/// A zone with its status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ZoneStatus {
    /// Zone id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `ok` or the worst severity of its active gaps (`low`, `high`, `critical`).
    pub status: String,
    /// Active gaps in the zone.
    pub active_gaps: usize,
    /// Bands that leak.
    pub bands: Vec<String>,
    /// Largest margin, dB.
    pub max_margin_db: Option<f64>,
    /// Polygon, metres.
    pub polygon: Vec<Point>,
}

/// A sensor on the map.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SensorMark {
    /// Id.
    pub id: String,
    /// Zone.
    pub zone: String,
    /// Position, metres.
    pub position: Point,
    /// `online`, `offline` or `unknown` (configured, never heard from).
    pub state: String,
    /// Largest active margin, dB ([`CLEAN_MARGIN_DB`] when nothing leaks).
    pub margin_db: f64,
}

/// Everything a map shows.
#[derive(Debug, Clone, Serialize)]
pub struct MapModel {
    /// Facility id.
    pub facility_id: String,
    /// Facility name.
    pub name: String,
    /// Band filter, if any.
    pub band: Option<String>,
    /// Outline.
    pub outline: Vec<Point>,
    /// Zones.
    pub zones: Vec<ZoneStatus>,
    /// Sensors.
    pub sensors: Vec<SensorMark>,
    /// Jammers: name, position, bands.
    pub jammers: Vec<(String, Point, Vec<String>)>,
    /// When drawn.
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
}

impl MapModel {
    /// Builds the model from the configuration and the active gaps (already filtered by band)
    /// and the sensors the store knows.
    #[must_use]
    pub fn build(
        facility: &Facility,
        band: Option<String>,
        gaps: &[GapRow],
        sensors: &[SensorRow],
        now: OffsetDateTime,
    ) -> Self {
        let active: Vec<&GapRow> = gaps
            .iter()
            .filter(|g| g.state != protocol::GapState::Closed)
            .collect();
        let zones = facility
            .zones
            .iter()
            .map(|z| {
                let mine: Vec<&&GapRow> = active.iter().filter(|g| g.zone == z.id).collect();
                let worst = mine.iter().map(|g| g.severity).max();
                let mut bands: Vec<String> = mine.iter().map(|g| g.band.clone()).collect();
                bands.sort();
                bands.dedup();
                ZoneStatus {
                    id: z.id.clone(),
                    name: z.name.clone(),
                    status: worst.map_or("ok", protocol::Severity::as_str).to_string(),
                    active_gaps: mine.len(),
                    bands,
                    max_margin_db: mine.iter().map(|g| g.margin_db).reduce(f64::max),
                    polygon: z.polygon.clone(),
                }
            })
            .collect();
        let mut marks: Vec<SensorMark> = Vec::new();
        let margin_of = |id: &str| {
            active
                .iter()
                .filter(|g| g.sensor_id == id)
                .map(|g| g.margin_db)
                .fold(CLEAN_MARGIN_DB, f64::max)
        };
        for s in &facility.sensors {
            let known = sensors.iter().find(|r| r.sensor_id == s.id);
            marks.push(SensorMark {
                id: s.id.clone(),
                zone: s.zone.clone(),
                position: s.position,
                state: known.map_or("unknown", |r| r.state.as_str()).to_string(),
                margin_db: margin_of(&s.id),
            });
        }
        for r in sensors {
            if r.facility_id == facility.id
                && !marks.iter().any(|m| m.id == r.sensor_id)
                && let Some(p) = r.position_m
            {
                marks.push(SensorMark {
                    id: r.sensor_id.clone(),
                    zone: r.zone.clone(),
                    position: p,
                    state: r.state.as_str().to_string(),
                    margin_db: margin_of(&r.sensor_id),
                });
            }
        }
        Self {
            facility_id: facility.id.clone(),
            name: facility.name.clone(),
            band,
            outline: facility.outline.clone(),
            zones,
            sensors: marks,
            jammers: facility
                .jammers
                .iter()
                .map(|j| (j.name.clone(), j.position, j.bands.clone()))
                .collect(),
            generated_at: now,
        }
    }

    /// Margin interpolated at `p` from the sensors heard from (inverse distance squared).
    #[must_use]
    pub fn heat_at(&self, p: Point) -> Option<f64> {
        let mut num = 0.0;
        let mut den = 0.0;
        for s in self.sensors.iter().filter(|s| s.state != "unknown") {
            let d2 = (s.position[0] - p[0]).powi(2) + (s.position[1] - p[1]).powi(2);
            if d2 < 1e-6 {
                return Some(s.margin_db);
            }
            num += s.margin_db / d2;
            den += 1.0 / d2;
        }
        (den > 0.0).then(|| num / den)
    }

    fn bounds(&self) -> (f64, f64, f64, f64) {
        let pts = self
            .outline
            .iter()
            .chain(self.zones.iter().flat_map(|z| z.polygon.iter()))
            .chain(self.sensors.iter().map(|s| &s.position))
            .chain(self.jammers.iter().map(|j| &j.1));
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in pts {
            x0 = x0.min(p[0]);
            x1 = x1.max(p[0]);
            y0 = y0.min(p[1]);
            y1 = y1.max(p[1]);
        }
        if x0 > x1 {
            return (0.0, 1.0, 0.0, 1.0);
        }
        let pad = 0.06 * (x1 - x0).max(y1 - y0).max(1.0);
        (x0 - pad, x1 + pad, y0 - pad, y1 + pad)
    }

    /// Pixel size of the image.
    #[must_use]
    pub fn size(&self) -> (u32, u32) {
        let (x0, x1, y0, y1) = self.bounds();
        let map_w = 760.0;
        let map_h = (map_w * (y1 - y0) / (x1 - x0)).clamp(300.0, 1200.0);
        (map_w as u32 + LEGEND_W, map_h as u32 + TITLE_H)
    }
}

const LEGEND_W: u32 = 240;
const TITLE_H: u32 = 40;

/// Colour of a margin on the heat scale: green (−10 dB and below), yellow (0 dB), red (+10 dB).
#[must_use]
pub fn heat_colour(margin_db: f64) -> RGBColor {
    let t = ((margin_db + 10.0) / 20.0).clamp(0.0, 1.0);
    if t < 0.5 {
        let u = t / 0.5;
        RGBColor((40.0 + 215.0 * u) as u8, (170.0 + 40.0 * u) as u8, 60)
    } else {
        let u = (t - 0.5) / 0.5;
        RGBColor(255, (210.0 * (1.0 - u)) as u8, (60.0 * (1.0 - u)) as u8)
    }
}

/// Fill of a zone status.
#[must_use]
pub fn status_colour(status: &str) -> RGBColor {
    match status {
        "critical" => RGBColor(200, 0, 0),
        "high" => RGBColor(255, 130, 0),
        "low" => RGBColor(240, 210, 0),
        _ => RGBColor(30, 150, 60),
    }
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (style, bytes) in [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ] {
            if plotters::style::register_font("sans-serif", style, bytes).is_err() {
                tracing::warn!("the bundled DejaVu font did not load; map text will be missing");
            }
        }
    });
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, m: &MapModel) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    let (title, body) = root.split_vertically(TITLE_H);
    let (map, legend) = body.split_horizontally(w - LEGEND_W);
    let font = ("sans-serif", 18).into_font().style(FontStyle::Bold);
    title.draw_text(
        &format!(
            "{} — gap map{}",
            m.name,
            m.band
                .as_ref()
                .map(|b| format!(" ({b})"))
                .unwrap_or_else(|| " (all bands)".into())
        ),
        &font.color(&BLACK),
        (12, 10),
    )?;
    let (x0, x1, y0, y1) = m.bounds();
    let mut chart = ChartBuilder::on(&map)
        .margin(8)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    // Heat layer over the outline.
    let n = 60usize;
    let dx = (x1 - x0) / n as f64;
    let ny = ((y1 - y0) / dx).ceil().max(1.0) as usize;
    let mut cells = Vec::new();
    for i in 0..n {
        for j in 0..ny {
            let c = [x0 + (i as f64 + 0.5) * dx, y0 + (j as f64 + 0.5) * dx];
            if !contains(&m.outline, c) {
                continue;
            }
            if let Some(v) = m.heat_at(c) {
                cells.push(Rectangle::new(
                    [
                        (c[0] - dx / 2.0, c[1] - dx / 2.0),
                        (c[0] + dx / 2.0, c[1] + dx / 2.0),
                    ],
                    heat_colour(v).mix(0.45).filled(),
                ));
            }
        }
    }
    chart.draw_series(cells)?;
    // Zones.
    for z in &m.zones {
        let pts: Vec<(f64, f64)> = z.polygon.iter().map(|p| (p[0], p[1])).collect();
        let colour = status_colour(&z.status);
        chart.draw_series(std::iter::once(Polygon::new(
            pts.clone(),
            colour.mix(0.35).filled(),
        )))?;
        let mut closed = pts.clone();
        closed.push(pts[0]);
        chart.draw_series(std::iter::once(PathElement::new(
            closed,
            colour.stroke_width(3),
        )))?;
        // Label in the zone's top-left corner, clear of the sensors inside.
        let cx = pts.iter().map(|p| p.0).fold(f64::MAX, f64::min) + 0.02 * (x1 - x0);
        let cy = pts.iter().map(|p| p.1).fold(f64::MIN, f64::max) - 0.03 * (y1 - y0);
        let label = if z.active_gaps > 0 {
            format!("{}: {} ({})", z.name, z.status, z.bands.join(","))
        } else {
            format!("{}: ok", z.name)
        };
        chart.draw_series(std::iter::once(Text::new(
            label,
            (cx, cy),
            ("sans-serif", 13).into_font().color(&BLACK),
        )))?;
    }
    // Outline.
    let mut outline: Vec<(f64, f64)> = m.outline.iter().map(|p| (p[0], p[1])).collect();
    if let Some(&first) = outline.first() {
        outline.push(first);
    }
    chart.draw_series(std::iter::once(PathElement::new(
        outline,
        BLACK.stroke_width(2),
    )))?;
    // Jammers and sensors.
    for (name, p, _) in &m.jammers {
        chart.draw_series(std::iter::once(TriangleMarker::new(
            (p[0], p[1]),
            9,
            RGBColor(90, 0, 140).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("jammer {name}"),
            (p[0] + 0.015 * (x1 - x0), p[1]),
            ("sans-serif", 11).into_font().color(&RGBColor(90, 0, 140)),
        )))?;
    }
    for s in &m.sensors {
        let fill = match s.state.as_str() {
            "online" => RGBColor(0, 70, 200),
            "offline" => RGBColor(120, 120, 120),
            _ => RGBColor(190, 190, 190),
        };
        chart.draw_series(std::iter::once(Circle::new(
            (s.position[0], s.position[1]),
            7,
            fill.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{} ({})", s.id, s.state),
            (s.position[0] + 0.015 * (x1 - x0), s.position[1]),
            ("sans-serif", 11).into_font().color(&fill),
        )))?;
    }
    // Legend.
    let lf = ("sans-serif", 13).into_font().color(&BLACK);
    let mut y = 20;
    legend.draw_text("Zones (worst active leak)", &lf, (10, y))?;
    for s in ["critical", "high", "low", "ok"] {
        y += 22;
        legend.draw(&Rectangle::new(
            [(12, y), (32, y + 14)],
            status_colour(s).mix(0.6).filled(),
        ))?;
        legend.draw_text(s, &lf, (40, y))?;
    }
    y += 34;
    legend.draw_text("Heat: sensor margin (dB)", &lf, (10, y))?;
    for (k, v) in [-10.0, -5.0, 0.0, 5.0, 10.0].iter().enumerate() {
        let yy = y + 22 + k as i32 * 20;
        legend.draw(&Rectangle::new(
            [(12, yy), (32, yy + 14)],
            heat_colour(*v).mix(0.7).filled(),
        ))?;
        legend.draw_text(&format!("{v:+.0}"), &lf, (40, yy))?;
    }
    y += 22 + 5 * 20 + 14;
    legend.draw(&Circle::new((20, y + 7), 6, RGBColor(0, 70, 200).filled()))?;
    legend.draw_text("sensor", &lf, (40, y))?;
    y += 22;
    legend.draw(&TriangleMarker::new(
        (20, y + 7),
        8,
        RGBColor(90, 0, 140).filled(),
    ))?;
    legend.draw_text("jammer", &lf, (40, y))?;
    let stamp = m
        .generated_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    legend.draw_text(
        &format!("at {stamp}"),
        &("sans-serif", 11).into_font().color(&BLACK),
        (10, h as i32 - TITLE_H as i32 - 20),
    )?;
    root.present()?;
    Ok(())
}

/// The map as SVG.
///
/// # Errors
/// A drawing failure, as text.
pub fn svg(m: &MapModel) -> Result<String, String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, m.size()).into_drawing_area();
        draw(&root, m).map_err(|e| e.to_string())?;
    }
    Ok(s)
}

/// The map as PNG.
///
/// # Errors
/// A drawing or encoding failure, as text.
pub fn png(m: &MapModel) -> Result<Vec<u8>, String> {
    register_fonts();
    let (w, h) = m.size();
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root, m).map_err(|e| e.to_string())?;
    }
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &rgb,
        w,
        h,
        image::ColorType::Rgb8,
    )
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The zones, sensors and jammers as a GeoJSON FeatureCollection. With the facility's
/// `origin_latlon` the coordinates are WGS 84 longitude/latitude; without it they are plan
/// metres, said in the member `centinela:coordinates`.
#[must_use]
pub fn geojson(m: &MapModel, origin_latlon: Option<[f64; 2]>) -> serde_json::Value {
    let to = |p: &Point| -> serde_json::Value {
        match origin_latlon {
            Some([lat0, lon0]) => {
                let lat = lat0 + p[1] / 110_540.0;
                let lon = lon0 + p[0] / (111_320.0 * lat0.to_radians().cos());
                serde_json::json!([lon, lat])
            }
            None => serde_json::json!([p[0], p[1]]),
        }
    };
    let ring = |poly: &[Point]| -> Vec<serde_json::Value> {
        let mut r: Vec<serde_json::Value> = poly.iter().map(to).collect();
        if let Some(first) = r.first().cloned() {
            r.push(first);
        }
        r
    };
    let mut features = Vec::new();
    for z in &m.zones {
        features.push(serde_json::json!({
            "type": "Feature",
            "id": z.id,
            "geometry": {"type": "Polygon", "coordinates": [ring(&z.polygon)]},
            "properties": {
                "kind": "zone", "id": z.id, "name": z.name, "status": z.status,
                "active_gaps": z.active_gaps, "bands": z.bands, "max_margin_db": z.max_margin_db,
                "fill": format!("#{:02x}{:02x}{:02x}", status_colour(&z.status).0, status_colour(&z.status).1, status_colour(&z.status).2),
            }
        }));
    }
    for s in &m.sensors {
        features.push(serde_json::json!({
            "type": "Feature",
            "id": s.id,
            "geometry": {"type": "Point", "coordinates": to(&s.position)},
            "properties": {"kind": "sensor", "id": s.id, "zone": s.zone, "state": s.state, "margin_db": s.margin_db}
        }));
    }
    for (name, p, bands) in &m.jammers {
        features.push(serde_json::json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": to(p)},
            "properties": {"kind": "jammer", "name": name, "bands": bands}
        }));
    }
    let mut fc = serde_json::json!({
        "type": "FeatureCollection",
        "features": features,
        "centinela:facility": m.facility_id,
        "centinela:band": m.band,
        "centinela:generated_at": m.generated_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    });
    if origin_latlon.is_none() {
        fc["centinela:coordinates"] =
            "facility plan metres (x east, y north); no origin_latlon configured".into();
    }
    fc
}
