"""Writes NR SSB test waveforms built with py3gpp (an implementation we did not write).

usage: nr_ssb_py3gpp.py OUT_DIR COUNT SEED

For each case: a 20-RB, 30 kHz carrier with one SS/PBCH block (PSS, SSS, PBCH DM-RS for SSB index
0, random QPSK PBCH payload) in symbols 2-5 of a slot, OFDM-modulated by py3gpp at 7.68 MS/s
with the TS 38.211 upconversion phase for a 3.5 GHz carrier, placed at a random time in 2 ms,
shifted by a random carrier-frequency offset and put under white noise at a given SINR per
resource element. Writes case-N.cf32 (interleaved little-endian float32) and manifest.json.
"""
import json
import sys

import numpy as np
from py3gpp import (nrCarrierConfig, nrOFDMModulate, nrPBCHDMRS, nrPBCHDMRSIndices,
                    nrPBCHIndices, nrPSS, nrPSSIndices, nrResourceGrid, nrSSS, nrSSSIndices)

RATE = 7.68e6
NFFT = 256


def main():
    out, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        pci = int(rng.integers(0, 1008))
        sinr_db = float([-6.0, -3.0, 0.0, 3.0, 10.0][i % 5])
        cfo_hz = float(rng.uniform(-100e3, 100e3))
        carrier = nrCarrierConfig(NCellID=pci, NSizeGrid=20, SubcarrierSpacing=30)
        ssb = np.zeros(240 * 4, complex)
        ssb[nrPSSIndices()] = nrPSS(pci)
        ssb[nrSSSIndices()] = nrSSS(pci)
        ssb[nrPBCHDMRSIndices(pci)] = nrPBCHDMRS(pci, 0)
        pbch = nrPBCHIndices(pci)
        bits = rng.integers(0, 2, (len(pbch), 2))
        ssb[pbch] = ((1 - 2 * bits[:, 0]) + 1j * (1 - 2 * bits[:, 1])) / np.sqrt(2)
        grid = nrResourceGrid(carrier)
        grid[:, 2:6] = ssb.reshape((240, 4), order="F")
        wave, _ = nrOFDMModulate(carrier, grid, SampleRate=RATE, CarrierFrequency=3.5e9)
        total = int(0.002 * RATE)
        start = int(rng.integers(0, total - len(wave)))
        x = np.zeros(total, complex)
        x[start:start + len(wave)] = wave
        n = np.arange(total)
        x *= np.exp(2j * np.pi * cfo_hz * n / RATE)
        # numpy's ifft scales by 1/NFFT: a unit resource element is 1 in a forward FFT bin, and
        # noise of variance s2 per sample is NFFT * s2 there.
        s2 = 1.0 / (NFFT * 10 ** (sinr_db / 10))
        x += np.sqrt(s2 / 2) * (rng.standard_normal(total) + 1j * rng.standard_normal(total))
        inter = np.empty(2 * total, np.float32)
        inter[0::2] = x.real
        inter[1::2] = x.imag
        name = f"case-{i}.cf32"
        inter.tofile(f"{out}/{name}")
        cases.append({"file": name, "pci": pci, "sinr_db": sinr_db, "cfo_hz": cfo_hz, "start": start})
    with open(f"{out}/manifest.json", "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main()
