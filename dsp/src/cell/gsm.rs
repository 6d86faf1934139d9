//! GSM downlink structure relevant to finding a cell (TS 45.002, TS 45.004).

/// GSM symbol rate, 1625/6 kbit/s.
pub const SYMBOL_RATE_HZ: f64 = 1_625_000.0 / 6.0;
/// The FCCH is a pure tone this far above the carrier: a quarter of the symbol rate (67.708 kHz).
pub const FCCH_OFFSET_HZ: f64 = SYMBOL_RATE_HZ / 4.0;
/// Symbols per timeslot (156.25, so eight slots are 1250).
pub const SYMBOLS_PER_FRAME: f64 = 1250.0;
/// TDMA frames in a control multiframe.
pub const FRAMES_PER_MULTIFRAME: u32 = 51;
/// Useful symbols of the FCCH burst (all zero bits).
pub const FCCH_SYMBOLS: f64 = 148.0;

/// Whether TDMA frame `fn_` of the 51-multiframe carries the FCCH in timeslot 0.
#[must_use]
pub fn is_fcch_frame(fn_: u32) -> bool {
    matches!(fn_ % FRAMES_PER_MULTIFRAME, 0 | 10 | 20 | 30 | 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fcch_is_67_7_khz_and_five_per_multiframe() {
        assert!((FCCH_OFFSET_HZ - 67_708.33).abs() < 0.01);
        assert_eq!((0..51).filter(|&f| is_fcch_frame(f)).count(), 5);
    }
}
