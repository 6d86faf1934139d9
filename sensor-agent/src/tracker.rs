//! Sans-IO trackers: successive observations in, wire events out, with hysteresis.
//!
//! A gap opens after it has been seen in `open_after` observations in a row, updates when its
//! margin moves by `update_delta_db`, and closes after `close_after` observations that covered
//! its frequency without seeing it. A band's jammer state is reported when first confirmed and
//! on every confirmed change. Time comes in with the observation, never from a clock.

use std::collections::BTreeMap;

use protocol::{
    GAP_SCHEMA, GapEvent, GapState, JAMMER_SCHEMA, JammerEvent, JammerStateWire, Severity, event_id,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::analysis::{CarrierObs, wire_technology};
use crate::config::{Identity, PipelineConfig};
use dsp::floor::{JammerAssessment, JammerState};

/// A wire event with the topic kind it goes to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "payload", rename_all = "lowercase")]
pub enum Event {
    /// Goes to `…/gap`.
    Gap(GapEvent),
    /// Goes to `…/jammer`.
    Jammer(JammerEvent),
}

impl Event {
    /// The topic kind.
    #[must_use]
    pub fn kind(&self) -> protocol::Kind {
        match self {
            Self::Gap(_) => protocol::Kind::Gap,
            Self::Jammer(_) => protocol::Kind::Jammer,
        }
    }
}

/// One carrier a gap tracker follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapTrack {
    key: String,
    last: CarrierObs,
    seen: u32,
    missed: u32,
    open: bool,
    reported_margin: f64,
}

/// One band a jammer tracker follows: the state last reported, the state seen lately and in
/// how many observations in a row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JammerTrack {
    reported: Option<JammerState>,
    seen: JammerState,
    times: u32,
}

/// What a pipeline's trackers remember between sweeps. A recorded sweep carries it as it was
/// when the sweep began (`centinela:trackers`), so that the replay of any sweep of a run, not
/// only its first, opens, updates and closes the gaps the live sweep did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerState {
    /// Energy gaps.
    pub gaps: Vec<GapTrack>,
    /// Cells found by sync.
    pub cell_gaps: Vec<GapTrack>,
    /// Jammer verdicts by band.
    pub jammers: BTreeMap<String, JammerTrack>,
}

/// Tracks energy gaps for one sensor.
#[derive(Debug, Clone)]
pub struct GapTracker {
    id: Identity,
    open_after: u32,
    close_after: u32,
    update_delta_db: f64,
    tracks: Vec<GapTrack>,
}

fn same_carrier(a: &CarrierObs, b: &CarrierObs) -> bool {
    let pci = |c: &CarrierObs| c.cell.as_ref().and_then(|i| i.pci);
    if a.detector != b.detector {
        return false;
    }
    if let (Some(p), Some(q)) = (pci(a), pci(b)) {
        return p == q && a.band == b.band && (a.center_hz - b.center_hz).abs() <= 200e3;
    }
    let tol = (0.1 * a.bandwidth_hz.max(b.bandwidth_hz)).max(50e3);
    a.band == b.band && a.technology == b.technology && (a.center_hz - b.center_hz).abs() <= tol
}

impl GapTracker {
    /// The carriers followed.
    #[must_use]
    pub fn tracks(&self) -> Vec<GapTrack> {
        self.tracks.clone()
    }

    /// Follows `tracks` from now on, in place of what was followed.
    pub fn restore(&mut self, tracks: Vec<GapTrack>) {
        self.tracks = tracks;
    }

    /// A tracker with the pipeline's hysteresis settings.
    #[must_use]
    pub fn new(id: Identity, cfg: &PipelineConfig) -> Self {
        Self {
            id,
            open_after: cfg.open_after.max(1),
            close_after: cfg.close_after.max(1),
            update_delta_db: cfg.update_delta_db,
            tracks: Vec::new(),
        }
    }

