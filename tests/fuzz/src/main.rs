//! `centinela-fuzz TARGET`: one of the fuzz targets of `centinela_tests::fuzz` under AFL++.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = centinela_tests::fuzz::target(&name) else {
        let names: Vec<&str> = centinela_tests::fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("usage: centinela-fuzz TARGET ({})", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