    /// Feeds the leaking carriers (margin > 0) seen over `span_hz` at `at`; returns the events.
    pub fn observe(
        &mut self,
        at: OffsetDateTime,
        span_hz: (f64, f64),
        carriers: &[CarrierObs],
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let mut matched = vec![false; self.tracks.len()];
        for c in carriers.iter().filter(|c| c.margin_db > 0.0) {
            if let Some(i) = self.tracks.iter().position(|t| same_carrier(&t.last, c)) {
                matched[i] = true;
                let t = &mut self.tracks[i];
                t.seen += 1;
                t.missed = 0;
                t.last = c.clone();
                if !t.open && t.seen >= self.open_after {
                    t.open = true;
                    t.reported_margin = c.margin_db;
                    events.push(self.gap_event(i, at, GapState::Open));
                } else if t.open && (c.margin_db - t.reported_margin).abs() >= self.update_delta_db
                {
                    self.tracks[i].reported_margin = c.margin_db;
                    events.push(self.gap_event(i, at, GapState::Update));
                }
            } else {
                let key = gap_key(c);
                self.tracks.push(GapTrack {
                    key,
                    last: c.clone(),
                    seen: 1,
                    missed: 0,
                    open: false,
                    reported_margin: c.margin_db,
                });
                matched.push(true);
                if self.open_after <= 1 {
                    let i = self.tracks.len() - 1;
                    self.tracks[i].open = true;
                    events.push(self.gap_event(i, at, GapState::Open));
                }
            }
        }
        let mut i = 0;
        while i < self.tracks.len() {
            let covered = (span_hz.0..=span_hz.1).contains(&self.tracks[i].last.center_hz);
            if !matched[i] && covered {
                self.tracks[i].missed += 1;
                self.tracks[i].seen = 0;
                if self.tracks[i].missed >= self.close_after || !self.tracks[i].open {
                    if self.tracks[i].open {
                        events.push(self.gap_event(i, at, GapState::Closed));
                    }
                    self.tracks.remove(i);
                    matched.remove(i);
                    continue;
                }
            }
            i += 1;
        }
        events
    }

    /// Gaps currently open.
    #[must_use]
    pub fn open_count(&self) -> usize {
        self.tracks.iter().filter(|t| t.open).count()
    }

    fn gap_event(&self, i: usize, at: OffsetDateTime, state: GapState) -> Event {
        let t = &self.tracks[i];
        let c = &t.last;
        let content = format!(
            "gap|{}|{}|{}|{:?}|{}|{:.3}|{:.0}|{}",
            self.id.facility_id,
            self.id.sensor_id,
            t.key,
            state,
            at.unix_timestamp_nanos(),
            c.margin_db,
            c.center_hz,
            self.id.zone
        );
        Event::Gap(GapEvent {
            schema: GAP_SCHEMA.into(),
            event_id: event_id(at, content.as_bytes()),
            facility_id: self.id.facility_id.clone(),
            sensor_id: self.id.sensor_id.clone(),
            observed_at: at,
            gap_key: t.key.clone(),
            state,
            zone: self.id.zone.clone(),
            band: c.band.clone(),
            technology: wire_technology(c.technology),
            center_hz: c.center_hz,
            bandwidth_hz: c.bandwidth_hz,
            cell: c.cell.clone(),
            power_dbm: c.power_dbm,
            floor_dbm: c.floor_dbm,
            power_dbfs: c.power_dbfs,
            floor_dbfs: c.floor_dbfs,
            margin_db: c.margin_db,
            severity: Severity::from_margin_db(c.margin_db),
            detector: c.detector,
            evidence: None,
        })
    }
}

/// Tracks each band's jammer state; a change is reported once seen in `confirm` observations.
#[derive(Debug, Clone)]
pub struct JammerTracker {
    id: Identity,
    confirm: u32,
    bands: BTreeMap<String, JammerTrack>,
}

fn wire_state(s: JammerState) -> JammerStateWire {
    match s {
        JammerState::Effective => JammerStateWire::Effective,
        JammerState::Degraded => JammerStateWire::Degraded,
        JammerState::Down => JammerStateWire::Down,
    }
}

impl JammerTracker {
    /// A tracker confirming changes after `confirm` observations.
    #[must_use]
    pub fn new(id: Identity, confirm: u32) -> Self {
        Self {
            id,
            confirm: confirm.max(1),
            bands: BTreeMap::new(),
        }
    }

    /// The bands followed.
    #[must_use]
    pub fn tracks(&self) -> BTreeMap<String, JammerTrack> {
        self.bands.clone()
    }

    /// Follows `bands` from now on, in place of what was followed.
    pub fn restore(&mut self, bands: BTreeMap<String, JammerTrack>) {
        self.bands = bands;
    }

    /// Feeds one band's verdict.
    pub fn observe(
        &mut self,
        at: OffsetDateTime,
        band: &str,
        a: &JammerAssessment,
    ) -> Option<Event> {
        let entry = self.bands.entry(band.to_string()).or_insert(JammerTrack {
            reported: None,
            seen: a.state,
            times: 0,
        });
        if entry.seen == a.state {
            entry.times += 1;
        } else {
            entry.seen = a.state;
            entry.times = 1;
        }
        if entry.reported == Some(a.state) || entry.times < self.confirm {
            return None;
        }
        entry.reported = Some(a.state);
        let content = format!(
            "jammer|{}|{}|{}|{}|{}|{:.2}",
            self.id.facility_id,
            self.id.sensor_id,
            band,
            a.state.as_str(),
            at.unix_timestamp_nanos(),
            a.noise_rise_db
        );
        Some(Event::Jammer(JammerEvent {
            schema: JAMMER_SCHEMA.into(),
            event_id: event_id(at, content.as_bytes()),
            facility_id: self.id.facility_id.clone(),
            sensor_id: self.id.sensor_id.clone(),
            observed_at: at,
            zone: self.id.zone.clone(),
            band: band.to_string(),
            state: wire_state(a.state),
            noise_rise_db: a.noise_rise_db,
            floor_dbm_per_hz: a.floor_dbm_per_hz,
            covered_fraction: a.covered_fraction,
        }))
    }
}

/// The key a gap is known by on the server: band, technology, the cell's identity when sync
/// named it (`pci…` for LTE and NR, `bsic…` in octal, NCC then BCC, for GSM; `sync` when the
/// sync search found a cell it could not name) and the centre. An energy carrier and the cell
/// found in it by sync are two gaps, never one key.
fn gap_key(c: &CarrierObs) -> String {
    let cell = c.cell.as_ref();
    let id = match (cell.and_then(|i| i.pci), cell.and_then(|i| i.bsic)) {
        (Some(pci), _) => format!("pci{pci}/"),
        (None, Some(bsic)) => format!("bsic{bsic:02o}/"),
        (None, None) if c.detector == protocol::Detector::Sync => "sync/".to_string(),
        (None, None) => String::new(),
    };
    format!(
        "{}/{}/{id}{:.1}MHz",
        c.band,
        wire_technology(c.technology).as_str(),
        c.center_hz / 1e6
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsp::carrier::Technology;

    fn id() -> Identity {
        Identity {
            facility_id: "f".into(),
            sensor_id: "s".into(),
            zone: "z".into(),
        }
    }

    fn carrier(center_hz: f64, margin_db: f64) -> CarrierObs {
        CarrierObs {
            band: "B28".into(),
            technology: Technology::Lte,
            center_hz,
            bandwidth_hz: 9e6,
            channel_bw_hz: Some(10e6),
            power_dbfs: -40.0,
            floor_dbfs: -70.0,
            power_dbm: None,
            floor_dbm: None,
            snr_db: margin_db - 6.0,
            margin_db,
            cell: None,
            detector: protocol::Detector::Energy,
        }
    }

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time")
    }

    #[test]
    fn an_energy_carrier_and_the_cell_sync_names_in_it_are_two_keys() {
        let lte = carrier(778e6, 20.0);
        let named = CarrierObs {
            detector: protocol::Detector::Sync,
            cell: Some(protocol::CellId {
                pci: Some(210),
                ..protocol::CellId::default()
            }),
            ..lte.clone()
        };
        assert_eq!(gap_key(&lte), "B28/lte/778.0MHz");
        assert_eq!(gap_key(&named), "B28/lte/pci210/778.0MHz");
        // GSM: the FCCH/SCH search names the cell by its BSIC (NCC 3, BCC 5), or not at all.
        let gsm = CarrierObs {
            band: "GSM850".into(),
            technology: Technology::Gsm,
            center_hz: 891.6e6,
            ..lte
        };
        let bsic = CarrierObs {
            detector: protocol::Detector::Sync,
            cell: Some(protocol::CellId {
                arfcn: Some(240),
                bsic: Some(0o35),
                ..protocol::CellId::default()
            }),
            ..gsm.clone()
        };
        let unnamed = CarrierObs {
            detector: protocol::Detector::Sync,
            ..gsm.clone()
        };
        let keys = [gap_key(&gsm), gap_key(&bsic), gap_key(&unnamed)];
        assert_eq!(
            keys,
            [
                "GSM850/gsm/891.6MHz",
                "GSM850/gsm/bsic35/891.6MHz",
                "GSM850/gsm/sync/891.6MHz"
            ]
        );
    }

    #[test]
    fn gap_opens_after_n_updates_on_margin_and_closes_after_m() {
        let cfg = PipelineConfig::default(); // open after 2, close after 3, update at 3 dB
        let mut t = GapTracker::new(id(), &cfg);
        let span = (758e6, 803e6);
        assert!(t.observe(at(0), span, &[carrier(778e6, 20.0)]).is_empty());
        let e = t.observe(at(1), span, &[carrier(778.01e6, 21.0)]);
        assert!(matches!(&e[..], [Event::Gap(g)] if g.state == GapState::Open));
        assert!(t.observe(at(2), span, &[carrier(778e6, 22.0)]).is_empty());
        let e = t.observe(at(3), span, &[carrier(778e6, 26.0)]);
        assert!(
            matches!(&e[..], [Event::Gap(g)] if g.state == GapState::Update && g.margin_db == 26.0)
        );
        // Not covered by this observation: not a miss.
        assert!(t.observe(at(4), (869e6, 894e6), &[]).is_empty());
        assert!(t.observe(at(5), span, &[]).is_empty());
        assert!(t.observe(at(6), span, &[]).is_empty());
        let e = t.observe(at(7), span, &[]);
        assert!(matches!(&e[..], [Event::Gap(g)] if g.state == GapState::Closed));
        assert_eq!(t.open_count(), 0);
    }

    #[test]
    fn a_single_blip_never_opens_and_non_leaks_are_ignored() {
        let mut t = GapTracker::new(id(), &PipelineConfig::default());
        let span = (758e6, 803e6);
        assert!(t.observe(at(0), span, &[carrier(778e6, 20.0)]).is_empty());
        assert!(t.observe(at(1), span, &[]).is_empty());
        assert!(t.observe(at(2), span, &[carrier(778e6, 20.0)]).is_empty());
        assert!(t.observe(at(3), span, &[carrier(790e6, -2.0)]).is_empty());
        assert!(t.observe(at(4), span, &[carrier(790e6, -2.0)]).is_empty());
    }

    #[test]
    fn event_ids_repeat_for_the_same_input() {
        let run = || {
            let mut t = GapTracker::new(id(), &PipelineConfig::default());
            let span = (758e6, 803e6);
            t.observe(at(0), span, &[carrier(778e6, 20.0)]);
            t.observe(at(1), span, &[carrier(778e6, 20.0)])
        };
        assert_eq!(run(), run());
    }
}
